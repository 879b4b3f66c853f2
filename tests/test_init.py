"""Initializers (lateinit.init): values, statistics, names, torch callables, Mixed, and the
layer defaults (docs/design.md, "Public API": init).

Statistical checks use fixed seeds, large tensors and generous tolerances.
"""

from __future__ import annotations

import math

import pytest
import torch

import lateinit
from lateinit import init, nn

# --------------------------------------------------------------------------------------
# helpers


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def fill(initializer, shape, seed=0, dtype=torch.float32):
    """Fill a fresh tensor in place with ``initializer`` (one signature for all)."""
    tensor = torch.full(shape, float("nan"), dtype=dtype)
    out = initializer(tensor, generator=gen(seed))
    assert out is tensor  # fills in place and returns the tensor
    return tensor


def fans(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def assert_uniform(t, bound):
    assert t.abs().max() <= bound * (1 + 1e-6)
    assert t.abs().max() >= 0.98 * bound  # the bound is reached, not just respected
    assert abs(t.mean().item()) < 0.02 * bound
    assert t.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def assert_normal(t, std, mean=0.0):
    assert t.mean().item() == pytest.approx(mean, abs=0.03 * std)
    assert t.std().item() == pytest.approx(std, rel=0.03)
    assert t.abs().max() > 3 * std  # not truncated


def first_pass(net, x):
    net(x)
    return net


# --------------------------------------------------------------------------------------
# constants


@pytest.mark.parametrize(
    ("initializer", "value"),
    [
        (init.Zero(), 0.0),
        (init.One(), 1.0),
        (init.Constant(0.25), 0.25),
        (init.Constant(-3), -3.0),
    ],
)
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 3, 3)])
def test_constants(initializer, value, shape):
    t = fill(initializer, shape)
    assert torch.equal(t, torch.full(shape, value))


def test_constant_in_float64_and_through_a_layer():
    t = fill(init.Constant(0.1), (3,), dtype=torch.float64)
    assert torch.equal(t, torch.full((3,), 0.1, dtype=torch.float64))
    layer = nn.Dense(3, weight_initializer=init.Constant(0.5), bias_initializer=init.One())
    layer(torch.rand(2, 4))
    assert torch.equal(layer.weight, torch.full((3, 4), 0.5))
    assert torch.equal(layer.bias, torch.ones(3))


# --------------------------------------------------------------------------------------
# random initializers: statistics


@pytest.mark.parametrize("scale", [None, 0.5, 3.0])
def test_uniform(scale):
    initializer = init.Uniform() if scale is None else init.Uniform(scale)
    t = fill(initializer, (400, 500))
    assert_uniform(t, 0.07 if scale is None else scale)  # Gluon's default scale 0.07


@pytest.mark.parametrize("sigma", [None, 0.2, 5.0])
def test_normal(sigma):
    initializer = init.Normal() if sigma is None else init.Normal(sigma)
    t = fill(initializer, (400, 500))
    assert_normal(t, 0.01 if sigma is None else sigma)  # Gluon's default sigma 0.01


@pytest.mark.parametrize(("mean", "stdev"), [(0.0, 0.01), (0.0, 1.0), (2.0, 0.5)])
def test_trunc_normal_within_two_std(mean, stdev):
    t = fill(init.TruncNormal(mean=mean, stdev=stdev), (400, 500))
    assert t.min() >= mean - 2 * stdev - 1e-6
    assert t.max() <= mean + 2 * stdev + 1e-6
    assert t.min() < mean - 1.9 * stdev and t.max() > mean + 1.9 * stdev
    assert t.mean().item() == pytest.approx(mean, abs=0.02 * stdev)
    # the std of N(0, 1) truncated to [-2, 2] is 0.8796
    assert t.std().item() == pytest.approx(0.8796 * stdev, rel=0.03)


def test_trunc_normal_default_is_within_two_hundredths():
    t = fill(init.TruncNormal(), (200, 200))
    assert t.abs().max() <= 0.02 + 1e-6
    assert t.std().item() == pytest.approx(0.8796 * 0.01, rel=0.03)


