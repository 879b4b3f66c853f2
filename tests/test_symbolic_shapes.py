"""Shapes of a custom block without a hook, read off its forward (Gluon 1.x style):
``lateinit.symbolic`` runs the forward on fake tensors with a symbolic size for each
unknown dim (docs/design.md, "Shapes from the forward")."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as TF

import lateinit
from lateinit import nn
from lateinit.nn import F


class MatDense(lateinit.Block):
    """Gluon 1.x: a ``(100, 0)`` weight multiplied by the input, no hook."""

    def __init__(self, units: int = 100, in_units: int = -1) -> None:
        super().__init__()
        self.weight = lateinit.Parameter((units, in_units))
        self.bias = lateinit.Parameter((units,), init="zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


def test_matmul_weight_inferred_and_initialized() -> None:
    torch.manual_seed(0)
    net = MatDense()
    x = torch.randn(2, 20)
    out = net(x)
    assert tuple(net.weight.shape) == (100, 20)
    assert lateinit.state(net.weight) == lateinit.State.READY
    assert out.shape == (2, 100)
    torch.testing.assert_close(out, x @ net.weight.T + net.bias)
    torch.manual_seed(0)
    given = MatDense(in_units=20)
    given(x)
    torch.testing.assert_close(net.weight, given.weight)  # same values as given the size
    assert net.weight.abs().sum() > 0
    assert type(net).forward is MatDense.forward and "forward" not in net.__dict__


class Generic(lateinit.Block):
    def __init__(self, shapes: dict[str, tuple[int, ...]], fn) -> None:
        super().__init__()
        for name, shape in shapes.items():
            setattr(self, name, lateinit.Parameter(shape))
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


@pytest.mark.parametrize(
    ("shapes", "fn", "x", "expected"),
    [
        (
            {"weight": (7, -1), "bias": (-1,)},
            lambda m, x: TF.linear(x, m.weight, m.bias),
            (2, 20),
            {"weight": (7, 20), "bias": (7,)},
        ),
        (
            {"weight": (7, -1), "bias": (-1,)},
            lambda m, x: F.FullyConnected(x, m.weight, m.bias, num_hidden=7),
            (2, 4, 5),
            {"weight": (7, 20), "bias": (7,)},
        ),
        (
            {"weight": (8, -1, 3, 3)},
            lambda m, x: TF.conv2d(x, m.weight, padding=1),
            (2, 3, 10, 10),
            {"weight": (8, 3, 3, 3)},
        ),
        ({"scale": (-1,)}, lambda m, x: x * m.scale, (2, 20), {"scale": (20,)}),
        (  # two unknown dims in one parameter
            {"w": (-1, -1)},
            lambda m, x: x @ m.w + x,
            (2, 20),
            {"w": (20, 20)},
        ),
        (  # an unknown dim tied to another parameter's known size
            {"a": (20, -1), "b": (6, 4)},
            lambda m, x: (x @ m.a) @ m.b,
            (2, 20),
            {"a": (20, 6), "b": (6, 4)},
        ),
        (  # a view of the parameter: the element count fixes it
            {"flat": (-1,)},
            lambda m, x: x @ m.flat.view(20, 3),
            (2, 20),
            {"flat": (60,)},
        ),
    ],
)
def test_torch_ops_fix_the_unknown_dims(shapes, fn, x, expected) -> None:
    net = Generic(shapes, fn)
    inp = torch.randn(*x)
    out = net(inp)
    for name, shape in expected.items():
        assert tuple(getattr(net, name).shape) == shape
        assert lateinit.state(getattr(net, name)) == lateinit.State.READY
    torch.testing.assert_close(out, fn(net, inp))


class HybridDense(nn.HybridBlock):
    def __init__(self, units: int) -> None:
        super().__init__()
        self.weight = lateinit.Parameter((units, -1))

    def hybrid_forward(self, F, x, weight):
        return F.relu(F.FullyConnected(x, weight, None, num_hidden=weight.shape[0], no_bias=True))


def test_hybrid_forward_without_hook() -> None:
    net = nn.HybridSequential()
    net.add(HybridDense(8), nn.Dense(2))
    assert net(torch.rand(3, 5)).shape == (3, 2)
    assert tuple(net[0].weight.shape) == (8, 5)


def test_infer_shape_data_free() -> None:
    net = MatDense()
    net.infer_shape(lateinit.Spec((None, 20)))
    assert tuple(net.weight.shape) == (100, 20)
    assert lateinit.state(net.weight) != lateinit.State.READY
    assert net(torch.randn(3, 20)).shape == (3, 100)


def test_infer_shape_of_a_container() -> None:
    net = nn.Sequential(MatDense(16), nn.Dense(3))
    net.infer_shape((4, 9))
    assert tuple(net[0].weight.shape) == (16, 9)


class SumOnly(lateinit.Block):
    def __init__(self) -> None:
        super().__init__()
        self.w = lateinit.Parameter((3, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w.sum()


def test_untied_dim_is_a_clear_error_and_rolls_back() -> None:
    net = SumOnly()
    tables = (dict(net._parameters), dict(net._buffers), dict(net._modules))
    with pytest.raises(RuntimeError, match=r"dim 1 of 'w' \(3, -1\).*infer_param_shapes"):
        net(torch.randn(2, 4))
    assert tuple(net.w.shape) == (3, -1)
    assert isinstance(net.w, lateinit.Parameter)
    assert (dict(net._parameters), dict(net._buffers), dict(net._modules)) == tables
    assert all(a is b for a, b in zip(net._parameters.values(), tables[0].values(), strict=True))


class Branches(lateinit.Block):
    def __init__(self) -> None:
        super().__init__()
        self.w = lateinit.Parameter((-1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.w.shape[0] > 4:
            return x
        return x @ self.w


def test_branch_on_unknown_dim_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"dim 0 of 'w'.*branches"):
        Branches()(torch.randn(2, 5))


def test_forward_failing_on_fakes_names_the_block(caplog: pytest.LogCaptureFixture) -> None:
    net = Generic({"w": (-1, 3), "b": (5,)}, lambda m, x: x @ m.w + m.b)
    with pytest.raises(RuntimeError, match=r"reading them off its forward") as info:
        net(torch.randn(2, 5))
    assert isinstance(info.value.__cause__, Exception)
    assert tuple(net.w.shape) == (-1, 3)
    assert not [r for r in caplog.records if r.levelno >= 40]  # fake tensors' log: quiet


class Hooked(MatDense):
    calls = 0

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        type(self).calls += 1
        self.weight.shape = (self.weight.shape[0], x.shape[-1])


def test_hook_wins() -> None:
    net = Hooked(4)
    net(torch.randn(2, 6))
    assert Hooked.calls == 1
    assert tuple(net.weight.shape) == (4, 6)


class WithChild(lateinit.Block):
    def __init__(self) -> None:
        super().__init__()
        self.w = lateinit.Parameter((-1, 4))
        self.inner = nn.Dense(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x @ self.w)


def test_deferred_child_needs_the_hook() -> None:
    net = WithChild()
    with pytest.raises(RuntimeError, match=r"infer_param_shapes.*'inner' is not"):
        net(torch.randn(2, 5))
    assert isinstance(net.inner.weight, lateinit.Parameter)


def test_ready_child_is_fine() -> None:
    net = WithChild()
    net.inner(torch.randn(1, 4))  # READY child
    assert net(torch.randn(2, 5)).shape == (2, 3)
    assert tuple(net.w.shape) == (5, 4)


def test_ready_sibling_runs_while_fake_run() -> None:
    ready = MatDense(8, 6)
    ready(torch.randn(1, 6))
    errors: list[BaseException] = []
    stop = threading.Event()

    def spin() -> None:
        try:
            while not stop.is_set():
                assert ready(torch.randn(2, 6)).shape == (2, 8)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=spin)
    t.start()
    try:
        for _ in range(5):
            assert MatDense(8)(torch.randn(2, 6)).shape == (2, 8)
    finally:
        stop.set()
        t.join()
    assert not errors
