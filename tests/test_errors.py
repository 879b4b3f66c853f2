"""The content of every error message: what happened, what was expected, which layer,
and the fix."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lateinit
from lateinit import DeferredInitializationError, ShapeMismatchError, init, nn
from lateinit.shapes import fmt_shape

# -- DeferredInitializationError ---------------------------------------------------------

USES: dict[str, Callable[[torch.Tensor], Any]] = {
    ".data": lambda p: p.data,
    "add": lambda p: p + 1,
    "matmul": lambda p: torch.matmul(torch.ones(3, p.shape[0]), p),
    "sum": lambda p: p.sum(),
    "index": lambda p: p[0],
    "linear": lambda p: F.linear(torch.ones(2, 3), p),
    "clone": lambda p: p.clone(),
    "tolist": lambda p: p.tolist(),
    "in-place": lambda p: p.mul_(2),
    "nn.init": lambda p: torch.nn.init.zeros_(p),
}


def _seed_net() -> nn.Sequential:
    return nn.Sequential(nn.Dense(256, activation="relu"), nn.Dense(10))


@pytest.mark.parametrize(
    ("param", "shape", "reason"),
    [("0.weight", "(256, -1)", "not known"), ("1.bias", "(10,)", "not been created")],
)
@pytest.mark.parametrize("use", list(USES))
def test_deferred_initialization_error_message(use, param, shape, reason):
    net = _seed_net()
    net.collect_params()  # structural names are known from here on
    p = dict(net.named_parameters())[param]
    with pytest.raises(DeferredInitializationError) as excinfo:
        USES[use](p)
    err = excinfo.value
    assert isinstance(err, RuntimeError)
    message = str(err)
    assert f"'{param}'" in message  # the parameter
    assert "Dense" in message  # its layer type
    assert shape in message  # its partial shape
    assert "deferred" in message
    assert reason in message
    # The three fixes: a batch, infer_shape, or the input size.
    assert "batch" in message
    assert "infer_shape" in message
    assert "in_units" in message
    assert lateinit.is_deferred(p)  # the failed use changed nothing


def test_deferred_initialization_error_names_a_bare_layer_parameter():
    layer = nn.Dense(5)
    with pytest.raises(DeferredInitializationError, match=r"'weight'.*\(5, -1\)"):
        layer.weight.data  # noqa: B018


def test_numel_of_an_unknown_shape_raises():
    with pytest.raises(DeferredInitializationError, match=r"\(4, -1\)"):
        lateinit.Parameter((4, -1)).numel()


# -- ShapeMismatchError ------------------------------------------------------------------


def _assert_shape_message(err: BaseException, path: str, expected: int, got: tuple[int, ...]):
    assert isinstance(err, ShapeMismatchError) and isinstance(err, ValueError)
    message = str(err)
    assert f"'{path}'" in message, message
    assert "Dense" in message, message
    assert str(expected) in message, message
    assert fmt_shape(got) in message, message
    assert "Fix" in message, message
    assert "mat1 and mat2" not in message, message
    assert "cannot be multiplied" not in message, message


MISMATCHES = [
    # id, layer kwargs, bad input shape, expected size, words naming the axis
    ("flatten-2d", {"flatten": True}, (2, 30), 20, "axis 1"),
    ("flatten-3d", {"flatten": True}, (2, 5, 7), 20, "product of all axes after the first"),
    ("last-axis", {"flatten": False}, (2, 3, 30), 20, "last axis"),
    ("last-axis-2d", {"flatten": False}, (4, 19), 20, "last axis"),
]


@pytest.mark.parametrize("state", ["declared", "initialized", "ready"])
@pytest.mark.parametrize(
    ("kwargs", "bad", "expected", "axis"),
    [m[1:] for m in MISMATCHES],
    ids=[m[0] for m in MISMATCHES],
)
def test_shape_mismatch_message(kwargs, bad, expected, axis, state):
    net = nn.Sequential(nn.Activation("relu"), nn.Dense(4, in_units=expected, **kwargs))
    if state == "initialized":
        net.initialize()
    elif state == "ready":
        net(torch.rand(2, expected))
    with pytest.raises(ShapeMismatchError) as excinfo:
        net(torch.rand(*bad))
    _assert_shape_message(excinfo.value, "1", expected, bad)
    assert axis in str(excinfo.value)


def test_shape_mismatch_of_an_inferred_size():
    """A size inferred from the first batch is as binding as one given in_units."""
    net = nn.Sequential(nn.Dense(8), nn.Dense(3))
    net(torch.rand(2, 20))
    with pytest.raises(ShapeMismatchError) as excinfo:
        net(torch.rand(2, 30))
    _assert_shape_message(excinfo.value, "0", 20, (2, 30))


@pytest.mark.parametrize("state", ["declared", "ready"])
@pytest.mark.parametrize("nested", [False, True])
def test_zero_dim_input_to_dense(state, nested):
    layer = nn.Dense(4)
    net = nn.Sequential(nn.Identity(), layer) if nested else layer
    if state == "ready":
        net(torch.rand(2, 3))
    with pytest.raises(ShapeMismatchError) as excinfo:
        net(torch.tensor(1.0))
    message = str(excinfo.value)
    assert "Dense" in message
    if nested:
        assert "'1'" in message
    assert "()" in message  # the shape it got
    assert "Fix" in message, message  # and what to do about it
    assert lateinit.is_deferred(layer.weight) == (state == "declared")


# -- random Dense stacks (hypothesis) ----------------------------------------------------

_FREE_LAYERS: list[Callable[[], torch.nn.Module]] = [
    lambda: nn.Activation("relu"),
    lambda: nn.Identity(),
    lambda: nn.Dropout(0.0),
]


@st.composite
def _stacks(draw: st.DrawFn) -> dict[str, Any]:
    depth = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 12), min_size=depth + 1, max_size=depth + 1))
    given = draw(st.lists(st.booleans(), min_size=depth, max_size=depth).filter(any))
    free = draw(st.lists(st.integers(-1, 2), min_size=depth, max_size=depth))
    bad = draw(
        st.one_of(
            st.tuples(st.integers(1, 3), st.integers(1, 40)),
            st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
        )
    )
    start = draw(st.sampled_from(["declared", "initialized", "ready"]))
    return {"widths": widths, "given": given, "free": free, "bad": bad, "start": start}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stacks())
def test_random_dense_stacks_run_or_name_the_layer(case):
    widths, given, bad = case["widths"], case["given"], case["bad"]
    layers: list[torch.nn.Module] = []
    dense_paths: list[str] = []
    for i, kind in enumerate(case["free"]):
        if kind >= 0:
            layers.append(_FREE_LAYERS[kind]())
        dense_paths.append(str(len(layers)))
        in_units = widths[i] if given[i] else None
        layers.append(nn.Dense(widths[i + 1], activation="relu", in_units=in_units))
    net = nn.Sequential(*layers)

    valid_size = widths[0]
    if case["start"] == "initialized":
        net.initialize()
    elif case["start"] == "ready":
        net(torch.rand(2, valid_size))
    first_fixed = given[0] or case["start"] == "ready"
    before = {n: (lateinit.is_deferred(p), tuple(p.shape)) for n, p in net.named_parameters()}

    bad_size = math.prod(bad[1:])
    try:
        out = net(torch.rand(*bad))
    except ShapeMismatchError as err:
        # Only a size that disagrees with a known one fails, at the first Dense.
        assert bad_size != valid_size and first_fixed
        _assert_shape_message(err, dense_paths[0], valid_size, bad)
        after = {n: (lateinit.is_deferred(p), tuple(p.shape)) for n, p in net.named_parameters()}
        assert after == before
    else:
        assert bad_size == valid_size or not first_fixed
        assert out.shape == (bad[0], widths[-1])
        valid_size = bad_size  # the first batch fixed the input size
    assert net(torch.rand(3, valid_size)).shape == (3, widths[-1])
    for p in net.parameters():
        assert type(p) is torch.nn.Parameter


# -- dtype -------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["declared", "ready"])
@pytest.mark.parametrize(
    ("param_dtype", "input_dtype"),
    [(torch.float32, torch.float64), (torch.float64, torch.float32), (None, torch.float16)],
)
def test_dtype_error_message(state, param_dtype, input_dtype):
    net = nn.Sequential(nn.Identity(), nn.Dense(4))
    if param_dtype is not None:
        net.to(param_dtype)
    want = param_dtype or torch.float32
    if state == "ready":
        net(torch.rand(2, 3, dtype=want))
    with pytest.raises(TypeError) as excinfo:
        net(torch.rand(2, 3).to(input_dtype))
    message = str(excinfo.value)
    got_name, want_name = (str(d).replace("torch.", "") for d in (input_dtype, want))
    assert "'1'" in message and "Dense" in message
    assert got_name in message and want_name in message
    assert f"x.to(torch.{want_name})" in message
    assert f"initialize(dtype=torch.{got_name})" in message
    assert lateinit.is_deferred(net[1].weight) == (state == "declared")


# -- construction errors -----------------------------------------------------------------

BAD_INITIALIZERS: dict[str, Callable[[], Any]] = {
    "initialize": lambda: nn.Dense(3).initialize("no_such_init"),
    "weight_initializer": lambda: nn.Dense(3, weight_initializer="no_such_init"),
    "bias_initializer": lambda: nn.Dense(3, bias_initializer="no_such_init"),
    "Parameter": lambda: lateinit.Parameter((3, -1), init="no_such_init"),
    "resolve": lambda: init.resolve("no_such_init"),
    "Mixed": lambda: init.Mixed([".*"], ["no_such_init"]),
}


@pytest.mark.parametrize("where", list(BAD_INITIALIZERS))
def test_bad_initializer_name_lists_the_known_names(where):
    with pytest.raises(ValueError) as excinfo:
        BAD_INITIALIZERS[where]()
    message = str(excinfo.value)
    assert "no_such_init" in message
    for known in ("zeros", "ones", "xavier_uniform", "normal", "orthogonal"):
        assert re.search(rf"\b{known}\b", message), message


def test_bad_initializer_in_initialize_changes_nothing():
    net = nn.Sequential(nn.Dense(3, in_units=2), nn.Dense(2))
    net.initialize(init.One())
    with pytest.raises(ValueError):
        net.initialize("no_such_init", force_reinit=True)
    assert torch.equal(net[0].weight.detach(), torch.ones(3, 2))
    net(torch.rand(2, 2))
    assert torch.equal(net[1].weight.detach(), torch.ones(2, 3))  # One() still registered


def test_unknown_activation_name_lists_the_known_ones():
    with pytest.raises(ValueError) as excinfo:
        nn.Dense(3, activation="no_such_act")
    message = str(excinfo.value)
    assert "no_such_act" in message
    assert "relu" in message and "softrelu" in message and "callable" in message


def test_lambda_with_an_unknown_function_name():
    with pytest.raises(ValueError) as excinfo:
        nn.Lambda("no_such_function")
    message = str(excinfo.value)
    assert "'no_such_function'" in message
    assert "torch.nn.functional" in message and "callable" in message


def test_lambda_with_a_non_callable():
    with pytest.raises(TypeError, match="int"):
        nn.Lambda(42)


@pytest.mark.parametrize(
    "build",
    [
        lambda: nn.Sequential().add(torch.tanh),
        lambda: nn.Sequential().add("relu"),
        lambda: nn.Sequential(nn.Dense(3), 5),
        lambda: nn.Sequential([nn.Dense(3), None]),
    ],
    ids=["function", "string", "int", "none-in-list"],
)
def test_sequential_add_of_a_non_module(build):
    with pytest.raises(TypeError) as excinfo:
        build()
    message = str(excinfo.value)
    assert "Sequential.add" in message
    assert "torch.nn.Module" in message
    assert "Lambda" in message  # the fix for a function