XAVIER_SHAPES = [(512, 256), (256, 512), (64, 32, 3, 3), (32, 16, 5, 5), (16, 24, 7)]


@pytest.mark.parametrize("shape", XAVIER_SHAPES, ids=str)
@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
@pytest.mark.parametrize(("rnd_type", "magnitude"), [("uniform", 3.0), ("gaussian", 2.0)])
def test_xavier_scale_from_the_full_shape(shape, factor_type, rnd_type, magnitude):
    fan_in, fan_out = fans(shape)
    factor = {"avg": (fan_in + fan_out) / 2, "in": fan_in, "out": fan_out}[factor_type]
    scale = math.sqrt(magnitude / factor)
    t = fill(init.Xavier(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude), shape)
    if rnd_type == "uniform":
        assert_uniform(t, scale)
    else:
        assert_normal(t, scale)


def test_xavier_defaults_are_gluons():
    # Gluon: Xavier(rnd_type="uniform", factor_type="avg", magnitude=3)
    shape = (300, 200)
    t = fill(init.Xavier(), shape)
    assert_uniform(t, math.sqrt(3.0 / 250.0))


@pytest.mark.parametrize(
    "kwargs", [{"rnd_type": "bogus"}, {"factor_type": "bogus"}], ids=["rnd_type", "factor_type"]
)
def test_xavier_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="bogus"):
        init.Xavier(**kwargs)


@pytest.mark.parametrize("shape", [(512, 256), (64, 32, 3, 3)], ids=str)
@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
@pytest.mark.parametrize("slope", [0.25, 0.0])
def test_msra_prelu(shape, factor_type, slope):
    fan_in, fan_out = fans(shape)
    factor = {"avg": (fan_in + fan_out) / 2, "in": fan_in, "out": fan_out}[factor_type]
    std = math.sqrt(2.0 / (1 + slope**2) / factor)
    t = fill(init.MSRAPrelu(factor_type=factor_type, slope=slope), shape)
    assert_normal(t, std)


def test_msra_prelu_defaults_are_gluons():
    # Gluon: MSRAPrelu(factor_type="avg", slope=0.25)
    shape = (400, 300)
    t = fill(init.MSRAPrelu(), shape)
    assert_normal(t, math.sqrt(2.0 / (1 + 0.25**2) / 350.0))


@pytest.mark.parametrize("shape", [(64, 128), (128, 64), (96, 96), (16, 8, 3, 3)], ids=str)
@pytest.mark.parametrize("scale", [1.0, 0.5, None])
@pytest.mark.parametrize("rand_type", ["uniform", "normal"])
def test_orthogonal(shape, scale, rand_type):
    kwargs = {"rand_type": rand_type} if scale is None else {"scale": scale, "rand_type": rand_type}
    expected_scale = 1.414 if scale is None else scale  # Gluon's default scale
    w = fill(init.Orthogonal(**kwargs), shape).reshape(shape[0], -1).double()
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    eye = torch.eye(min(rows, cols), dtype=torch.float64)
    torch.testing.assert_close(gram, expected_scale**2 * eye, atol=1e-4, rtol=0)


def test_orthogonal_rejects_vectors():
    with pytest.raises(ValueError, match="Orthogonal"):
        fill(init.Orthogonal(), (5,))


def test_orthogonal_through_a_deferred_layer():
    layer = nn.Dense(32, weight_initializer=init.Orthogonal(scale=1.0))
    layer(torch.rand(2, 64))
    torch.testing.assert_close(layer.weight @ layer.weight.T, torch.eye(32), atol=1e-4, rtol=0)


INITIALIZERS = {
    "Uniform": init.Uniform(0.3),
    "Normal": init.Normal(0.3),
    "TruncNormal": init.TruncNormal(stdev=0.3),
    "Xavier": init.Xavier(),
    "MSRAPrelu": init.MSRAPrelu(),
    "Orthogonal": init.Orthogonal(),
}


