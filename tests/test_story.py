"""The seed story of docs/design.md ("The story"), end to end, and its three exercises."""

from __future__ import annotations

import math

import pytest
import torch

import lateinit
from lateinit import DeferredInitializationError, ShapeMismatchError, init, nn


def _row(params: lateinit.ParameterDict, name: str) -> str:
    """The repr line of one parameter."""
    rows = [line for line in repr(params).splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 1, repr(params)
    return rows[0]


def _seed_net() -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"))
    net.add(nn.Dense(10))
    return net


def _xavier_bound(fan_out: int, fan_in: int) -> float:
    """Gluon's Xavier() default: uniform, factor 'avg', magnitude 3."""
    return math.sqrt(3.0 / ((fan_in + fan_out) / 2.0))


# -- the story -------------------------------------------------------------------------


def test_seed_story_end_to_end():
    torch.manual_seed(0)
    net = _seed_net()

    # 1. No input sizes anywhere: -1 marks the unknown dims.
    params = net.collect_params()
    assert list(params) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    expected_before = {
        "0.weight": "(256, -1)",
        "0.bias": "(256,)",
        "1.weight": "(10, -1)",
        "1.bias": "(10,)",
    }
    for name, shape in expected_before.items():
        row = _row(params, name)
        assert shape in row, row
        assert "float32" in row, row
    assert "DECLARED" in _row(params, "0.weight")
    assert "DECLARED" in _row(params, "1.weight")
    assert tuple(net[0].weight.shape) == (256, -1)
    assert repr(net[0]) == "Dense(-1 -> 256, relu)"

    # 2. Early access says why and how to fix.
    with pytest.raises(DeferredInitializationError) as excinfo:
        net[0].weight.data  # noqa: B018
    message = str(excinfo.value)
    assert "0.weight" in message
    assert "(256, -1)" in message
    assert "deferred" in message

    # 3. initialize() only registers the initializer: the unknown dims stay unknown.
    weights = [net[0].weight, net[1].weight]
    net.initialize(init.Xavier())
    params = net.collect_params()
    for name, shape in expected_before.items():
        assert shape in _row(params, name)
    assert lateinit.is_deferred(net[0].weight) and lateinit.is_deferred(net[1].weight)
    with pytest.raises(DeferredInitializationError):
        net[0].weight.data  # noqa: B018

    # 4. The first batch: shapes inferred layer by layer, then initialized.
    X = torch.rand(2, 20)
    out = net(X)
    assert out.shape == (2, 10)
    params = net.collect_params()
    expected_after = {
        "0.weight": "(256, 20)",
        "0.bias": "(256,)",
        "1.weight": "(10, 256)",
        "1.bias": "(10,)",
    }
    for name, shape in expected_after.items():
        row = _row(params, name)
        assert shape in row and "READY" in row, row
    assert [tuple(p.shape) for p in params.values()] == [(256, 20), (256,), (10, 256), (10,)]
    assert repr(net[0]) == "Dense(20 -> 256, relu)"
    assert repr(net[1]) == "Dense(256 -> 10)"
    # The parameter objects are the ones seen before the first batch.
    assert net[0].weight is weights[0] and net[1].weight is weights[1]
    for p in params.values():
        assert type(p) is torch.nn.Parameter
        assert not lateinit.is_deferred(p)

    # 5. The registered initializer was used (Xavier's bound, not Dense's default one).
    for layer, (fan_out, fan_in) in zip(net, [(256, 20), (10, 256)], strict=True):
        bound = _xavier_bound(fan_out, fan_in)
        w = layer.weight.detach()
        assert w.abs().max() <= bound + 1e-6
        assert w.abs().max() > 0.9 * bound  # uses the whole range: really uniform(-b, b)
        assert abs(w.mean().item()) < bound / 4
    # Biases keep their own initializer (Gluon's zeros).
    assert torch.equal(net[0].bias.detach(), torch.zeros(256))
    assert torch.equal(net[1].bias.detach(), torch.zeros(10))
    # The output is the computation with those parameters.
    expected = torch.relu(X @ net[0].weight.T + net[0].bias) @ net[1].weight.T + net[1].bias
    torch.testing.assert_close(out, expected)


def test_default_initializer_differs_from_registered_one():
    """Guards the Xavier check above: without initialize(init.Xavier()) the weight of
    Dense(10) over 256 inputs uses torch.nn.Linear's bound 1/sqrt(256), well below."""
    torch.manual_seed(0)
    net = _seed_net()
    net(torch.rand(2, 20))
    assert net[1].weight.detach().abs().max() <= 1 / math.sqrt(256) + 1e-6
    assert net[0].weight.detach().abs().max() > _xavier_bound(256, 20)


# -- exercise 1: input size given ------------------------------------------------------


def test_input_size_given_initializes_that_layer_at_once():
    net = nn.Sequential(nn.Dense(256, activation="relu", in_units=20), nn.Dense(10))
    assert tuple(net[0].weight.shape) == (256, 20)
    assert lateinit.is_deferred(net[0].weight)  # nothing is created before initialize()

    net.initialize(init.Xavier())
    assert not lateinit.is_deferred(net[0].weight)
    assert not lateinit.is_deferred(net[0].bias)
    assert type(net[0].weight) is torch.nn.Parameter
    assert net[0].weight.abs().max() <= _xavier_bound(256, 20) + 1e-6
    # The later layer still waits for data.
    assert lateinit.is_deferred(net[1].weight)
    assert tuple(net[1].weight.shape) == (10, -1)
    assert "DECLARED" in _row(net.collect_params(), "1.weight")
    with pytest.raises(DeferredInitializationError):
        net[1].weight.data  # noqa: B018

    first = net[0].weight.detach().clone()
    net(torch.rand(2, 20))
    assert tuple(net[1].weight.shape) == (10, 256)
    assert not lateinit.is_deferred(net[1].weight)
    assert torch.equal(net[0].weight.detach(), first)  # the first pass did not touch it


# -- exercise 2: mismatching sizes -----------------------------------------------------


class _Model(nn.Block):
    """A user block holding a network under the attribute ``encoder``."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Dense(16, activation="relu", in_units=20), nn.Dense(4))
        self.head = nn.Dense(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _second_layer_net() -> nn.Sequential:
    # The second layer of a Sequential is fixed at 20 input features.
    return nn.Sequential(nn.Activation("relu"), nn.Dense(10, in_units=20))


MISMATCH_CASES = {
    "sequential-second-layer": (_second_layer_net, "1"),
    "nested-in-user-block": (_Model, "encoder.0"),
}


@pytest.mark.parametrize("state", ["declared", "initialized", "ready"])
@pytest.mark.parametrize("case", list(MISMATCH_CASES))
def test_mismatching_sizes_name_the_layer_and_change_nothing(case, state, h):
    build, path = MISMATCH_CASES[case]
    torch.manual_seed(0)
    net = build()
    good = torch.rand(2, 20)
    if state == "ready":
        net(good)
    elif state == "initialized":
        net.initialize()
    before = h.snapshot(net)
    reference = net(good) if state == "ready" else None

    bad = torch.rand(2, 30)
    with pytest.raises(ShapeMismatchError) as excinfo:
        net(bad)
    message = str(excinfo.value)
    assert f"'{path}'" in message  # the layer's path inside the network called
    assert "Dense" in message  # its type
    assert "20" in message  # the size it expects
    assert "(2, 30)" in message  # the shape it got
    assert "Fix" in message  # how to fix it
    assert "mat1 and mat2" not in message

    # The network is unchanged and keeps working with valid input.
    h.assert_same_snapshot(before, h.snapshot(net))
    out = net(good)
    if reference is not None:
        assert torch.equal(out, reference)
    h.assert_all_ready(net)


# -- exercise 3: inputs of varying size ------------------------------------------------


class _MultiInput(nn.Block):
    """One input layer per input size in front of one shared trunk."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.inputs = nn.Sequential(*[nn.Dense(16, activation="relu") for _ in sizes])
        self._index = {size: i for i, size in enumerate(sizes)}
        self.trunk = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.inputs[self._index[x.shape[-1]]](x))


