"""Random stacks of layers on random inputs (hypothesis).

Each drawn network either runs, with every layer's output shape equal to its ``torch.nn``
twin's on the same input shape, or raises ``ShapeMismatchError`` naming a layer and is left
unchanged and usable — never a raw torch error from inside a kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lateinit
from lateinit import nn


@dataclass
class Spec:
    """A layer to draw: our layer, and its torch twin given the input shape it gets."""

    name: str
    ours: Callable[[], torch.nn.Module]
    twin: Callable[[tuple[int, ...]], torch.nn.Module]


def _image_layers() -> st.SearchStrategy[Spec]:
    conv = st.builds(
        lambda c, k, s, p, g: Spec(
            f"Conv2D({c}, {k}, strides={s}, padding={p}, groups={g})",
            lambda: nn.Conv2D(c * g, k, strides=s, padding=p, groups=g),
            lambda shape: torch.nn.Conv2d(shape[1], c * g, k, s, p, groups=g),
        ),
        st.integers(1, 4),
        st.integers(1, 4),
        st.integers(1, 2),
        st.integers(0, 2),
        st.sampled_from([1, 1, 2]),
    )
    pool = st.builds(
        lambda kind, k, s: Spec(
            f"{kind}Pool2D({k}, {s})",
            lambda: getattr(nn, f"{kind}Pool2D")(k, strides=s),
            lambda shape: getattr(torch.nn, f"{kind}Pool2d")(k, s),
        ),
        st.sampled_from(["Max", "Avg"]),
        st.integers(1, 3),
        st.integers(1, 2),
    )
    simple = st.sampled_from(
        [
            Spec("BatchNorm", nn.BatchNorm, lambda shape: torch.nn.BatchNorm2d(shape[1])),
            Spec(
                "GroupNorm(2)",
                lambda: nn.GroupNorm(2),
                lambda shape: torch.nn.GroupNorm(2, shape[1]),
            ),
            Spec("relu", lambda: nn.Activation("relu"), lambda shape: torch.nn.ReLU()),
            Spec("Dropout", lambda: nn.Dropout(0.5), lambda shape: torch.nn.Dropout(0.5)),
        ]
    )
    return st.one_of(conv, pool, simple)


def _heads() -> st.SearchStrategy[list[Spec]]:
    """What may close an image stack: nothing, or a pool/flatten and a Dense."""
    dense = st.integers(1, 6).map(
        lambda u: Spec(
            f"Dense({u})",
            lambda: nn.Dense(u),
            lambda shape: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(_flat(shape), u)),
        )
    )
    gap = Spec("GlobalAvgPool2D", nn.GlobalAvgPool2D, lambda shape: torch.nn.AdaptiveAvgPool2d(1))
    return st.one_of(st.just([]), dense.map(lambda d: [d]), dense.map(lambda d: [gap, d]))


def _flat(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape[1:]:
        n *= d
    return n


def _vector_layers() -> st.SearchStrategy[Spec]:
    dense = st.builds(
        lambda u, act: Spec(
            f"Dense({u}, {act})",
            lambda: nn.Dense(u, activation=act, flatten=False),
            lambda shape: torch.nn.Linear(shape[-1], u),
        ),
        st.integers(1, 8),
        st.sampled_from([None, "relu", "tanh"]),
    )
    norms = st.sampled_from(
        [
            Spec("LayerNorm", nn.LayerNorm, lambda shape: torch.nn.LayerNorm(shape[-1])),
            Spec("RMSNorm", nn.RMSNorm, lambda shape: torch.nn.RMSNorm(shape[-1])),
        ]
    )
    return st.one_of(dense, dense, norms)


@st.composite
def stacks(draw: st.DrawFn) -> tuple[list[Spec], tuple[int, ...], tuple[int, ...]]:
    """A stack and two input shapes (the second usually of another size)."""
    if draw(st.booleans()):
        layers = draw(st.lists(_image_layers(), min_size=1, max_size=4)) + draw(_heads())
        shape = (
            draw(st.integers(1, 3)),
            draw(st.integers(1, 4)),
            *draw(st.tuples(st.integers(1, 10), st.integers(1, 10))),
        )
        other = (shape[0], draw(st.integers(1, 4)), shape[2], shape[3])
    else:
        layers = draw(st.lists(_vector_layers(), min_size=1, max_size=4))
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 6)))
        other = (*shape[:-1], draw(st.integers(1, 6)))
    return layers, shape, other


def _snapshot(net: torch.nn.Module) -> list[tuple[str, bool, tuple[int, ...]]]:
    return [
        (name, lateinit.is_deferred(t), tuple(t.shape))
        for name, t in [*net.named_parameters(), *net.named_buffers()]
    ]


def _check_named(err: lateinit.ShapeMismatchError) -> None:
    message = str(err)
    assert "layer " in message and "Fix" in message, message


def _run_with_shapes(net: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape), tuple(o.shape))))
        for m in net
    ]
    try:
        out = net(x)
    finally:
        for h in hooks:
            h.remove()
    return out, seen


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stacks())
def test_random_stack_runs_like_torch_or_names_the_layer(drawn):
    specs, shape, other = drawn
    torch.manual_seed(0)
    net = nn.Sequential(*(spec.ours() for spec in specs)).eval()
    x = torch.randn(shape)
    before = _snapshot(net)
    try:
        out, seen = _run_with_shapes(net, x)
    except lateinit.ShapeMismatchError as err:
        event("first call: ShapeMismatchError")
        _check_named(err)
        assert _snapshot(net) == before  # rolled back: nothing half-initialized
        try:
            net(x)
        except lateinit.ShapeMismatchError as again:
            _check_named(again)
        else:
            raise AssertionError("the same input passed after failing once") from err
        return
    event("first call: ran")
    # It ran: each layer's output shape is its torch twin's on the same input shape.
    assert len(seen) == len(specs)
    for spec, (in_shape, out_shape) in zip(specs, seen, strict=True):
        twin = spec.twin(in_shape).eval()
        with torch.no_grad():
            assert tuple(twin(torch.randn(in_shape)).shape) == out_shape, spec.name
    # An input of another size runs or names the layer; the network keeps working.
    try:
        net(torch.randn(other))
        event("other size: ran")
    except lateinit.ShapeMismatchError as err:
        event("other size: ShapeMismatchError")
        _check_named(err)
    with torch.no_grad():
        assert torch.equal(net(x), out)
