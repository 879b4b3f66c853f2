"""Behaviour of the attention family beyond the generic checks: masks against the
torch twins, causal masking, divisibility errors, encoder stacks and named mismatches."""

from __future__ import annotations

import math

import pytest
import torch

import lateinit
from cases_attention import (
    MHATwin,
    copy_encoder,
    copy_mha,
    encoder_params,
    torch_mask,
)
from lateinit import nn
from lateinit.nn.attention import MultiHeadAttention, TransformerEncoderLayer


def randomize(module: torch.nn.Module) -> None:
    """Random values everywhere (biases and LayerNorm affine included), so a comparison
    with the twin checks every parameter."""
    torch.manual_seed(7)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)


def key_padding_mask(n: int, tk: int) -> torch.Tensor:
    """(N, 1, 1, Tk), True = attend; sample i attends to its first tk - i keys."""
    lengths = torch.tensor([tk - i for i in range(n)])
    return (torch.arange(tk) < lengths[:, None])[:, None, None, :]


def masks(tq: int, tk: int, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    attend = torch.rand(tq, tk, generator=g) > 0.4
    attend[:, 0] = True  # no fully blocked row
    return {
        "bool_2d": attend,
        "additive_2d": torch.randn(tq, tk, generator=g),
        "additive_blocking": torch.zeros(tq, tk).masked_fill(~attend, float("-inf")),
        "bool_4d_key_padding": key_padding_mask(n, tk),
        "bool_4d_per_head": torch.rand(n, 4, tq, tk, generator=g) > 0.3,
    }


@pytest.mark.parametrize("name", list(masks(5, 7, 2)))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_mask_matches_twin(name: str, causal: bool) -> None:
    q, k, v = torch.randn(2, 5, 16), torch.randn(2, 7, 12), torch.randn(2, 7, 10)
    mask = masks(5, 7, 2)[name]
    if causal and name == "bool_4d_per_head":
        mask = mask.clone()
        mask[..., 0] = True  # keep every row of the combined mask attending somewhere
    layer = MultiHeadAttention(4, causal=causal)
    layer(q, k, v)
    randomize(layer)
    twin = MHATwin(16, 4, causal=causal, kdim=12, vdim=10)
    copy_mha(layer, twin)
    torch.testing.assert_close(layer(q, k, v, mask), twin(q, k, v, mask), atol=1e-5, rtol=1e-4)


def test_self_attention_mask_matches_packed_twin() -> None:
    x = torch.randn(3, 6, 8)
    mask = masks(6, 6, 3)["bool_2d"]
    layer = MultiHeadAttention(2)
    layer(x)
    randomize(layer)
    twin = MHATwin(8, 2)
    copy_mha(layer, twin)
    assert twin.mha._qkv_same_embed_dim
    torch.testing.assert_close(layer(x, mask=mask), twin(x, mask=mask), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tk", [6, 9], ids=["square", "more_keys"])
def test_causal_equals_explicit_triangular_mask(tk: int) -> None:
    q, kv = torch.randn(2, 6, 8), torch.randn(2, tk, 8)
    causal = MultiHeadAttention(2, causal=True)
    causal(q, kv)
    plain = MultiHeadAttention(2)
    plain(q, kv)
    plain.load_state_dict(causal.state_dict())
    blocked = torch.ones(6, tk, dtype=torch.bool).triu(1)  # strictly upper: the future
    additive = torch.zeros(6, tk).masked_fill(blocked, float("-inf"))
    want = causal(q, kv)
    torch.testing.assert_close(plain(q, kv, mask=~blocked), want)
    torch.testing.assert_close(plain(q, kv, mask=additive), want)
    # causal plus a user mask is the intersection of both
    extra = key_padding_mask(2, tk) | torch.eye(6, tk, dtype=torch.bool)
    torch.testing.assert_close(causal(q, kv, mask=extra), plain(q, kv, mask=extra & ~blocked))


def test_divisibility_errors() -> None:
    with pytest.raises(ValueError, match=r"units=10 is not divisible by num_heads=4"):
        MultiHeadAttention(4, units=10)
    with pytest.raises(ValueError, match=r"units=10 is not divisible by num_heads=4"):
        TransformerEncoderLayer(units=10, num_heads=4)
    net = nn.Sequential(TransformerEncoderLayer(num_heads=4, hidden_size=8))
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net(torch.randn(2, 3, 10))
    message = str(info.value)
    assert "'0.attention' (MultiHeadAttention)" in message
    assert "units=10" in message and "num_heads=4" in message and "Fix" in message
    # nothing was created: the network still infers from the next (valid) batch
    assert all(lateinit.is_deferred(p) for p in net.parameters())
    assert net(torch.randn(2, 3, 12)).shape == (2, 3, 12)


def test_encoder_stack_infers_its_size_from_one_batch() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        TransformerEncoderLayer(num_heads=2, hidden_size=32),
        TransformerEncoderLayer(num_heads=2, hidden_size=32, norm_first=True),
    )
    assert all(lateinit.is_deferred(p) for p in net.parameters())
    assert "units=-1" in repr(net)
    x = torch.randn(3, 5, 8)
    out = net(x)
    assert out.shape == (3, 5, 8)
    assert sum(p.numel() for p in net.parameters()) == 2 * encoder_params(8, 32)
    shapes = {name: tuple(p.shape) for name, p in net.collect_params().items()}
    assert shapes["0.attention.key_weight"] == (8, 8)
    assert shapes["1.dense2.weight"] == (8, 32)
    assert shapes["1.norm2.weight"] == (8,)
    assert "-1" not in repr(net) and "Dense(32 -> 8)" in repr(net)

    randomize(net)
    twins = [
        torch.nn.TransformerEncoderLayer(8, 2, 32, 0.0, batch_first=True, norm_first=first)
        for first in (False, True)
    ]
    for ours, twin in zip(net, twins, strict=True):
        copy_encoder(ours, twin)
    twin = torch.nn.Sequential(*twins).eval()
    net.eval()
    torch.testing.assert_close(net(x), twin(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_encoder_mask_matches_twin(norm_first: bool) -> None:
    x = torch.randn(2, 6, 8)
    layer = TransformerEncoderLayer(num_heads=2, hidden_size=16, norm_first=norm_first)
    layer(x)
    randomize(layer)
    twin = torch.nn.TransformerEncoderLayer(
        8, 2, 16, 0.0, batch_first=True, norm_first=norm_first
    ).eval()
    copy_encoder(layer, twin)
    layer.eval()
    for mask in (masks(6, 6, 2)["bool_2d"], masks(6, 6, 2)["additive_2d"]):
        torch.testing.assert_close(
            layer(x, mask), twin(x, src_mask=torch_mask(mask, 2, 2, 6, 6)), atol=1e-5, rtol=1e-4
        )


def test_wrong_feature_size_after_inference_names_the_attention() -> None:
    net = nn.Sequential(
        TransformerEncoderLayer(num_heads=2, hidden_size=16),
        TransformerEncoderLayer(num_heads=2, hidden_size=16),
    )
    x = torch.randn(2, 5, 8)
    want = net(x)
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net(torch.randn(2, 5, 6))
    message = str(info.value)
    assert "'0.attention' (MultiHeadAttention)" in message
    assert "query_units=8" in message and "last axis of the query" in message
    assert "(2, 5, 6)" in message and "Fix" in message
    assert torch.equal(net(x), want)  # unchanged and still working


def test_cross_attention_key_mismatch_names_the_key_axis() -> None:
    layer = MultiHeadAttention(2)
    layer(torch.randn(2, 5, 8), torch.randn(2, 7, 6))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"key_units=6 .* axis of the key"):
        layer(torch.randn(2, 5, 8), torch.randn(2, 7, 4))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"value_units=6 .* axis of the value"):
        layer(torch.randn(2, 5, 8), torch.randn(2, 7, 6), torch.randn(2, 7, 5))
    with pytest.raises(lateinit.ShapeMismatchError, match="same sequence length"):
        layer(torch.randn(2, 5, 8), torch.randn(2, 7, 6), torch.randn(2, 4, 6))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"mask of shape \(5, 6\)"):
        layer(torch.randn(2, 5, 8), torch.randn(2, 7, 6), mask=torch.ones(5, 6, dtype=torch.bool))
    assert layer(torch.randn(2, 5, 8), torch.randn(2, 7, 6)).shape == (2, 5, 8)