@pytest.mark.parametrize("initializer", list(INITIALIZERS.values()), ids=list(INITIALIZERS))
def test_random_initializers_use_the_generator(initializer):
    a = fill(initializer, (40, 30), seed=1)
    b = fill(initializer, (40, 30), seed=1)
    c = fill(initializer, (40, 30), seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # and not the global RNG
    torch.manual_seed(0)
    d = fill(initializer, (40, 30), seed=1)
    torch.manual_seed(1)
    e = fill(initializer, (40, 30), seed=1)
    assert torch.equal(d, e)


@pytest.mark.parametrize("initializer", list(INITIALIZERS.values()), ids=list(INITIALIZERS))
def test_initializer_without_generator_uses_global_rng(initializer):
    torch.manual_seed(3)
    a = initializer(torch.empty(20, 10))
    torch.manual_seed(3)
    b = initializer(torch.empty(20, 10))
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("initializer", list(INITIALIZERS.values()), ids=list(INITIALIZERS))
def test_initializers_work_on_parameters_that_require_grad(initializer):
    p = torch.nn.Parameter(torch.empty(20, 10))
    initializer(p, generator=gen())
    assert p.requires_grad and p.grad_fn is None and torch.isfinite(p).all()


# --------------------------------------------------------------------------------------
# names


NAMES_EQUIVALENT = {
    "zeros": init.Zero(),
    "ones": init.One(),
    "uniform": init.Uniform(),
    "normal": init.Normal(),
    "xavier": init.Xavier(),
    "orthogonal": init.Orthogonal(),
    "msraprelu": init.MSRAPrelu(),
}


@pytest.mark.parametrize("name", list(NAMES_EQUIVALENT))
def test_string_names_match_the_classes(name):
    expected = fill(NAMES_EQUIVALENT[name], (30, 20), seed=4)
    got = fill(init.resolve(name), (30, 20), seed=4)
    assert torch.equal(got, expected)


SHAPE = (256, 384)
FAN_IN, FAN_OUT = SHAPE[1], SHAPE[0]

# names of torch.nn.init's functions, checked against torch's own formulas
TORCH_NAMED = {
    "xavier_uniform": ("uniform", math.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    "xavier_normal": ("normal", math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "kaiming_uniform": ("uniform", math.sqrt(6.0 / FAN_IN)),
    "kaiming_normal": ("normal", math.sqrt(2.0 / FAN_IN)),
}


@pytest.mark.parametrize("name", list(TORCH_NAMED))
def test_string_names_of_torch_schemes(name):
    kind, scale = TORCH_NAMED[name]
    t = fill(init.resolve(name), SHAPE)
    if kind == "uniform":
        assert_uniform(t, scale)
    else:
        assert_normal(t, scale)


def test_names_accepted_wherever_an_initializer_is():
    layer = nn.Dense(3, weight_initializer="ones", bias_initializer="zeros")
    layer(torch.rand(2, 4))
    assert torch.equal(layer.weight, torch.ones(3, 4))
    net = nn.Sequential(nn.Dense(3, in_units=4), nn.Dense(2))
    net.initialize("ones")
    net(torch.rand(2, 4))
    assert torch.equal(net[0].weight, torch.ones(3, 4))
    assert torch.equal(net[1].weight, torch.ones(2, 3))
    p = lateinit.Parameter((2, -1), init="zeros")
    assert isinstance(p.initializer, init.Zero)


def _bad_resolve():
    init.resolve("no_such_init")


def _bad_dense():
    nn.Dense(3, weight_initializer="no_such_init")


def _bad_bias():
    nn.Dense(3, bias_initializer="no_such_init")


def _bad_parameter():
    lateinit.Parameter((3, -1), init="no_such_init")


def _bad_initialize():
    nn.Sequential(nn.Dense(3)).initialize("no_such_init")


def _bad_mixed():
    init.Mixed([".*"], ["no_such_init"])


@pytest.mark.parametrize(
    "make",
    [_bad_resolve, _bad_dense, _bad_bias, _bad_parameter, _bad_initialize, _bad_mixed],
    ids=["resolve", "Dense-weight", "Dense-bias", "Parameter", "initialize", "Mixed"],
)
def test_bad_names_are_value_errors_listing_names(make):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert "no_such_init" in message
    for known in ("zeros", "ones", "xavier_uniform", "normal", "orthogonal"):
        assert known in message, message


def test_bad_initialize_changes_nothing():
    net = nn.Sequential(nn.Dense(3, in_units=2, use_bias=False))
    with pytest.raises(ValueError):
        net.initialize("no_such_init")
    assert lateinit.is_deferred(net[0].weight)


@pytest.mark.parametrize("bad", [3, 2.5, object()])
def test_non_callables_are_rejected(bad):
    with pytest.raises(TypeError):
        init.resolve(bad)


# --------------------------------------------------------------------------------------
# torch.nn.init functions and plain callables


def _build_and_init(initializer, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Dense(64, use_bias=False), nn.Dense(64, use_bias=False))
    net.initialize(initializer)
    net(torch.rand(2, 64))
    return net


TORCH_FUNCTIONS = {
    "normal_ (generator)": torch.nn.init.normal_,
    "uniform_ (generator)": torch.nn.init.uniform_,
    "kaiming_uniform_ (generator)": torch.nn.init.kaiming_uniform_,
    "orthogonal_ (generator)": torch.nn.init.orthogonal_,
    "lambda uniform_ (global RNG)": lambda t: t.uniform_(-2.0, 2.0),
    "lambda nn.init.normal_ (global RNG)": lambda t: torch.nn.init.normal_(t, std=3.0),
}


@pytest.mark.parametrize("fn", list(TORCH_FUNCTIONS.values()), ids=list(TORCH_FUNCTIONS))
def test_torch_random_callables_are_reproducible(fn):
    a = _build_and_init(fn, seed=0)
    b = _build_and_init(fn, seed=0)
    c = _build_and_init(fn, seed=1)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a[0].weight, c[0].weight)
    # each parameter gets its own values, also from a callable that knows no generator
    assert not torch.equal(a[0].weight, a[1].weight)


@pytest.mark.parametrize("fn", list(TORCH_FUNCTIONS.values()), ids=list(TORCH_FUNCTIONS))
def test_torch_random_callables_ignore_unrelated_draws(fn):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(64, use_bias=False))
    net.initialize(fn)
    torch.rand(500)  # unrelated draws between declaration and the first batch
    net(torch.rand(2, 64))
    reference = _build_and_init(fn, seed=0)
    assert torch.equal(net[0].weight, reference[0].weight)


def test_torch_normal_has_the_right_distribution():
    layer = nn.Dense(400, in_units=500, weight_initializer=torch.nn.init.normal_)
    layer.initialize()
    assert_normal(layer.weight.detach(), 1.0)


def test_torch_uniform_lambda_has_the_right_distribution():
    layer = nn.Dense(400, weight_initializer=lambda t: t.uniform_(-2.0, 2.0))
    layer(torch.rand(2, 500))
    assert_uniform(layer.weight.detach(), 2.0)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (torch.nn.init.eye_, lambda shape: torch.eye(*shape)),
        (torch.nn.init.zeros_, torch.zeros),
        (torch.nn.init.ones_, torch.ones),
        (lambda t: torch.nn.init.constant_(t, 0.3), lambda shape: torch.full(shape, 0.3)),
        (lambda t: t.fill_(-1.5), lambda shape: torch.full(shape, -1.5)),
    ],
    ids=["eye_", "zeros_", "ones_", "constant_", "lambda fill_"],
)
def test_torch_deterministic_callables(fn, expected):
    layer = nn.Dense(5, weight_initializer=fn)
    layer(torch.rand(2, 7))
    assert torch.equal(layer.weight, expected((5, 7)))
    eager = nn.Dense(6, in_units=3, use_bias=False).initialize(fn)
    assert torch.equal(eager.weight, expected((6, 3)))


