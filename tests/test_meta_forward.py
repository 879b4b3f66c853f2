"""Layers' ``_meta_forward``: data-free inference's shortcut past slow meta kernels.

A layer's ``_meta_forward(x)`` must give exactly what its ``forward`` gives on the same
meta input (shape, dtype, strides), or ``NotImplemented`` (then the forward runs and
raises what it raises): checked here on a table of cases, each answered or declined as
the table says, and end to end (``infer_shape`` with and without the shortcuts gives the
same outputs and the same parameter shapes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

import lateinit
from lateinit import Spec, nn, zoo
from lateinit.inference import Inference


def meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def both(layer: torch.nn.Module, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """``(_meta_forward(x), forward(x))`` of the layer as data-free inference runs it: on
    its private clone, whose parameters are meta stand-ins (shaped by the layer's hook)."""
    ctx = Inference(layer)
    clone = ctx.clone(layer)
    with torch.no_grad():
        for _, p in clone._infer_own((x,), {}):
            ctx.stand_in(p)
        assert ctx._shortcuts_allowed()
        fast = type(clone)._meta_forward(clone, x)
        slow = type(clone).forward(clone, x)
    return fast, slow


def layout(t: torch.Tensor) -> tuple[Any, ...]:
    return tuple(t.shape), t.dtype, t.stride(), t.device.type, t.requires_grad


def ready(layer: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """The layer after a real first call on zeros of ``x``'s shape (READY)."""
    layer(torch.zeros(x.shape, dtype=x.dtype))
    return layer


F16, BF16, F64 = torch.float16, torch.bfloat16, torch.float64

ANSWERED: list[tuple[str, Callable[[], torch.nn.Module], torch.Tensor]] = [
    ("dense 2d", lambda: nn.Dense(4), meta(2, 3)),
    ("dense flatten 4d", lambda: nn.Dense(4), meta(2, 3, 5, 2)),
    ("dense last axis", lambda: nn.Dense(4, flatten=False), meta(2, 3, 5)),
    ("dense one vector", lambda: nn.Dense(4, flatten=False), meta(5)),
    ("dense 1d flatten", lambda: nn.Dense(4), meta(5)),
    ("dense empty batch", lambda: nn.Dense(4), meta(0, 3, 2)),
    ("dense no bias", lambda: nn.Dense(4, use_bias=False, flatten=False), meta(7, 2, 6)),
    ("dense relu", lambda: nn.Dense(4, activation="relu"), meta(2, 3)),
    ("dense gelu 3d", lambda: nn.Dense(4, activation="gelu", flatten=False), meta(2, 3, 9)),
    ("dense in_units", lambda: nn.Dense(4, in_units=3), meta(2, 3)),
    ("dense float64", lambda: nn.Dense(4, dtype=F64), meta(2, 3, dtype=F64)),
    ("dense float16", lambda: nn.Dense(4, flatten=False, dtype=F16), meta(2, 3, 8, dtype=F16)),
    ("dense bfloat16", lambda: nn.Dense(4, dtype=BF16), meta(2, 3, dtype=BF16)),
    ("dense ready", lambda: ready(nn.Dense(4), meta(2, 3)), meta(5, 3)),
    ("embedding long", lambda: nn.Embedding(10, 4), meta(2, 3, dtype=torch.long)),
    ("embedding int32", lambda: nn.Embedding(10, 4), meta(2, 3, dtype=torch.int32)),
    ("embedding 1d", lambda: nn.Embedding(10, 4), meta(6, dtype=torch.long)),
    ("embedding scalar", lambda: nn.Embedding(10, 4), meta(dtype=torch.long)),
    ("embedding transposed", lambda: nn.Embedding(10, 4), meta(3, 2, dtype=torch.long).t()),
    ("embedding empty", lambda: nn.Embedding(10, 4), meta(0, 5, dtype=torch.long)),
    ("embedding float64", lambda: nn.Embedding(10, 4, dtype=F64), meta(2, 3, dtype=torch.long)),
    ("rmsnorm 3d", lambda: nn.RMSNorm(), meta(2, 3, 8)),
    ("rmsnorm 1d", lambda: nn.RMSNorm(), meta(8)),
    ("rmsnorm no scale", lambda: nn.RMSNorm(scale=False), meta(2, 8)),
    ("rmsnorm eps None", lambda: nn.RMSNorm(epsilon=None), meta(2, 8)),
    ("rmsnorm float16", lambda: nn.RMSNorm(dtype=F16), meta(2, 3, 8, dtype=F16)),
    ("rmsnorm bfloat16", lambda: nn.RMSNorm(dtype=BF16), meta(4, 8, dtype=BF16)),
    ("rmsnorm float64", lambda: nn.RMSNorm(dtype=F64), meta(4, 8, dtype=F64)),
    ("rmsnorm empty", lambda: nn.RMSNorm(), meta(0, 8)),
    ("rmsnorm ready", lambda: ready(nn.RMSNorm(), meta(2, 8)), meta(3, 5, 8)),
    ("layernorm 3d", lambda: nn.LayerNorm(), meta(2, 3, 8)),
    ("layernorm 1d", lambda: nn.LayerNorm(), meta(8)),
    ("layernorm no center", lambda: nn.LayerNorm(center=False), meta(2, 8)),
    ("layernorm no scale", lambda: nn.LayerNorm(scale=False), meta(2, 8)),
    ("layernorm neither", lambda: nn.LayerNorm(center=False, scale=False), meta(2, 8)),
    ("layernorm float16", lambda: nn.LayerNorm(dtype=F16), meta(2, 3, 8, dtype=F16)),
    ("layernorm bfloat16", lambda: nn.LayerNorm(dtype=BF16), meta(2, 8, dtype=BF16)),
    ("layernorm ready", lambda: ready(nn.LayerNorm(), meta(2, 8)), meta(4, 8)),
    ("activation relu", lambda: nn.Activation("relu"), meta(2, 3, 4, 4)),
    ("activation swish", lambda: nn.Activation("swish"), meta(5)),
    ("activation tanh f16", lambda: nn.Activation("tanh"), meta(2, 3, dtype=F16)),
    ("activation scalar", lambda: nn.Activation("sigmoid"), meta()),
]

DECLINED: list[tuple[str, Callable[[], torch.nn.Module], torch.Tensor]] = [
    ("dense callable act", lambda: nn.Dense(4, activation=lambda t: t[:, :2]), meta(3, 5)),
    ("dense transposed input", lambda: nn.Dense(4, flatten=False), meta(3, 5).t()),
    ("dense float64 input", lambda: nn.Dense(4, in_units=3), meta(2, 3, dtype=F64)),
    (
        "dense callable act, ready dtype",
        lambda: ready(nn.Dense(4), meta(2, 3)),
        meta(2, 3, dtype=F64),
    ),
    ("embedding float indices", lambda: nn.Embedding(10, 4), meta(2, 3)),
    ("rmsnorm transposed input", lambda: nn.RMSNorm(), meta(8, 3).t()),
    ("rmsnorm float16 input", lambda: nn.RMSNorm(in_channels=8), meta(2, 8, dtype=F16)),
    ("layernorm other dtype", lambda: nn.LayerNorm(in_channels=8), meta(2, 8, dtype=F64)),
    ("activation callable", lambda: nn.Activation(torch.relu), meta(2, 3)),
    ("activation transposed", lambda: nn.Activation("relu"), meta(2, 3).t()),
]


@pytest.mark.parametrize(("build", "x"), [c[1:] for c in ANSWERED], ids=[c[0] for c in ANSWERED])
def test_meta_forward_equals_the_meta_forward(build, x):
    fast, slow = both(build(), x)
    assert fast is not NotImplemented
    assert layout(fast) == layout(slow)


@pytest.mark.parametrize(("build", "x"), [c[1:] for c in DECLINED], ids=[c[0] for c in DECLINED])
def test_meta_forward_declines_what_it_does_not_answer(build, x):
    layer = build()
    ctx = Inference(layer)
    clone = ctx.clone(layer)
    with torch.no_grad():
        try:
            for _, p in clone._infer_own((x,), {}):
                ctx.stand_in(p)
        except (TypeError, ValueError):
            pass  # the hook refuses it: the forward would raise
        assert type(clone)._meta_forward(clone, x) is NotImplemented


def test_meta_forward_needs_stand_ins():
    """A deferred (not stood-in) parameter, or a real one, is never read by the shortcut:
    the forward runs and says what it says."""
    layer = nn.Dense(4, in_units=3)
    assert layer._meta_forward(meta(2, 3)) is NotImplemented  # DECLARED-free but deferred
    layer.initialize()
    assert layer._meta_forward(meta(2, 3)) is NotImplemented  # READY on the CPU
    norm = nn.RMSNorm(in_channels=8)
    assert norm._meta_forward(meta(2, 8)) is NotImplemented


class Passthrough(TorchFunctionMode):
    """A caller's own torch function mode: infer_shape then runs every kernel (no
    FastMeta, no layer shortcut), as it did before either existed."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        return func(*args, **(kwargs or {}))


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(t.shape) for n, t in [*module.named_parameters(), *module.named_buffers()]}


def _llama() -> torch.nn.Module:
    return zoo.llama(vocab_size=97, dim=32, n_layers=3, n_heads=4, hidden_dim=48, n_kv_heads=2)


def _transformer() -> torch.nn.Module:
    return nn.Sequential(
        nn.Dense(16, flatten=False),
        nn.TransformerEncoderLayer(num_heads=4, hidden_size=32),
        nn.LayerNorm(),
        nn.Dense(5, activation="gelu"),
    )


def _mlp() -> torch.nn.Module:
    return nn.Sequential(
        nn.Dense(8, activation="relu"), nn.Activation("tanh"), nn.RMSNorm(), nn.Dense(3)
    )


@pytest.mark.parametrize(
    ("build", "spec"),
    [
        (_llama, Spec((None, 7), torch.long)),
        (_llama, Spec((2, None), torch.long)),
        (_transformer, Spec((None, 5, 12))),
        (_mlp, Spec((None, 4, 6))),
        (_mlp, Spec((3, 6))),
        (lambda: zoo.lenet(), Spec((None, 1, 28, 28))),
        (lambda: zoo.resnet18(num_classes=7), Spec((None, 3, 32, 32))),
        (lambda: zoo.llama(97, 32, 2, 4, 48, rope_layout="half"), Spec((3, 5), torch.long)),
        (lambda: zoo.llama(97, 32, 2, 4, 48, positions="learned"), Spec((None, 5), torch.long)),
    ],
    ids=[
        "llama",
        "llama None seq",
        "transformer",
        "mlp",
        "mlp no None",
        "lenet",
        "resnet18",
        "llama half rotary",
        "llama learned positions",
    ],
)
def test_infer_shape_same_with_and_without_shortcuts(build, spec, monkeypatch):
    torch.manual_seed(0)
    fast_net = build()
    fast = fast_net.infer_shape(spec)
    torch.manual_seed(0)
    slow_net = build()
    with Passthrough():
        slow = slow_net.infer_shape(spec)
    assert fast == slow
    assert shapes(fast_net) == shapes(slow_net)
    assert all(lateinit.is_deferred(p) for p in fast_net.parameters())
    with monkeypatch.context() as m:  # FastMeta alone, without the layers' shortcuts
        m.setattr(Inference, "_shortcuts_allowed", lambda self: False)
        torch.manual_seed(0)
        mixed_net = build()
        assert mixed_net.infer_shape(spec) == fast
    assert shapes(mixed_net) == shapes(fast_net)


def test_a_callers_mode_sees_every_kernel():
    """Under the caller's own torch function mode, infer_shape adds none of its own and
    skips the shortcuts: the caller's mode sees the layers' kernels."""
    seen: list[str] = []

    class Recording(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    net = nn.Sequential(nn.Dense(8, flatten=False), nn.RMSNorm())
    with Recording():
        assert net.infer_shape(Spec((None, 3, 6))) == Spec((None, 3, 8))
    assert "linear" in seen and "rms_norm" in seen


def test_summary_counts_flops_through_the_kernels():
    """A summary's FLOP counter is a dispatch mode: no shortcut runs under it, so its
    counts are the kernels' (the Dense layers' matmuls: 2 * M * N * K each)."""
    net = nn.Sequential(nn.Dense(8, flatten=False), nn.RMSNorm(), nn.Dense(2))
    summary = net.summary(Spec((4, 3, 6)))
    assert [(r.path, r.flops) for r in summary.rows] == [
        ("", 1536),
        ("0", 2 * 12 * 6 * 8),
        ("1", 0),
        ("2", 2 * 4 * 24 * 2),
    ]
