"""The Parameter lifecycle (DECLARED -> SHAPED -> READY), docs/design.md ("Lifecycle").

Covers: the logical shape with -1 and its merge rules, state/is_deferred/initializer/repr,
the DeferredInitializationError gate and its message, what works before READY (conversions,
requires_grad_, deepcopy, pickle, torch.optim), identity across materialization, a READY
parameter being a plain torch.nn.Parameter with nothing left on the hot path, and
reproducible values under one torch.manual_seed.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lateinit
from lateinit import DeferredInitializationError, ShapeMismatchError, init, nn

# --------------------------------------------------------------------------------------
# helpers


class Scale(nn.Block):
    """A user block with its own parameter of unknown shape: ``x * gamma`` (last axis)."""

    def __init__(self, initializer=None):
        super().__init__()
        self.gamma = lateinit.Parameter((-1,), initializer)

    def infer_param_shapes(self, x):
        self.gamma.shape = (x.shape[-1],)

    def forward(self, x):
        return x * self.gamma


def mlp(in_units=(None, None, None)):
    """A nested network: Sequential(Sequential(Dense, Dense), Dense)."""
    a, b, c = in_units
    return nn.Sequential(
        nn.Sequential(nn.Dense(16, activation="relu", in_units=a), nn.Dense(12, in_units=b)),
        nn.Dense(4, in_units=c),
    )


def values(net):
    return {name: p.detach().clone() for name, p in net.named_parameters()}


def assert_same_values(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def assert_fully_ready(net):
    for name, p in net.named_parameters():
        assert type(p) is torch.nn.Parameter, name
        assert not lateinit.is_deferred(p), name
    for name, m in net.named_modules():
        if isinstance(m, nn.Block):
            assert "forward" not in m.__dict__, f"{name or 'root'} still has a first-call hook"


def assert_deferred_message(message, name, shape):
    """The message names the parameter, its partial shape, says initialization was
    deferred and gives the three fixes."""
    assert repr(name) in message, message
    assert shape in message, message
    assert "deferred" in message.lower(), message
    assert "batch" in message.lower(), message
    assert "infer_shape(" in message, message
    assert "in_units" in message, message


# --------------------------------------------------------------------------------------
# shape, state, is_deferred, initializer, repr


def test_declared_layer_shows_minus_one_for_unknown_dims():
    layer = nn.Dense(256, activation="relu")
    assert layer.weight.shape == torch.Size([256, -1])
    assert tuple(layer.weight.shape) == (256, -1)
    assert layer.weight.size() == torch.Size([256, -1])
    assert layer.weight.dim() == 2 and layer.weight.ndim == 2
    assert layer.weight.state == "DECLARED"
    assert layer.bias.shape == torch.Size([256])
    assert layer.bias.state == "SHAPED"
    for p in (layer.weight, layer.bias):
        assert p.is_deferred
        assert lateinit.is_deferred(p)
        assert isinstance(p, torch.nn.Parameter)


def test_parameter_constructor():
    p = lateinit.Parameter((4, -1))
    assert p.shape == torch.Size([4, -1])
    assert p.dtype == torch.get_default_dtype()
    assert p.device == torch.device("cpu")
    assert p.requires_grad
    assert p.state == "DECLARED" and p.is_deferred
    q = lateinit.Parameter((2, 3), dtype=torch.float64, requires_grad=False)
    assert q.shape == torch.Size([2, 3])
    assert q.dtype == torch.float64
    assert not q.requires_grad
    assert q.state == "SHAPED" and q.is_deferred
    m = lateinit.Parameter((5, -1), device="meta")
    assert m.device.type == "meta"


def test_lifecycle_declared_shaped_ready():
    block = Scale()
    gamma = block.gamma
    assert gamma.state == "DECLARED"
    gamma.shape = (3,)
    assert gamma.state == "SHAPED"
    assert gamma.is_deferred
    x = torch.rand(2, 3)
    out = block(x)
    assert block.gamma is gamma
    assert type(gamma) is torch.nn.Parameter
    assert not lateinit.is_deferred(gamma)
    assert gamma.shape == torch.Size([3])
    torch.testing.assert_close(out, x * gamma.detach())


_dims = st.integers(min_value=1, max_value=9)


@st.composite
def _old_and_new(draw):
    """A full shape, an old partial view of it and a new partial view of it."""
    full = draw(st.lists(_dims, min_size=1, max_size=5))
    old_known = draw(st.lists(st.booleans(), min_size=len(full), max_size=len(full)))
    new_known = draw(st.lists(st.booleans(), min_size=len(full), max_size=len(full)))
    old = tuple(d if k else -1 for d, k in zip(full, old_known, strict=True))
    new = tuple(d if k else -1 for d, k in zip(full, new_known, strict=True))
    return full, old, new


@settings(max_examples=60, deadline=None)
@given(_old_and_new())
def test_shape_setter_fills_unknown_dims(case):
    full, old, new = case
    p = lateinit.Parameter(old)
    p.shape = new
    expected = tuple(o if o != -1 else n for o, n in zip(old, new, strict=True))
    assert tuple(p.shape) == expected
    # known dims never change, whatever the order in which information arrives
    assert all(e == f for e, f in zip(expected, full, strict=True) if e != -1)
    assert p.state == ("DECLARED" if -1 in expected else "SHAPED")
    p.shape = full
    assert tuple(p.shape) == tuple(full)
    assert p.state == "SHAPED"


@settings(max_examples=60, deadline=None)
@given(_old_and_new(), st.data())
def test_shape_setter_rejects_conflicting_known_dims(case, data):
    full, old, _ = case
    known = [i for i, d in enumerate(old) if d != -1]
    if not known:
        old = (full[0], *old[1:])
        known = [0]
    i = data.draw(st.sampled_from(known))
    bad_size = data.draw(_dims.filter(lambda d: d != old[i]))
    new = list(full)
    new[i] = bad_size
    p = lateinit.Parameter(old)
    with pytest.raises(ShapeMismatchError) as info:
        p.shape = new
    assert isinstance(info.value, ValueError)
    assert str(old[i]) in str(info.value) and str(bad_size) in str(info.value)
    assert tuple(p.shape) == tuple(old)  # nothing changed


@pytest.mark.parametrize("new", [(4,), (4, 3, 2), ()])
def test_shape_setter_rejects_another_rank(new):
    p = lateinit.Parameter((4, -1))
    with pytest.raises(ShapeMismatchError):
        p.shape = new
    assert p.shape == torch.Size([4, -1])


def test_layer_shape_conflict_is_shape_mismatch_and_keeps_shape():
    layer = nn.Dense(8, in_units=5)
    with pytest.raises(ShapeMismatchError):
        layer.weight.shape = (8, 6)
    assert layer.weight.shape == torch.Size([8, 5])


def test_initializer_property():
    assert isinstance(lateinit.Parameter((3,), init="ones").initializer, init.One)
    layer = nn.Dense(4, weight_initializer=init.Normal(0.3), bias_initializer=init.Constant(2.0))
    assert isinstance(layer.weight.initializer, init.Normal)
    assert layer.weight.initializer.sigma == 0.3
    assert isinstance(layer.bias.initializer, init.Constant)
    assert layer.bias.initializer.value == 2.0
    # a registered initializer applies to a parameter without one of its own
    net = nn.Sequential(nn.Dense(4, use_bias=False))
    net.initialize(init.Uniform(0.5))
    assert isinstance(net[0].weight.initializer, init.Uniform)
    assert net[0].weight.initializer.scale == 0.5
    # and it can be replaced before data arrives
    net.initialize(init.Normal(0.2))
    assert isinstance(net[0].weight.initializer, init.Normal)
    # setting a parameter's own initializer
    p = lateinit.Parameter((3, -1))
    p.initializer = "zeros"
    assert isinstance(p.initializer, init.Zero)


@pytest.mark.parametrize(
    ("shape", "dtype", "set_to", "expected"),
    [
        ((256, -1), torch.float32, None, ("(256, -1)", "float32", "DECLARED")),
        ((256, -1), torch.float64, None, ("(256, -1)", "float64", "DECLARED")),
        ((256, -1), torch.float32, (256, 20), ("(256, 20)", "float32", "SHAPED")),
        ((-1,), torch.float16, None, ("(-1,)", "float16", "DECLARED")),
        ((7,), torch.float32, None, ("(7,)", "float32", "SHAPED")),
    ],
)
def test_repr_shows_shape_dtype_state(shape, dtype, set_to, expected):
    p = lateinit.Parameter(shape, dtype=dtype)
    if set_to is not None:
        p.shape = set_to
    text = repr(p)
    for part in expected:
        assert part in text, text
    other_states = {"DECLARED", "SHAPED"} - {expected[2]}
    assert not any(s in text for s in other_states), text


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: lateinit.Parameter((3, -1)), True),
        (lambda: lateinit.Parameter((3, 2)), True),
        (lambda: nn.Dense(4).weight, True),
        (lambda: torch.ones(3), False),
        (lambda: torch.empty(0, device="meta"), False),
        (lambda: torch.nn.Parameter(torch.ones(2)), False),
        (lambda: torch.nn.Linear(2, 3).weight, False),
        (lambda: nn.Dense(4, in_units=3).initialize().weight, False),
    ],
)
def test_is_deferred_for_any_tensor(make, expected):
    assert lateinit.is_deferred(make()) is expected


def test_ready_parameter_is_not_deferred():
    net = nn.Sequential(nn.Dense(4))
    w = net[0].weight
    assert lateinit.is_deferred(w)
    net(torch.rand(2, 3))
    assert not lateinit.is_deferred(w)
    assert type(w) is torch.nn.Parameter


# --------------------------------------------------------------------------------------
# DeferredInitializationError: any use before READY


_X = torch.ones(2, 5)

USES = {
    ".data": lambda p: p.data,
    "add": lambda p: p + 1,
    "radd": lambda p: 1 + p,
    "mul": lambda p: p * 2,
    "sum": lambda p: p.sum(),
    "mean": lambda p: torch.mean(p),
    "index": lambda p: p[0],
    "clone": lambda p: p.clone(),
    "view": lambda p: p.view(-1),
    "tolist": lambda p: p.tolist(),
    "numpy": lambda p: p.numpy(),
    "item": lambda p: p.item(),
    "fill_": lambda p: p.fill_(0.0),
    "cat": lambda p: torch.cat([p, p]),
    "linear": lambda p: F.linear(_X, p),
    # the parameter passed by keyword must be caught too
    "add(input=)": lambda p: torch.add(input=p, other=1.0),
    "sum(input=)": lambda p: torch.sum(input=p),
    "linear(weight=)": lambda p: F.linear(_X, weight=p),
    "nn.init.normal_": lambda p: torch.nn.init.normal_(p),
    "nn.init.zeros_": lambda p: torch.nn.init.zeros_(p),
}


@pytest.mark.parametrize("use", list(USES.values()), ids=list(USES))
@pytest.mark.parametrize("state", ["DECLARED", "SHAPED"])
def test_any_use_before_ready_raises(use, state):
    net = nn.Sequential(nn.Dense(3))
    if state == "SHAPED":
        net[0].weight.shape = (3, 5)
    net.collect_params()  # names the parameters
    w = net[0].weight
    shape = "(3, 5)" if state == "SHAPED" else "(3, -1)"
    with pytest.raises(DeferredInitializationError) as info:
        use(w)
    assert_deferred_message(str(info.value), "0.weight", shape)
    assert w.is_deferred and w.state == state  # a failed use changes nothing


def test_error_is_a_runtime_error():
    assert issubclass(DeferredInitializationError, RuntimeError)
    assert issubclass(ShapeMismatchError, ValueError)


def test_seed_story_error_on_data():
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"))
    net.add(nn.Dense(10))
    params = net.collect_params()
    assert [tuple(p.shape) for p in params.values()] == [(256, -1), (256,), (10, -1), (10,)]
    with pytest.raises(DeferredInitializationError) as info:
        net[0].weight.data  # noqa: B018
    assert_deferred_message(str(info.value), "0.weight", "(256, -1)")


def _named_by_collect_params(net):
    net.collect_params()


def _named_by_initialize(net):
    net.initialize()


def _named_by_failed_first_pass(net):
    def fail(x):
        raise RuntimeError("boom")

    net.add(nn.Lambda(fail))
    with pytest.raises(RuntimeError, match="boom"):
        net(torch.rand(2, 5))


@pytest.mark.parametrize(
    "name_it",
    [_named_by_collect_params, _named_by_initialize, _named_by_failed_first_pass],
    ids=["collect_params", "initialize", "failed_first_pass"],
)
def test_error_uses_structural_name(name_it):
    net = nn.Sequential(nn.Sequential(nn.Dense(4), nn.Dense(3)))
    name_it(net)
    w = net[0][1].weight
    assert w.is_deferred
    with pytest.raises(DeferredInitializationError) as info:
        w.sum()
    assert_deferred_message(str(info.value), "0.1.weight", "(3, -1)")


def test_error_before_naming_still_names_parameter_and_layer():
    layer = nn.Dense(6)
    with pytest.raises(DeferredInitializationError) as info:
        layer.weight * 1
    message = str(info.value)
    assert "weight" in message and "Dense" in message
    assert_deferred_message(message, "weight", "(6, -1)")


# --------------------------------------------------------------------------------------
# what works before READY


@pytest.mark.parametrize(
    ("convert", "dtype", "device"),
    [
        (lambda p: p.to(torch.float64), torch.float64, "cpu"),
        (lambda p: p.to(dtype=torch.float16), torch.float16, "cpu"),
        (lambda p: p.to("meta"), torch.float32, "meta"),
        (lambda p: p.to("cpu"), torch.float32, "cpu"),
        (lambda p: p.to(torch.device("meta"), torch.float64), torch.float64, "meta"),
        (lambda p: p.half(), torch.float16, "cpu"),
        (lambda p: p.double(), torch.float64, "cpu"),
        (lambda p: p.float(), torch.float32, "cpu"),
        (lambda p: p.cpu(), torch.float32, "cpu"),
    ],
)
def test_parameter_conversions_stay_deferred(convert, dtype, device):
    p = lateinit.Parameter((4, -1), init=init.Normal(0.5))
    q = convert(p)
    assert lateinit.is_deferred(q)
    assert q.shape == torch.Size([4, -1])
    assert q.dtype == dtype
    assert q.device.type == device
    assert isinstance(q.initializer, init.Normal) and q.initializer.sigma == 0.5
    assert p.dtype == torch.float32 and p.device.type == "cpu"  # the original is untouched


NET_CONVERSIONS = {
    "double": (lambda n: n.double(), torch.float64, "cpu"),
    "half": (lambda n: n.half(), torch.float16, "cpu"),
    "to(float64)": (lambda n: n.to(torch.float64), torch.float64, "cpu"),
    "to(meta)": (lambda n: n.to("meta"), torch.float32, "meta"),
    "to(meta).to(cpu)": (lambda n: n.to("meta").to("cpu"), torch.float32, "cpu"),
    "cpu": (lambda n: n.cpu(), torch.float32, "cpu"),
}


@pytest.mark.parametrize(
    ("convert", "dtype", "device"), list(NET_CONVERSIONS.values()), ids=list(NET_CONVERSIONS)
)
def test_network_conversions_keep_identity_and_laziness(convert, dtype, device):
    net = nn.Sequential(nn.Dense(6, activation="relu"), nn.Dense(3))
    before = list(net.parameters())
    assert convert(net) is net
    assert all(a is b for a, b in zip(before, net.parameters(), strict=True))
    for p in net.parameters():
        assert lateinit.is_deferred(p)
        assert p.dtype == dtype and p.device.type == device
    out = net(torch.rand(2, 5, dtype=dtype, device=device))
    assert out.shape == (2, 3) and out.dtype == dtype and out.device.type == device
    assert all(a is b for a, b in zip(before, net.parameters(), strict=True))
    assert [tuple(p.shape) for p in net.parameters()] == [(6, 5), (6,), (3, 6), (3,)]
    for p in net.parameters():
        assert type(p) is torch.nn.Parameter
        assert p.dtype == dtype and p.device.type == device


def test_meta_placed_parameter_moves_back_to_cpu():
    p = lateinit.Parameter((4, -1), device="meta")
    for q in (p.to("cpu"), p.cpu(), p.to(torch.device("cpu"), torch.float64)):
        assert lateinit.is_deferred(q)
        assert q.device.type == "cpu" and q.shape == torch.Size([4, -1])


def test_meta_round_trip_gives_the_same_values_as_never_moving():
    torch.manual_seed(3)
    plain = nn.Sequential(nn.Dense(6), nn.Dense(3))
    torch.manual_seed(3)
    moved = nn.Sequential(nn.Dense(6), nn.Dense(3)).to("meta").to("cpu")
    x = torch.rand(2, 5)
    torch.testing.assert_close(plain(x), moved(x), rtol=0, atol=0)
    assert_same_values(values(plain), values(moved))


def test_network_built_under_meta_device_context():
    torch.manual_seed(7)
    with torch.device("meta"):
        net = nn.Sequential(nn.Dense(6, activation="relu"), nn.Dense(3))
    assert all(lateinit.is_deferred(p) and p.device.type == "meta" for p in net.parameters())
    out = net(torch.rand(2, 5, device="meta"))
    assert out.shape == (2, 3) and out.device.type == "meta"
    assert [tuple(p.shape) for p in net.parameters()] == [(6, 5), (6,), (3, 6), (3,)]


def test_meta_built_network_materializes_on_cpu_with_the_same_values():
    torch.manual_seed(7)
    plain = nn.Sequential(nn.Dense(6), nn.Dense(3))
    torch.manual_seed(7)
    with torch.device("meta"):
        built = nn.Sequential(nn.Dense(6), nn.Dense(3))
    built.initialize(device="cpu")
    x = torch.rand(2, 5)
    assert torch.equal(plain(x), built(x))
    assert all(p.device.type == "cpu" for p in built.parameters())
    assert_same_values(values(plain), values(built))


def test_requires_grad_before_ready():
    net = nn.Sequential(nn.Dense(4), nn.Dense(2))
    w = net[0].weight
    assert w.requires_grad_(False) is w
    assert not w.requires_grad
    net[1].requires_grad_(False)
    x = torch.rand(3, 5, requires_grad=True)
    net(x).sum().backward()
    assert type(w) is torch.nn.Parameter
    assert not w.requires_grad and w.grad is None
    assert not net[1].weight.requires_grad and net[1].weight.grad is None
    assert net[0].bias.requires_grad and net[0].bias.grad is not None
    assert x.grad is not None


def test_deepcopy_before_ready_is_independent_and_gives_same_values():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(3))
    clone = copy.deepcopy(net)
    assert all(lateinit.is_deferred(p) for p in clone.parameters())
    assert all(a is not b for a, b in zip(net.parameters(), clone.parameters(), strict=True))
    x = torch.rand(2, 5)
    clone(x)
    assert_fully_ready(clone)
    assert all(lateinit.is_deferred(p) for p in net.parameters())  # original untouched
    net(x)
    assert_same_values(values(net), values(clone))


def test_deepcopy_of_single_deferred_parameter():
    p = nn.Dense(4, weight_initializer=init.Normal(0.3)).weight
    q = copy.deepcopy(p)
    assert q is not p and lateinit.is_deferred(q)
    assert q.shape == p.shape and q.dtype == p.dtype
    assert isinstance(q.initializer, init.Normal) and q.initializer.sigma == 0.3
    q.shape = (4, 2)
    assert p.shape == torch.Size([4, -1])  # the copy's metadata is its own


def test_deepcopy_after_ready():
    net = nn.Sequential(nn.Dense(8), nn.Dense(3))
    x = torch.rand(2, 5)
    out = net(x)
    clone = copy.deepcopy(net)
    assert_fully_ready(clone)
    assert_same_values(values(net), values(clone))
    assert all(
        a.data_ptr() != b.data_ptr()
        for a, b in zip(net.parameters(), clone.parameters(), strict=True)
    )
    assert torch.equal(clone(x), out)


def test_pickle_deferred_network_round_trip():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Dense(8, weight_initializer=init.Normal(0.7), dtype=torch.float64),
        nn.Dense(3, dtype=torch.float64),
    )
    restored = pickle.loads(pickle.dumps(net))
    for p, q in zip(net.parameters(), restored.parameters(), strict=True):
        assert lateinit.is_deferred(q)
        assert q.shape == p.shape and q.dtype == p.dtype
    assert isinstance(restored[0].weight.initializer, init.Normal)
    assert restored[0].weight.initializer.sigma == 0.7
    net(torch.rand(2, 5, dtype=torch.float64))
    restored(torch.rand(2, 5, dtype=torch.float64))
    assert_fully_ready(restored)
    assert_same_values(values(net), values(restored))


def test_pickle_single_deferred_parameter_same_values_once_materialized():
    torch.manual_seed(0)
    a = nn.Dense(4, weight_initializer=init.Uniform(0.9))
    b = nn.Dense(4)
    b.weight = pickle.loads(pickle.dumps(a.weight))
    assert lateinit.is_deferred(b.weight)
    assert b.weight.shape == torch.Size([4, -1])
    assert isinstance(b.weight.initializer, init.Uniform) and b.weight.initializer.scale == 0.9
    x = torch.rand(2, 6)
    a(x)
    b(x)
    assert torch.equal(a.weight, b.weight)
    assert b.weight.abs().max() <= 0.9


def test_pickle_ready_network_round_trip():
    net = nn.Sequential(nn.Dense(8), nn.Dense(3))
    x = torch.rand(2, 5)
    out = net(x)
    restored = pickle.loads(pickle.dumps(net))
    assert_fully_ready(restored)
    assert_same_values(values(net), values(restored))
    assert torch.equal(restored(x), out)


# --------------------------------------------------------------------------------------
# optimizers built before the first batch

OPTIMIZERS = {
    "SGD": (torch.optim.SGD, {"lr": 0.1}),
    "SGD-momentum-foreach": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "foreach": True}),
    "Adam": (torch.optim.Adam, {"lr": 0.01}),
    "Adam-foreach": (torch.optim.Adam, {"lr": 0.01, "foreach": True}),
    "Adam-fused": (torch.optim.Adam, {"lr": 0.01, "fused": True}),
    "AdamW": (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    "RMSprop": (torch.optim.RMSprop, {"lr": 0.01}),
}


@pytest.mark.parametrize("opt", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
def test_optimizer_built_before_first_batch_steps_after(opt):
    cls, kwargs = opt
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(8, activation="tanh"), nn.Dense(3))
    params = list(net.parameters())
    w = net[0].weight
    optimizer = cls(net.parameters(), **kwargs)
    x, target = torch.rand(4, 5), torch.rand(4, 3)

    loss = F.mse_loss(net(x), target)
    assert net[0].weight is w
    assert all(a is b for a, b in zip(params, net.parameters(), strict=True))
    assert_fully_ready(net)

    # the same network in plain torch.nn, on copied values, with a fresh optimizer
    twin = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for t, p in zip(twin.parameters(), params, strict=True):
            t.copy_(p)
    twin_optimizer = cls(twin.parameters(), **kwargs)
    before = [p.detach().clone() for p in params]
    for step in range(3):
        optimizer.zero_grad()
        twin_optimizer.zero_grad()
        if step:
            loss = F.mse_loss(net(x), target)
        loss.backward()
        F.mse_loss(twin(x), target).backward()
        optimizer.step()
        twin_optimizer.step()
    for p, b, t in zip(params, before, twin.parameters(), strict=True):
        assert not torch.equal(p, b), "the optimizer did not update the parameter"
        torch.testing.assert_close(p, t, rtol=1e-6, atol=1e-7)
    assert net[0].weight is w


def test_adagrad_before_first_batch_names_the_fix():
    net = nn.Sequential(nn.Dense(4))
    net.collect_params()
    with pytest.raises(DeferredInitializationError) as info:
        torch.optim.Adagrad(net.parameters())
    assert_deferred_message(str(info.value), "0.weight", "(4, -1)")
    # and after the first batch it works
    net(torch.rand(2, 3))
    optimizer = torch.optim.Adagrad(net.parameters(), lr=0.1)
    before = net[0].weight.detach().clone()
    net(torch.rand(2, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, net[0].weight)


def test_adagrad_with_input_sizes_given_works():
    net = nn.Sequential(nn.Dense(4, in_units=3)).initialize()
    torch.optim.Adagrad(net.parameters())


# --------------------------------------------------------------------------------------
# identity and the hot path after READY


def test_materialize_keeps_identity():
    net = nn.Sequential(nn.Dense(8), nn.Sequential(nn.Dense(4), Scale()))
    refs = dict(net.named_parameters())
    ids = {name: id(p) for name, p in refs.items()}
    net(torch.rand(2, 5))
    assert {name: id(p) for name, p in net.named_parameters()} == ids
    for name, p in net.named_parameters():
        assert refs[name] is p
        assert type(refs[name]) is torch.nn.Parameter
    assert_fully_ready(net)
    assert type(net[0]) is nn.Dense and type(net[1][1]) is Scale  # no class swap on blocks


def test_eager_initialize_with_input_sizes_keeps_identity():
    net = nn.Sequential(nn.Dense(8, in_units=5), nn.Dense(3))
    w0, w1 = net[0].weight, net[1].weight
    net.initialize()
    assert net[0].weight is w0 and type(w0) is torch.nn.Parameter
    assert "forward" not in net[0].__dict__
    assert net[1].weight is w1 and lateinit.is_deferred(w1)  # waits for data
    net(torch.rand(2, 5))
    assert net[1].weight is w1 and type(w1) is torch.nn.Parameter
    assert_fully_ready(net)


def test_ready_network_has_no_hook_left():
    net = nn.Sequential(nn.Dense(8), nn.Sequential(nn.Dense(4), nn.Dropout(0.1)), nn.Identity())
    net(torch.rand(2, 5))
    assert_fully_ready(net)
    for m in net.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks


# --------------------------------------------------------------------------------------
# reproducibility


def _eager(initializer):
    net = mlp((5, 16, 12))
    net.initialize(initializer)
    return net


def _deferred(initializer):
    net = mlp()
    net.initialize(initializer)
    net(torch.ones(2, 5))
    return net


def _reversed_after_shapes(initializer):
    net = mlp()
    net[1].weight.shape = (4, 12)
    net[0][1].weight.shape = (12, 16)
    net[0][0].weight.shape = (16, 5)
    net[1].initialize(initializer)
    net[0][1].initialize(initializer)
    net[0][0].initialize(initializer)
    return net


def _layer_by_layer_reversed(initializer):
    net = mlp()
    net.initialize(initializer)
    # run the last layers first, each on its own
    net[1](torch.ones(2, 12))
    net[0][1](torch.ones(2, 16))
    net[0][0](torch.ones(2, 5))
    return net


def _deferred_with_unrelated_draws(initializer):
    net = mlp()
    torch.rand(1000)
    torch.randn(7, 3)
    torch.nn.Linear(30, 30)
    net.initialize(initializer)
    torch.randint(0, 10, (50,))
    net(torch.rand(2, 5))
    return net


SCENARIOS = {
    "deferred": _deferred,
    "reversed-after-shapes": _reversed_after_shapes,
    "layer-by-layer": _layer_by_layer_reversed,
    "unrelated-draws": _deferred_with_unrelated_draws,
}

INITIALIZERS = {
    "default": None,
    "xavier": init.Xavier(),
    "normal": init.Normal(0.5),
    "orthogonal": init.Mixed([".*bias", ".*"], ["zeros", init.Orthogonal()]),
    "torch-fn": torch.nn.init.kaiming_normal_,
    "lambda": lambda t: t.uniform_(-0.3, 0.3),
}


@pytest.mark.parametrize("initializer", list(INITIALIZERS.values()), ids=list(INITIALIZERS))
@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_same_values_eager_deferred_or_reordered(scenario, initializer):
    torch.manual_seed(1234)
    reference = values(_eager(initializer))
    torch.manual_seed(1234)
    net = scenario(initializer)
    assert net(torch.ones(2, 5)).shape == (2, 4)  # the root's own first call, if still due
    assert_fully_ready(net)
    assert_same_values(reference, values(net))


def test_values_depend_on_the_seed():
    torch.manual_seed(1)
    a = values(_eager(None))
    torch.manual_seed(2)
    b = values(_eager(None))
    assert not torch.equal(a["0.0.weight"], b["0.0.weight"])
    assert not torch.equal(a["1.weight"], b["1.weight"])


@pytest.mark.parametrize("initializer", [None, init.Normal(1.0), lambda t: t.normal_()])
def test_each_parameter_has_its_own_seed(initializer):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(6), nn.Dense(6))
    net.initialize(initializer)
    net(torch.rand(2, 6))
    assert net[0].weight.shape == net[1].weight.shape
    assert not torch.equal(net[0].weight, net[1].weight)


def test_seed_is_drawn_at_declaration():
    torch.manual_seed(5)
    a = nn.Dense(4, weight_initializer=init.Normal(1.0))
    b = nn.Dense(4, weight_initializer=init.Normal(1.0))
    x = torch.rand(2, 3)
    torch.manual_seed(99)  # reseeding after declaration changes nothing
    b(x)
    torch.manual_seed(100)
    a(x)
    torch.manual_seed(5)
    a2 = nn.Dense(4, weight_initializer=init.Normal(1.0))
    b2 = nn.Dense(4, weight_initializer=init.Normal(1.0))
    a2(x)
    b2(x)
    assert torch.equal(a.weight, a2.weight)
    assert torch.equal(b.weight, b2.weight)


# -- one way to ask a state, for any tensor (docs/design.md, "Lifecycle") ------------------


def test_state_answers_for_any_tensor():
    p = lateinit.Parameter((3, -1))
    assert lateinit.state(p) is lateinit.State.DECLARED and lateinit.state(p) == "DECLARED"
    p.shape = (3, 4)
    assert lateinit.state(p) == "SHAPED" and p.state == lateinit.State.SHAPED
    lateinit.parameter.materialize(p)
    assert lateinit.state(p) == "READY" and type(p) is torch.nn.Parameter
    assert lateinit.state(torch.ones(2)) == "READY"
    assert lateinit.state(torch.nn.Parameter(torch.ones(2))) == "READY"
    assert lateinit.state(lateinit.parameter.deferred_buffer((-1,))) == "DECLARED"
    assert f"{lateinit.State.READY}" == "READY" and repr(lateinit.State.SHAPED) == "SHAPED"


def test_record_of_finds_the_record_of_ready_parameters_too():
    layer = nn.Dense(2, in_units=3)
    rec = lateinit.parameter.record_of(layer.weight)
    assert rec is layer.weight.record and rec.hint == "in_units" and rec.owner == "Dense"
    layer.initialize()
    assert lateinit.parameter.record_of(layer.weight) is rec  # kept for force_reinit
    assert lateinit.parameter.record_of(torch.ones(2)) is None


def test_layers_pass_their_default_initializer_to_the_constructor():
    p = lateinit.Parameter((2, -1), default_init="ones", in_size_arg="in_features")
    assert p.default_init == lateinit.init.One() and p.initializer == lateinit.init.One()
    p.shape = (2, 2)
    with pytest.raises(DeferredInitializationError, match=r"in_features=\.\.\."):
        p.sum()
    with pytest.raises(ValueError):
        lateinit.Parameter((2,), default_init="no-such-initializer")


# -- the registration point of the gate (docs/design.md, "Layers of the package") ---------


def test_distributed_registers_torchs_parallel_wrappers():
    from lateinit import distributed, parameter

    assert distributed.INTEGRATION in parameter._INTEGRATIONS
    assert distributed.INTEGRATION.prefixes == ("torch.nn.parallel.", "torch.distributed.")


def test_a_registered_integration_sees_uses_from_its_callers_only(monkeypatch):
    from lateinit import parameter

    seen = []

    def on_use(param, caller, func, args, kwargs):
        seen.append((caller, getattr(func, "__name__", "")))
        return "handled"

    integration = parameter.GateIntegration(
        prefixes=("lateinit_test_caller",), on_read=lambda p, c: None, on_use=on_use
    )
    monkeypatch.setattr(parameter, "_INTEGRATIONS", [])
    parameter.register_integration(integration)
    parameter.register_integration(integration)  # registering twice: once
    assert parameter._INTEGRATIONS == [integration]
    p = lateinit.Parameter((2, -1))
    namespace = {"__name__": "lateinit_test_caller.module"}
    exec("def use(p):\n    return p.sum()\n", namespace)
    assert namespace["use"](p) == "handled"
    assert seen == [("lateinit_test_caller.module", "sum")]
    with pytest.raises(DeferredInitializationError):  # any other caller: the usual error
        p.sum()