def test_varying_sizes_one_block_instance_used_twice():
    torch.manual_seed(0)
    net = _MultiInput((20, 30))
    a, b = torch.rand(4, 20), torch.rand(5, 30)
    out_a, out_b = net(a), net(b)
    assert out_a.shape == (4, 3) and out_b.shape == (5, 3)
    assert tuple(net.inputs[0].weight.shape) == (16, 20)
    assert tuple(net.inputs[1].weight.shape) == (16, 30)
    assert tuple(net.trunk[0].weight.shape) == (8, 16)
    # The trunk's parameters are listed once and receive gradients from both inputs.
    names = list(net.collect_params())
    assert names.count("trunk.0.weight") == 1
    assert len(names) == len(set(names)) == 8
    (net(a).sum() + net(b).sum()).backward()
    trunk_w = net.trunk[0].weight
    only_a = torch.autograd.grad(net(a).sum(), trunk_w)[0]
    only_b = torch.autograd.grad(net(b).sum(), trunk_w)[0]
    torch.testing.assert_close(trunk_w.grad, only_a + only_b)


def test_varying_sizes_share_parameters():
    torch.manual_seed(0)

    def make() -> nn.Sequential:
        return nn.Sequential(
            nn.Dense(16, activation="relu"), nn.Dense(8, activation="relu"), nn.Dense(3)
        )

    net20, net30 = make(), make()
    # Tie the trunk (layers 1 and 2) by structural name, before any shape is known.
    net30.share_parameters(net20.collect_params(r"[12]\."))
    for i in (1, 2):
        assert net30[i].weight is net20[i].weight
        assert net30[i].bias is net20[i].bias
    assert net30[0].weight is not net20[0].weight

    x20, x30 = torch.rand(4, 20), torch.rand(4, 30)
    out20, out30 = net20(x20), net30(x30)
    assert out20.shape == out30.shape == (4, 3)
    assert tuple(net20[0].weight.shape) == (16, 20)
    assert tuple(net30[0].weight.shape) == (16, 30)
    for i in (1, 2):
        assert net30[i].weight is net20[i].weight
        assert not lateinit.is_deferred(net20[i].weight)
    # Same trunk: the 30-input network is its own input layer followed by net20's trunk.
    torch.testing.assert_close(out30, net20[2](net20[1](net30[0](x30))))