def test_global_rng_untouched_by_a_callable_initializer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(8, in_units=4, use_bias=False))
    state = torch.random.get_rng_state()
    net.initialize(lambda t: t.normal_())
    assert torch.equal(torch.random.get_rng_state(), state)


# --------------------------------------------------------------------------------------
# Mixed


def test_mixed_dispatch_by_name_direct():
    mixed = init.Mixed([".*bias", ".*"], [init.One(), init.Zero()])
    assert torch.equal(mixed(torch.empty(3), name="0.bias", generator=gen()), torch.ones(3))
    assert torch.equal(mixed(torch.empty(3), name="0.weight", generator=gen()), torch.zeros(3))
    # first matching pattern wins (re.match: anchored at the start)
    mixed = init.Mixed(["1\\.", "bias", ".*"], ["ones", "zeros", init.Constant(7)])
    assert torch.equal(mixed(torch.empty(2), name="1.bias"), torch.ones(2))
    assert torch.equal(mixed(torch.empty(2), name="0.bias"), torch.full((2,), 7.0))


def test_mixed_no_match_names_parameter_and_patterns():
    mixed = init.Mixed(["encoder\\..*"], [init.One()])
    with pytest.raises(ValueError) as info:
        mixed(torch.empty(3), name="decoder.weight")
    message = str(info.value)
    assert "decoder.weight" in message and "encoder" in message


