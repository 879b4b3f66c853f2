"""Basic layers and Sequential (docs/design.md, "Public API"): Dense (Gluon semantics), Activation,
Dropout, Flatten, Lambda, Identity; Sequential's API; mixing with plain torch modules;
Gluon-style repr; state_dict round trips; torch.compile on a READY network.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lateinit
from lateinit import init, nn

ACTIVATIONS = {
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softrelu": F.softplus,
    "softsign": F.softsign,
    "gelu": F.gelu,
    "silu": F.silu,
}


def assert_ready(net):
    for name, p in net.named_parameters():
        assert type(p) is torch.nn.Parameter, name
    for m in net.modules():
        if isinstance(m, nn.Block):
            assert "forward" not in m.__dict__


def copy_into_linear(dense):
    out_features, in_features = dense.weight.shape
    linear = torch.nn.Linear(in_features, out_features, bias=dense.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(dense.weight)
        if dense.bias is not None:
            linear.bias.copy_(dense.bias)
    return linear


# --------------------------------------------------------------------------------------
# Dense


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=2, max_size=4),
    units=st.integers(1, 9),
    flatten=st.booleans(),
)
def test_dense_infers_in_units(shape, units, flatten):
    x = torch.rand(*shape)
    layer = nn.Dense(units, flatten=flatten)
    out = layer(x)
    if flatten:
        in_units = math.prod(shape[1:])
        expected = F.linear(x.reshape(shape[0], -1), layer.weight, layer.bias)
    else:
        in_units = shape[-1]
        expected = F.linear(x, layer.weight, layer.bias)
    assert layer.weight.shape == (units, in_units)
    assert layer.bias.shape == (units,)
    assert out.shape == expected.shape
    assert out.shape == ((shape[0], units) if flatten else (*shape[:-1], units))
    assert torch.equal(out, expected)
    assert torch.equal(layer(x), out)  # the READY path gives the same


def test_dense_flatten_true_flattens_all_but_first_axis():
    layer = nn.Dense(7)
    x = torch.rand(2, 3, 4, 5)
    out = layer(x)
    assert layer.weight.shape == (7, 60)
    assert out.shape == (2, 7)
    assert torch.equal(out, F.linear(x.reshape(2, 60), layer.weight, layer.bias))


def test_dense_flatten_false_applies_to_last_axis():
    layer = nn.Dense(7, flatten=False)
    x = torch.rand(2, 3, 5)
    out = layer(x)
    assert layer.weight.shape == (7, 5)
    assert out.shape == (2, 3, 7)
    for i in range(3):
        torch.testing.assert_close(out[:, i], F.linear(x[:, i], layer.weight, layer.bias))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_dense_activation_by_name(name):
    layer = nn.Dense(6, activation=name)
    x = torch.randn(4, 5)
    out = layer(x)
    expected = ACTIVATIONS[name](F.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert not torch.equal(out, F.linear(x, layer.weight, layer.bias))  # it was applied


def test_dense_activation_callable():
    layer = nn.Dense(6, activation=lambda t: t * 3 - 1)
    x = torch.randn(4, 5)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias) * 3 - 1)
    layer = nn.Dense(6, activation=torch.nn.Hardtanh(-0.1, 0.1))
    out = layer(x)
    assert out.abs().max() <= 0.1
    torch.testing.assert_close(out, F.hardtanh(F.linear(x, layer.weight, layer.bias), -0.1, 0.1))


def test_dense_unknown_activation_is_a_value_error():
    with pytest.raises(ValueError, match="no_such_act"):
        nn.Dense(3, activation="no_such_act")


def test_dense_without_bias():
    layer = nn.Dense(4, use_bias=False)
    assert layer.bias is None
    assert list(layer.collect_params()) == ["weight"]
    x = torch.rand(3, 5)
    out = layer(x)
    assert list(dict(layer.named_parameters())) == ["weight"]
    assert torch.equal(out, x @ layer.weight.T)


def test_dense_with_in_units_is_eager():
    layer = nn.Dense(4, in_units=3)
    assert layer.weight.shape == (4, 3) and layer.weight.state == "SHAPED"
    assert layer.initialize() is layer
    assert_ready(layer)
    x = torch.rand(2, 3)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))


def test_dense_weight_and_bias_initializers():
    layer = nn.Dense(3, weight_initializer=init.Constant(0.5), bias_initializer=init.One())
    x = torch.rand(2, 4)
    out = layer(x)
    assert torch.equal(layer.weight, torch.full((3, 4), 0.5))
    assert torch.equal(layer.bias, torch.ones(3))
    torch.testing.assert_close(out, 0.5 * x.sum(1, keepdim=True).expand(2, 3) + 1)
    layer = nn.Dense(3, weight_initializer="zeros", bias_initializer=torch.nn.init.ones_)
    layer(x)
    assert torch.equal(layer.weight, torch.zeros(3, 4))
    assert torch.equal(layer.bias, torch.ones(3))


@pytest.mark.parametrize(
    "kwargs",
    [{"units": 0}, {"units": -3}, {"units": True}, {"units": 4, "in_units": -2}],
    ids=str,
)
def test_dense_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        nn.Dense(**kwargs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dense_dtype(dtype):
    layer = nn.Dense(3, dtype=dtype)
    out = layer(torch.rand(2, 4, dtype=dtype))
    assert layer.weight.dtype == dtype and layer.bias.dtype == dtype and out.dtype == dtype


@settings(max_examples=25, deadline=None)
@given(
    in_units=st.integers(1, 40),
    units=st.integers(1, 40),
    batch=st.integers(1, 8),
    use_bias=st.booleans(),
    deferred=st.booleans(),
)
def test_dense_equals_torch_linear(in_units, units, batch, use_bias, deferred):
    dense = nn.Dense(units, use_bias=use_bias, in_units=None if deferred else in_units)
    x = torch.randn(batch, in_units)
    if deferred:
        dense(x)
    else:
        dense.initialize()
    linear = copy_into_linear(dense)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_dense, out_linear = dense(x1), linear(x2)
    assert torch.equal(out_dense, out_linear)
    g = torch.randn_like(out_dense)
    (out_dense * g).sum().backward()
    (out_linear * g).sum().backward()
    assert torch.equal(dense.weight.grad, linear.weight.grad)
    if use_bias:
        assert torch.equal(dense.bias.grad, linear.bias.grad)
    assert torch.equal(x1.grad, x2.grad)


def test_dense_first_call_output_equals_torch_linear():
    dense = nn.Dense(8, activation="tanh")
    x = torch.randn(3, 5)
    first = dense(x)  # the initializing call
    linear = copy_into_linear(dense)
    assert torch.equal(first, torch.tanh(linear(x)))


# --------------------------------------------------------------------------------------
# Activation, Dropout, Flatten, Lambda, Identity


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_by_name(name):
    x = torch.randn(5, 6)
    torch.testing.assert_close(nn.Activation(name)(x), ACTIVATIONS[name](x), rtol=0, atol=0)


def test_activation_callable_and_bad_name():
    x = torch.randn(5, 6)
    assert torch.equal(nn.Activation(torch.abs)(x), x.abs())
    with pytest.raises(ValueError, match="no_such_act"):
        nn.Activation("no_such_act")


def test_dropout_eval_is_identity():
    layer = nn.Dropout(0.5)
    layer.eval()
    x = torch.rand(50, 40)
    assert torch.equal(layer(x), x)
    net = nn.Sequential(nn.Dense(8), nn.Dropout(0.9))
    net.eval()
    assert not net[1].training
    y = net(x)
    assert torch.equal(y, F.linear(x, net[0].weight, net[0].bias))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_train_rate_and_scale(rate):
    torch.manual_seed(0)
    layer = nn.Dropout(rate)
    assert layer.training
    x = torch.ones(400, 500)
    y = layer(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(rate, abs=0.01)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - rate)))
    assert y.mean().item() == pytest.approx(1.0, abs=0.03)


def test_dropout_zero_rate_is_identity_in_training():
    x = torch.rand(10, 10)
    assert torch.equal(nn.Dropout(0.0)(x), x)


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((200, 50, 40), (1,)), ((50, 200, 40), (0, 2)), ((100, 30, 4, 4), (2, 3))],
    ids=str,
)
def test_dropout_axes_share_the_mask(shape, axes):
    torch.manual_seed(0)
    rate = 0.4
    layer = nn.Dropout(rate, axes=axes)
    y = layer(torch.ones(shape))
    # one mask value along every shared axis
    first = y
    for axis in axes:
        first = first.narrow(axis, 0, 1)
    assert torch.equal(y, first.expand(shape))
    mask = first.flatten()
    assert (mask == 0).float().mean().item() == pytest.approx(rate, abs=0.03)
    kept = mask[mask != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - rate)))


def test_dropout_reproducible_under_seed():
    torch.manual_seed(1)
    a = nn.Dropout(0.5)(torch.ones(20, 20))
    torch.manual_seed(1)
    b = nn.Dropout(0.5)(torch.ones(20, 20))
    assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (5, 1, 2, 3), (4,)], ids=str)
def test_flatten(shape):
    x = torch.rand(shape)
    out = nn.Flatten()(x)
    assert out.shape == (shape[0], math.prod(shape[1:]))
    assert torch.equal(out, x.reshape(shape[0], -1))


@pytest.mark.parametrize(
    ("function", "reference"),
    [
        ("tanh", torch.tanh),
        ("relu", F.relu),
        ("sigmoid", torch.sigmoid),
        (lambda t: t * 2 + 1, lambda t: t * 2 + 1),
        (torch.exp, torch.exp),
    ],
    ids=["tanh", "relu", "sigmoid", "lambda", "torch.exp"],
)
def test_lambda(function, reference):
    x = torch.randn(3, 4)
    torch.testing.assert_close(nn.Lambda(function)(x), reference(x), rtol=0, atol=0)


def test_lambda_bad_arguments():
    with pytest.raises(ValueError, match="no_such_fn"):
        nn.Lambda("no_such_fn")
    with pytest.raises(TypeError):
        nn.Lambda(3)


def test_identity():
    x = torch.randn(3, 4)
    assert nn.Identity()(x) is x


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Activation("relu"),
        lambda: nn.Dropout(0.5),
        nn.Flatten,
        lambda: nn.Lambda("tanh"),
        nn.Identity,
    ],
    ids=["Activation", "Dropout", "Flatten", "Lambda", "Identity"],
)
def test_parameterless_layers_are_blocks_without_parameters(make):
    layer = make()
    assert isinstance(layer, nn.Block) and isinstance(layer, torch.nn.Module)
    assert list(layer.parameters()) == []
    assert len(layer.collect_params()) == 0
    layer(torch.rand(2, 3))
    assert "forward" not in layer.__dict__


# --------------------------------------------------------------------------------------
# Sequential


def test_sequential_add_and_index():
    net = nn.Sequential()
    a, b, c = nn.Dense(8), nn.Activation("relu"), nn.Dense(2)
    assert net.add(a, b) is None
    net.add(c)
    assert len(net) == 3
    assert net[0] is a and net[1] is b and net[2] is c
    assert net[-1] is c and net[-3] is a
    assert list(net) == [a, b, c]
    assert [name for name, _ in net.named_children()] == ["0", "1", "2"]
    x = torch.rand(4, 5)
    torch.testing.assert_close(net(x), c(b(a(x))))


@pytest.mark.parametrize("as_list", [False, True], ids=["varargs", "list"])
def test_sequential_constructor(as_list):
    a, b = nn.Dense(3), nn.Dense(2)
    net = nn.Sequential([a, b]) if as_list else nn.Sequential(a, b)
    assert len(net) == 2 and net[0] is a and net[1] is b
    assert list(net.collect_params()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_sequential_index_out_of_range():
    net = nn.Sequential(nn.Dense(3))
    with pytest.raises(IndexError):
        net[1]
    with pytest.raises(IndexError):
        net[-2]


def test_sequential_add_rejects_non_modules():
    with pytest.raises(TypeError):
        nn.Sequential().add(lambda x: x)


@pytest.mark.parametrize("index", [slice(1, None), slice(None, 2), slice(None, None, 2)], ids=str)
def test_sequential_slice_shares_children(index):
    blocks = [nn.Dense(8), nn.Activation("relu"), nn.Dense(4), nn.Dense(2)]
    net = nn.Sequential(*blocks)
    part = net[index]
    assert isinstance(part, nn.Sequential)
    assert len(part) == len(blocks[index])
    assert all(p is b for p, b in zip(part, blocks[index], strict=True))


def test_sequential_slice_runs_with_shared_parameters():
    net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(4), nn.Dense(2))
    x = torch.rand(3, 5)
    out = net(x)
    head, tail = net[:1], net[1:]
    assert torch.equal(tail(head(x)), out)
    assert tail[0].weight is net[1].weight
    # a slice taken before the first batch shares the deferred parameters too
    fresh = nn.Sequential(nn.Dense(8), nn.Dense(2))
    tail = fresh[1:]
    fresh(torch.rand(3, 5))
    assert tail[0].weight is fresh[1].weight and tail[0].weight.shape == (2, 8)


def test_sequential_with_plain_torch_modules():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(8), torch.nn.ReLU(), torch.nn.Linear(8, 6), nn.Dense(3))
    assert list(net.collect_params()) == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "3.weight",
        "3.bias",
    ]
    linear_weight = net[2].weight
    x = torch.rand(4, 5)
    out = net(x)
    assert net[2].weight is linear_weight
    assert net[3].weight.shape == (3, 6)
    h = F.relu(F.linear(x, net[0].weight, net[0].bias))
    expected = F.linear(net[2](h), net[3].weight, net[3].bias)
    assert torch.equal(out, expected)
    assert_ready(net)


def test_sequential_initialize_leaves_torch_modules_alone():
    net = nn.Sequential(torch.nn.Linear(4, 3), nn.Dense(2))
    before = net[0].weight.detach().clone()
    net.initialize(init.One())
    net(torch.rand(2, 4))
    assert torch.equal(net[0].weight, before)
    assert torch.equal(net[1].weight, torch.ones(2, 3))


def test_block_inside_torch_sequential():
    dense = nn.Dense(3, activation="tanh")
    outer = torch.nn.Sequential(torch.nn.Linear(5, 6), dense)
    params = list(outer.parameters())
    assert any(lateinit.is_deferred(p) for p in params)
    optimizer = torch.optim.SGD(outer.parameters(), lr=0.1)
    x = torch.rand(4, 5)
    out = outer(x)
    assert out.shape == (4, 3)
    assert dense.weight.shape == (3, 6)
    assert all(a is b for a, b in zip(params, outer.parameters(), strict=True))
    assert list(outer.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    before = dense.weight.detach().clone()
    out.sum().backward()
    optimizer.step()
    assert not torch.equal(before, dense.weight)
    assert_ready(dense)


def test_block_inside_custom_torch_module():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(4))
            self.head = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.body(x))

    model = Model()
    x = torch.rand(3, 7)
    out = model(x)
    assert out.shape == (3, 1)
    assert model.body[0].weight.shape == (8, 7)
    assert torch.equal(model(x), out)
    assert_ready(model.body)


# --------------------------------------------------------------------------------------
# repr (Gluon)


@pytest.mark.parametrize(
    ("make", "x", "before", "after"),
    [
        (
            lambda: nn.Dense(256, activation="relu"),
            torch.rand(2, 20),
            "Dense(-1 -> 256, relu)",
            "Dense(20 -> 256, relu)",
        ),
        (lambda: nn.Dense(10), torch.rand(2, 20), "Dense(-1 -> 10)", "Dense(20 -> 10)"),
        (
            lambda: nn.Dense(10, activation="tanh"),
            torch.rand(2, 3, 4),
            "Dense(-1 -> 10, tanh)",
            "Dense(12 -> 10, tanh)",
        ),
        (
            lambda: nn.Dense(10, in_units=20),
            torch.rand(2, 20),
            "Dense(20 -> 10)",
            "Dense(20 -> 10)",
        ),
    ],
    ids=["relu", "plain", "flatten", "in_units"],
)
def test_dense_repr(make, x, before, after):
    layer = make()
    assert repr(layer) == before
    layer(x)
    assert repr(layer) == after


def test_sequential_repr():
    net = nn.Sequential(nn.Dense(256, activation="relu"), nn.Dense(10))
    text = repr(net)
    assert text.startswith("Sequential(")
    assert "(0): Dense(-1 -> 256, relu)" in text and "(1): Dense(-1 -> 10)" in text
    net(torch.rand(2, 20))
    text = repr(net)
    assert "(0): Dense(20 -> 256, relu)" in text and "(1): Dense(256 -> 10)" in text


# --------------------------------------------------------------------------------------
# state_dict, torch.compile


def _net():
    return nn.Sequential(
        nn.Dense(16, activation="relu"), nn.Dropout(0.5), nn.Dense(8), torch.nn.Tanh(), nn.Dense(3)
    )


def test_state_dict_round_trip_between_ready_networks():
    x = torch.rand(4, 6)
    torch.manual_seed(0)
    source = _net()
    source.eval()
    expected = source(x)
    torch.manual_seed(1)
    target = _net()
    target.eval()
    target(x)
    assert not torch.equal(target(x), expected)
    state = source.state_dict()
    assert list(state) == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "4.weight",
        "4.bias",
    ]
    assert all(type(v) is torch.Tensor for v in state.values())
    target.load_state_dict(state)
    assert torch.equal(target(x), expected)
    for a, b in zip(source.parameters(), target.parameters(), strict=True):
        assert a is not b and torch.equal(a, b)


def test_state_dict_through_torch_save_weights_only():
    x = torch.rand(4, 6)
    source = _net().eval()
    expected = source(x)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    target = _net().eval()
    target(x)
    target.load_state_dict(state)
    assert torch.equal(target(x), expected)


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Dense(16, activation="gelu"),
        nn.Dropout(0.5),
        nn.Dense(8, flatten=False, activation=torch.tanh),
        nn.Lambda("sigmoid"),
        nn.Identity(),
        nn.Dense(3, use_bias=False),
    )
    net.eval()
    x = torch.rand(4, 2, 3)
    eager = net(x)  # the initializing call runs eagerly
    assert_ready(net)
    compiled = torch.compile(net, fullgraph=True)
    torch.testing.assert_close(compiled(x), eager, rtol=1e-6, atol=1e-6)
    x2 = torch.rand(4, 2, 3)
    torch.testing.assert_close(compiled(x2), net(x2), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("layer", "unknown"),
    [
        (lambda size: nn.Dense(4, in_units=size), "weight"),
        (lambda size: nn.Conv2D(4, 3, in_channels=size), "weight"),
        (lambda size: nn.BatchNorm(in_channels=size), "gamma"),
        (lambda size: nn.LSTM(4, input_size=size), "weight_ih_l0"),
    ],
    ids=["Dense", "Conv2D", "BatchNorm", "LSTM"],
)
def test_none_and_gluons_zero_both_mean_an_unknown_input_size(layer, unknown):
    """One spelling, None, for an unknown input size in every constructor; Gluon's 0 is
    accepted as the same."""
    for size in (None, 0):
        param = getattr(layer(size), unknown)
        assert lateinit.state(param) == "DECLARED", (size, param)
        assert -1 in tuple(param.shape)