def test_deferred_use_error_names_the_right_size_argument() -> None:
    layer = MultiHeadAttention(2)
    with pytest.raises(lateinit.DeferredInitializationError, match="key_units="):
        layer.key_weight.data  # noqa: B018


def test_default_initialization_matches_torch_distribution() -> None:
    """xavier_uniform_ on the packed (3E, E) weight for self-attention, on each (E, kdim)
    weight when key/value sizes differ; nn.Linear's bound on the output projection."""
    torch.manual_seed(0)
    e = 64
    packed = MultiHeadAttention(4)
    packed(torch.randn(1, 2, e))
    cross = MultiHeadAttention(4)
    cross(torch.randn(1, 2, e), torch.randn(1, 3, 32))
    bounds = {
        (packed, "query_weight"): math.sqrt(6 / (4 * e)),
        (cross, "query_weight"): math.sqrt(6 / (e + e)),
        (cross, "key_weight"): math.sqrt(6 / (e + 32)),
        (packed, "out_weight"): 1 / math.sqrt(e),
    }
    for (layer, name), bound in bounds.items():
        w = getattr(layer, name).detach()
        assert 0.95 * bound < w.abs().max() <= bound, name
    twin = torch.nn.MultiheadAttention(e, 4, batch_first=True)
    twin_bound = twin.in_proj_weight.detach().abs().max()
    assert 0.95 * math.sqrt(6 / (4 * e)) < twin_bound <= math.sqrt(6 / (4 * e))
    assert all(getattr(packed, f"{p}_bias").abs().sum() == 0 for p in ("query", "out"))