def test_mixed_needs_one_initializer_per_pattern():
    with pytest.raises(ValueError):
        init.Mixed([".*bias", ".*"], [init.One()])


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "eager"])
def test_mixed_through_initialize_by_structural_name(deferred):
    net = nn.Sequential(
        nn.Dense(4, in_units=None if deferred else 3, bias_initializer=None),
        nn.Sequential(nn.Dense(2, in_units=None if deferred else 4, bias_initializer=None)),
    )
    net.initialize(init.Mixed([".*bias", ".*"], [init.One(), init.Zero()]))
    net(torch.rand(5, 3))
    assert torch.equal(net[0].bias, torch.ones(4))
    assert torch.equal(net[1][0].bias, torch.ones(2))
    assert torch.equal(net[0].weight, torch.zeros(4, 3))
    assert torch.equal(net[1][0].weight, torch.zeros(2, 4))


def test_mixed_by_layer_path():
    net = nn.Sequential(nn.Dense(4), nn.Sequential(nn.Dense(3), nn.Dense(2)))
    net.initialize(init.Mixed(["1\\.0\\.weight", ".*weight"], [init.Constant(2.0), init.One()]))
    net(torch.rand(5, 3))
    assert torch.equal(net[1][0].weight, torch.full((3, 4), 2.0))
    assert torch.equal(net[0].weight, torch.ones(4, 3))
    assert torch.equal(net[1][1].weight, torch.ones(2, 3))


def test_mixed_with_no_matching_pattern_fails_cleanly():
    # a known shape is created by initialize() itself
    net = nn.Sequential(nn.Dense(4, bias_initializer=None))
    with pytest.raises(ValueError, match=r"0\.bias"):
        net.initialize(init.Mixed([".*weight"], [init.One()]))
    assert all(lateinit.is_deferred(p) for p in net.parameters())
    # an unknown shape fails at the first batch, which leaves nothing half-initialized
    net = nn.Sequential(nn.Dense(4, use_bias=False), nn.Dense(3, use_bias=False))
    net.initialize(init.Mixed(["0\\.weight"], [init.One()]))
    with pytest.raises(ValueError, match=r"1\.weight"):
        net(torch.rand(2, 3))
    assert all(lateinit.is_deferred(p) for p in net.parameters())


# --------------------------------------------------------------------------------------
# precedence and layer defaults


def test_registered_init_applies_to_parameters_without_their_own():
    # Gluon: initialize(init) is the default for parameters without an initializer of
    # their own; Dense's bias has its own ("zeros"), its weight has none.
    net = nn.Sequential(nn.Dense(3))
    net.initialize(init.One())
    net(torch.rand(2, 4))
    assert torch.equal(net[0].weight, torch.ones(3, 4))
    assert torch.equal(net[0].bias, torch.zeros(3))


