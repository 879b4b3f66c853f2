"""Layer cases of the attention family (rows of the table in cases.py).

Twins are ``torch.nn.MultiheadAttention`` (wrapped by :class:`MHATwin`, which takes our
call signature and mask convention) and ``torch.nn.TransformerEncoderLayer``, with our
weights copied in.
"""

from __future__ import annotations

from typing import Any

import torch

from lateinit import init
from lateinit.nn.attention import MultiHeadAttention, TransformerEncoderLayer
from lateinit.testing import LayerCase, rand


def mha_params(units: int, q: int, k: int, v: int, bias: bool = True) -> int:
    """Parameter count of a MultiHeadAttention (equal to torch.nn.MultiheadAttention's)."""
    return units * (q + k + v + units) + (4 * units if bias else 0)


def encoder_params(units: int, hidden: int) -> int:
    """Parameter count of a TransformerEncoderLayer: attention, two Dense, two LayerNorm."""
    return mha_params(units, units, units, units) + 2 * units * hidden + hidden + 5 * units


def torch_mask(
    mask: torch.Tensor | None, n: int, heads: int, tq: int, tk: int
) -> torch.Tensor | None:
    """Our mask (bool True = attend, or additive float; broadcastable to (N, heads, Tq,
    Tk)) in torch.nn.MultiheadAttention's convention (bool True = blocked; (Tq, Tk) or
    (N * heads, Tq, Tk))."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        mask = ~mask
    if mask.dim() <= 2:
        return mask.expand(tq, tk)
    return mask.expand(n, heads, tq, tk).reshape(n * heads, tq, tk)


class MHATwin(torch.nn.Module):
    """torch.nn.MultiheadAttention called like our MultiHeadAttention."""

    def __init__(self, units: int, num_heads: int, causal: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(units, num_heads, batch_first=True, **kwargs)
        self.causal = causal

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        key = query if key is None else key
        value = key if value is None else value
        tq, tk = query.shape[1], key.shape[1]
        attn_mask = torch_mask(mask, query.shape[0], self.mha.num_heads, tq, tk)
        if self.causal:
            blocked = torch.ones(tq, tk, dtype=torch.bool).triu(1)
            if attn_mask is None or attn_mask.dtype == torch.bool:
                attn_mask = blocked if attn_mask is None else attn_mask | blocked
            else:
                attn_mask = attn_mask.masked_fill(blocked, float("-inf"))
        out, _ = self.mha(query, key, value, need_weights=False, attn_mask=attn_mask)
        return out


def copy_mha(ours: Any, twin: torch.nn.Module) -> None:
    """Copy a MultiHeadAttention into torch.nn.MultiheadAttention: the packed
    ``in_proj_weight`` when key and value sizes equal the model size, else
    ``q/k/v_proj_weight``."""
    mha = twin.mha if isinstance(twin, MHATwin) else twin
    with torch.no_grad():
        weights = [ours.query_weight, ours.key_weight, ours.value_weight]
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(torch.cat(weights))
        else:
            for name, w in zip(("q", "k", "v"), weights, strict=True):
                getattr(mha, f"{name}_proj_weight").copy_(w)
        mha.out_proj.weight.copy_(ours.out_weight)
        if ours.query_bias is not None:
            mha.in_proj_bias.copy_(torch.cat([ours.query_bias, ours.key_bias, ours.value_bias]))
            mha.out_proj.bias.copy_(ours.out_bias)


def copy_encoder(ours: Any, twin: torch.nn.TransformerEncoderLayer) -> None:
    """Copy a TransformerEncoderLayer into torch.nn.TransformerEncoderLayer."""
    copy_mha(ours.attention, twin.self_attn)
    with torch.no_grad():
        for mine, theirs in ((ours.dense1, twin.linear1), (ours.dense2, twin.linear2)):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        for mine, theirs in ((ours.norm1, twin.norm1), (ours.norm2, twin.norm2)):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)


def eager_mha(units: int, q: int, k: int | None = None, v: int | None = None) -> dict[str, int]:
    k = q if k is None else k
    return {
        "units": units,
        "query_units": q,
        "key_units": k,
        "value_units": k if v is None else v,
    }


def cross_inputs() -> tuple[torch.Tensor, ...]:
    return torch.randn(2, 5, 16), torch.randn(2, 7, 12), torch.randn(2, 7, 10)


def cross_bad_key() -> tuple[torch.Tensor, ...]:
    return torch.randn(2, 5, 16), torch.randn(2, 7, 13), torch.randn(2, 7, 10)


CASES: list[LayerCase] = [
    LayerCase(
        "mha_self",
        MultiHeadAttention,
        {"num_heads": 4},
        eager_mha(16, 16),
        rand(2, 5, 16),
        (2, 5, 16),
        mha_params(16, 16, 16, 16),
        bad_inputs=rand(2, 5, 20),
        twin=lambda: MHATwin(16, 4),
        copy_to_twin=copy_mha,
    ),
    LayerCase(
        "mha_units_given_nobias",
        MultiHeadAttention,
        {"num_heads": 2, "units": 16, "use_bias": False},
        {"query_units": 16, "key_units": 16, "value_units": 16},
        rand(3, 4, 16),
        (3, 4, 16),
        mha_params(16, 16, 16, 16, bias=False),
        bad_inputs=rand(3, 4, 12),
        twin=lambda: MHATwin(16, 2, bias=False),
        copy_to_twin=copy_mha,
    ),
    # units given and different from the query size: torch.nn.MultiheadAttention needs
    # query size == embed_dim, so this configuration has no twin.
    LayerCase(
        "mha_units_project",
        MultiHeadAttention,
        {"num_heads": 2, "units": 8},
        {"query_units": 12, "key_units": 12, "value_units": 12},
        rand(2, 5, 12),
        (2, 5, 8),
        mha_params(8, 12, 12, 12),
        bad_inputs=rand(2, 5, 6),
    ),
    LayerCase(
        "mha_cross",
        MultiHeadAttention,
        {"num_heads": 4, "bias_initializer": init.Uniform(0.5)},
        eager_mha(16, 16, 12, 10),
        cross_inputs,
        (2, 5, 16),
        mha_params(16, 16, 12, 10),
        bad_inputs=cross_bad_key,
        twin=lambda: MHATwin(16, 4, kdim=12, vdim=10),
        copy_to_twin=copy_mha,
    ),
    LayerCase(
        "mha_causal",
        MultiHeadAttention,
        {"num_heads": 4, "causal": True},
        eager_mha(16, 16),
        rand(2, 6, 16),
        (2, 6, 16),
        mha_params(16, 16, 16, 16),
        bad_inputs=rand(2, 6, 8),
        twin=lambda: MHATwin(16, 4, causal=True),
        copy_to_twin=copy_mha,
    ),
    LayerCase(
        "encoder_post_norm",
        TransformerEncoderLayer,
        {"num_heads": 4, "hidden_size": 32},
        {"units": 16},
        rand(2, 5, 16),
        (2, 5, 16),
        encoder_params(16, 32),
        bad_inputs=rand(2, 5, 12),
        twin=lambda: torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True),
        copy_to_twin=copy_encoder,
        mismatch_layer="'attention' (MultiHeadAttention)",
    ),
    LayerCase(
        "encoder_pre_norm_gelu",
        TransformerEncoderLayer,
        {"num_heads": 2, "hidden_size": 24, "activation": "gelu", "norm_first": True},
        {"units": 8},
        rand(3, 4, 8),
        (3, 4, 8),
        encoder_params(8, 24),
        bad_inputs=rand(3, 4, 10),
        twin=lambda: torch.nn.TransformerEncoderLayer(
            8, 2, 24, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        ),
        copy_to_twin=copy_encoder,
        mismatch_layer="'norm1' (LayerNorm)",
    ),
]