def test_unbatched_input_and_extra_batch_axes() -> None:
    layer = MultiHeadAttention(2)
    x = torch.randn(3, 4, 5, 8)
    out = layer(x)
    assert out.shape == (3, 4, 5, 8)
    torch.testing.assert_close(layer(x[1, 2]), out[1, 2])
    shared_keys = MultiHeadAttention(2)  # batch axes broadcast, as in the fused kernel
    assert shared_keys(torch.randn(3, 5, 8), torch.randn(1, 7, 6)).shape == (3, 5, 8)


def test_dropout_only_in_training() -> None:
    x = torch.randn(2, 6, 8)
    layer = TransformerEncoderLayer(num_heads=2, hidden_size=16, dropout=0.5)
    layer(x)
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer(x))


def test_encoder_eager_build_is_initialized_by_initialize() -> None:
    torch.manual_seed(0)
    eager = TransformerEncoderLayer(units=8, num_heads=2, hidden_size=16).initialize()
    assert not any(lateinit.is_deferred(p) for p in eager.parameters())
    torch.manual_seed(0)
    deferred = TransformerEncoderLayer(num_heads=2, hidden_size=16)
    deferred(torch.randn(1, 2, 8))
    for (name, a), (_, b) in zip(
        eager.state_dict().items(), deferred.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_parameter_counts_equal_the_torch_twins() -> None:
    from cases_attention import CASES

    for case in CASES:
        if case.twin is not None:
            twin_count = sum(p.numel() for p in case.twin().parameters())
            assert case.n_params == twin_count, case.id