def test_own_initializer_wins_over_registered():
    net = nn.Sequential(nn.Dense(3, weight_initializer=init.Constant(0.5)), nn.Dense(2))
    net.initialize(init.One())
    net(torch.rand(2, 4))
    assert torch.equal(net[0].weight, torch.full((3, 4), 0.5))
    assert torch.equal(net[1].weight, torch.ones(2, 3))


def test_second_initialize_before_data_replaces_registered():
    net = nn.Sequential(nn.Dense(3, use_bias=False))
    net.initialize(init.One())
    net.initialize(init.Constant(4.0))
    net(torch.rand(2, 4))
    assert torch.equal(net[0].weight, torch.full((3, 4), 4.0))


@pytest.mark.parametrize(
    ("make", "x", "in_units"),
    [
        (lambda: nn.Dense(512, in_units=400).initialize(), None, 400),
        (lambda: nn.Dense(512), torch.rand(2, 400), 400),
        (lambda: nn.Dense(512), torch.rand(2, 4, 10, 10), 400),  # flattened: fan = 4*10*10
        (lambda: nn.Dense(512, flatten=False), torch.rand(2, 3, 300), 300),
        (lambda: nn.Sequential(nn.Dense(512)).initialize(), torch.rand(2, 50), 50),
    ],
    ids=["eager", "deferred", "deferred-flatten", "deferred-last-axis", "initialize()"],
)
def test_dense_defaults_match_torch_linear(make, x, in_units):
    layer = make()
    if x is not None:
        layer(x)
    dense = layer if isinstance(layer, nn.Dense) else layer[0]
    bound = 1.0 / math.sqrt(in_units)
    assert dense.weight.shape == (512, in_units)
    assert_uniform(dense.weight.detach(), bound)
    assert torch.equal(dense.bias, torch.zeros(512))  # Gluon's zero bias
    # the same distribution as torch.nn.Linear's weight
    linear = torch.nn.Linear(in_units, 512)
    assert linear.weight.abs().max() <= bound
    assert dense.weight.std().item() == pytest.approx(linear.weight.std().item(), rel=0.05)


def test_dense_default_in_float64():
    layer = nn.Dense(300, in_units=400, dtype=torch.float64).initialize()
    assert layer.weight.dtype == torch.float64
    assert_uniform(layer.weight.detach(), 1 / math.sqrt(400))


@pytest.mark.parametrize(
    ("initializer", "check"),
    [
        (init.Xavier(), lambda w: assert_uniform(w, math.sqrt(3.0 / ((300 + 200) / 2)))),
        (init.Xavier("gaussian", "in", 2.0), lambda w: assert_normal(w, math.sqrt(2.0 / 300))),
        ("xavier_uniform", lambda w: assert_uniform(w, math.sqrt(6.0 / 500))),
        (init.Normal(0.5), lambda w: assert_normal(w, 0.5)),
    ],
    ids=["Xavier", "Xavier-gaussian-in", "xavier_uniform", "Normal"],
)
def test_fans_come_from_the_inferred_shape(initializer, check):
    net = nn.Sequential(nn.Dense(200))
    net.initialize(initializer)
    net(torch.rand(2, 3, 10, 10))  # flattened: in_units = 300
    assert net[0].weight.shape == (200, 300)
    check(net[0].weight.detach())


def test_trunc_normal_takes_mean_first_and_stdev_or_sigma():
    assert init.TruncNormal(0.5, 0.02) == init.TruncNormal(mean=0.5, stdev=0.02)
    assert init.TruncNormal(0.5, sigma=0.02) == init.TruncNormal(0.5, 0.02)
    assert init.TruncNormal().stdev == 0.01
    with pytest.raises(TypeError, match="stdev= or sigma="):
        init.TruncNormal(0.0, 0.02, sigma=0.02)
    t = torch.empty(10_000)
    init.TruncNormal(1.0, 0.5)(t, generator=torch.Generator().manual_seed(0))
    assert 0.0 <= t.min() and t.max() <= 2.0 and abs(t.mean().item() - 1.0) < 0.02
