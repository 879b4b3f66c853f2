"""Block behaviour: initialize, collect_params, the inference hook, devices and dtypes,
the atomic and thread-safe first pass, sharing, reuse, copies, state_dict, compile."""

from __future__ import annotations

import copy
import math
import pickle
import re
import threading
import time
import warnings

import pytest
import torch

import lateinit
from lateinit import ShapeMismatchError, init, nn

# -- helpers -----------------------------------------------------------------------------


def _mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Dense(16, activation="relu"),
        nn.Dropout(0.0),
        nn.Dense(8, activation="tanh"),
        nn.Dense(3),
    )


def _values(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _assert_equal_values(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class _Switch:
    """A Lambda body that fails while ``on`` (so the same network can work later)."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.on:
            raise KeyError("the original failure")
        return x


# -- initialize --------------------------------------------------------------------------


def test_initialize_registers_default_only_for_params_without_their_own():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(4), nn.Dense(3, weight_initializer=init.Constant(0.5)))
    net.initialize(init.One())
    net(torch.rand(2, 5))
    assert torch.equal(net[0].weight.detach(), torch.ones(4, 5))  # registered default
    assert torch.equal(net[0].bias.detach(), torch.zeros(4))  # its own: "zeros"
    assert torch.equal(net[1].weight.detach(), torch.full((3, 4), 0.5))  # its own


@pytest.mark.filterwarnings("ignore:Parameter .* is already initialized")
def test_second_initialize_before_data_replaces_the_registered_initializer():
    net = nn.Sequential(nn.Dense(4), nn.Dense(3))
    net.initialize(init.Zero())
    net.initialize(init.One())
    assert net[0].weight.initializer == init.One()
    net(torch.rand(2, 5))
    assert torch.equal(net[0].weight.detach(), torch.ones(4, 5))
    assert torch.equal(net[1].weight.detach(), torch.ones(3, 4))


def test_initialize_twice_warns_per_ready_parameter_and_keeps_values():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(4, in_units=5), nn.Dense(3))
    net.initialize()
    ready = [n for n, p in net.named_parameters() if not lateinit.is_deferred(p)]
    assert ready == ["0.weight", "0.bias", "1.bias"]
    before = _values(net[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.initialize(init.One())
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == len(ready)
    for name in ready:
        assert sum(f"'{name}'" in m for m in messages) == 1, messages
    assert all("force_reinit" in m for m in messages)
    _assert_equal_values(before, _values(net[0]))
    # The parameter still deferred got the newly registered initializer.
    net(torch.rand(2, 5))
    assert torch.equal(net[1].weight.detach(), torch.ones(3, 4))
    assert torch.equal(net[1].bias.detach(), torch.zeros(3))  # READY before: kept


def test_force_reinit_reinitializes_ready_parameters_in_place():
    net = nn.Sequential(nn.Dense(4), nn.Dense(3))
    net(torch.rand(2, 5))
    params = list(net.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.initialize(init.One(), force_reinit=True)
    assert all(a is b for a, b in zip(net.parameters(), params, strict=True))
    assert torch.equal(net[0].weight.detach(), torch.ones(4, 5))
    assert torch.equal(net[1].weight.detach(), torch.ones(3, 4))
    assert torch.equal(net[0].bias.detach(), torch.zeros(4))  # its own initializer
    for p in net.parameters():
        assert type(p) is torch.nn.Parameter


def test_initialize_dtype_float64():
    net = nn.Sequential(nn.Dense(4, in_units=5), nn.Dense(3))
    net.initialize(dtype=torch.float64)
    assert net[0].weight.dtype == torch.float64
    assert net[1].weight.dtype == torch.float64  # still deferred, will be float64
    out = net(torch.rand(2, 5, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert {p.dtype for p in net.parameters()} == {torch.float64}


def test_initialize_device_meta():
    net = nn.Sequential(nn.Dense(4, in_units=5), nn.Dense(3))
    net.initialize(device="meta")
    assert not lateinit.is_deferred(net[0].weight)
    assert net[0].weight.device.type == "meta"
    assert lateinit.is_deferred(net[1].weight) and net[1].weight.device.type == "meta"
    out = net(torch.empty(2, 5, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 3)
    assert {p.device.type for p in net.parameters()} == {"meta"}
    assert not any(lateinit.is_deferred(p) for p in net.parameters())


def test_calling_without_initialize_uses_layer_defaults():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(64, activation="relu"), nn.Dense(32))
    net(torch.rand(2, 100))
    # Dense weight like torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)); Gluon's zero bias.
    for layer, fan_in in zip(net, (100, 64), strict=True):
        bound = 1 / math.sqrt(fan_in)
        w = layer.weight.detach()
        assert w.abs().max() <= bound + 1e-6
        assert w.abs().max() > 0.9 * bound
        assert torch.equal(layer.bias.detach(), torch.zeros_like(layer.bias))


# -- collect_params ------------------------------------------------------------------------

SELECT_CASES = [
    (None, ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]),
    (r".*weight", ["0.weight", "1.weight", "2.weight"]),
    (r"1\.", ["1.weight", "1.bias"]),
    (r"0\.w|2\.b", ["0.weight", "2.bias"]),
    ("weight", []),  # re.match anchors at the start of the name
    (r".*bias$", ["0.bias", "1.bias", "2.bias"]),
]


@pytest.mark.parametrize(("select", "names"), SELECT_CASES)
def test_collect_params_select_is_re_match(select, names):
    net = nn.Sequential(nn.Dense(4), nn.Dense(3), nn.Dense(2))
    params = net.collect_params(select)
    assert list(params) == names
    all_params = dict(net.named_parameters())
    for name in names:
        assert params[name] is all_params[name]


def test_collect_params_lists_shared_parameters_once():
    shared = nn.Dense(4)
    net = nn.Sequential(shared, nn.Activation("relu"), shared)
    assert list(net.collect_params()) == ["0.weight", "0.bias"]
    net(torch.rand(2, 4))
    assert list(net.collect_params()) == ["0.weight", "0.bias"]

    a, b = nn.Dense(4), nn.Dense(4)
    b.share_parameters(a)
    pair = nn.Sequential(a, b)
    assert list(pair.collect_params()) == ["0.weight", "0.bias"]


def test_collect_params_repr_rows():
    net = nn.Sequential(
        nn.Dense(4, in_units=3), nn.Dense(2), nn.Dense(5, in_units=2, dtype=torch.float64)
    )
    net[0].initialize()
    text = repr(net.collect_params())
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:-1]}
    assert rows == {
        "0.weight": ["0.weight", "(4,", "3)", "float32", "READY"],
        "0.bias": ["0.bias", "(4,)", "float32", "READY"],
        "1.weight": ["1.weight", "(2,", "-1)", "float32", "DECLARED"],
        "1.bias": ["1.bias", "(2,)", "float32", "SHAPED"],
        "2.weight": ["2.weight", "(5,", "2)", "float64", "SHAPED"],
        "2.bias": ["2.bias", "(5,)", "float64", "SHAPED"],
    }


# -- the per-layer hook ------------------------------------------------------------------


class _Proj(nn.Block):
    """A user layer with its own parameter of unknown shape and its hook."""

    def __init__(self) -> None:
        super().__init__()
        self.w = lateinit.Parameter((8, -1), init="ones")

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        self.w.shape = (8, x.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w.T


class _NoHook(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.w = lateinit.Parameter((8, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the forward never ties w's unknown dim to an input size: without a hook,
        # lateinit cannot read it off the forward (tests/test_symbolic_shapes.py)
        return x + self.w.sum()


def test_user_block_with_own_parameter_and_hook():
    layer = _Proj()
    assert list(layer.collect_params()) == ["w"]
    assert tuple(layer.w.shape) == (8, -1)
    net = nn.Sequential(nn.Dense(5), layer)
    x = torch.rand(3, 7)
    out = net(x)
    assert tuple(layer.w.shape) == (8, 5)
    assert type(layer.w) is torch.nn.Parameter
    torch.testing.assert_close(out, net[0](x) @ torch.ones(8, 5).T)


@pytest.mark.parametrize("nested", [False, True])
def test_user_block_without_hook_gets_a_clear_error(nested, h):
    net = nn.Sequential(nn.Dense(5), _NoHook()) if nested else _NoHook()
    before = h.snapshot(net)
    with pytest.raises(RuntimeError) as excinfo:
        net(torch.rand(3, 7))
    message = str(excinfo.value)
    assert "_NoHook" in message
    assert "infer_param_shapes" in message
    assert "(8, -1)" in message
    assert "dim 1 of 'w'" in message
    if nested:
        assert "'1'" in message
    h.assert_same_snapshot(before, h.snapshot(net))  # and the first pass rolled back


class _OnlyChildren(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Dense(6, activation="relu")
        self.out = nn.Dense(2)
        self.linear = torch.nn.Linear(2, 3)  # any torch module can be a child

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.out(self.hidden(x)))


def test_user_block_of_child_layers_needs_no_code(h):
    net = _OnlyChildren()
    out = net(torch.rand(4, 7))
    assert out.shape == (4, 3)
    assert tuple(net.hidden.weight.shape) == (6, 7)
    assert tuple(net.out.weight.shape) == (2, 6)
    h.assert_all_ready(net)


def test_parameters_assigned_as_attributes_are_registered():
    block = nn.Block()
    block.deferred = lateinit.Parameter((4, -1))
    block.plain = torch.nn.Parameter(torch.ones(2))
    names = dict(block.named_parameters())
    assert names["deferred"] is block.deferred
    assert names["plain"] is block.plain
    assert list(block.collect_params()) == ["deferred", "plain"]
    assert block._parameters["deferred"] is block.deferred


# -- devices and dtypes --------------------------------------------------------------------

_DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _DEVICES)
def test_parameters_are_created_on_the_device_of_the_first_input(device):
    net = _mlp()
    params = list(net.parameters())
    out = net(torch.rand(2, 20).to(device))
    assert out.device.type == device
    assert {p.device.type for p in net.parameters()} == {device}
    assert all(a is b for a, b in zip(net.parameters(), params, strict=True))


def test_initialize_without_device_then_first_batch_on_another_device(h):
    """initialize() with no device creates the biases (shape known) on the CPU; then the
    first batch comes on another device (meta here, CUDA in real life). Either
    everything lands on that device, or the call fails and rolls back completely: the
    failure is the original one (not an error of the rollback itself) and the network
    still works on the CPU afterwards."""
    net = nn.Sequential(nn.Dense(4), nn.Dense(2))
    net.initialize()
    before = h.snapshot(net)
    try:
        out = net(torch.rand(2, 3, device="meta"))
    except Exception as err:
        assert "use_count" not in str(err), f"the rollback itself failed: {err}"
        h.assert_same_snapshot(before, h.snapshot(net))
        assert net(torch.rand(2, 3)).shape == (2, 2)
    else:
        assert out.device.type == "meta"
        assert {p.device.type for p in net.parameters()} == {"meta"}


def test_to_float64_before_inference_gives_float64_parameters():
    net = _mlp().to(torch.float64)
    assert all(lateinit.is_deferred(p) for n, p in net.named_parameters() if "weight" in n)
    out = net(torch.rand(2, 20, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert {p.dtype for p in net.parameters()} == {torch.float64}


@pytest.mark.parametrize("ready_first", [False, True], ids=["deferred", "ready"])
def test_input_of_another_float_dtype_is_a_named_type_error(ready_first, h):
    net = nn.Sequential(nn.Activation("relu"), nn.Dense(4), nn.Dense(2))
    if ready_first:
        net(torch.rand(2, 3))
    before = h.snapshot(net)
    x = torch.rand(2, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="'1'"):  # message content: test_errors.py
        net(x)
    h.assert_same_snapshot(before, h.snapshot(net))
    if not ready_first:  # the second fix: create the parameters in float64
        in_float64 = copy.deepcopy(net).initialize(dtype=torch.float64)
        assert in_float64(x).dtype == torch.float64
    assert net(x.to(torch.float32)).shape == (2, 2)  # the first fix


# -- atomic first pass ---------------------------------------------------------------------


def test_failed_first_pass_rolls_back_and_restores_rng():
    torch.manual_seed(0)
    switch = _Switch()
    net = nn.Sequential(nn.Dense(8), nn.Dropout(0.5), nn.Lambda(switch))
    net.train()
    weight, bias = net[0].weight, net[0].bias
    x = torch.rand(2, 5)

    rng = torch.random.get_rng_state()
    with pytest.raises(KeyError) as excinfo:
        net(x)
    assert torch.equal(torch.random.get_rng_state(), rng)  # Dropout's draw is undone
    assert excinfo.type is KeyError
    assert excinfo.value.args == ("the original failure",)
    # The Dense is DECLARED again, with the same objects.
    assert net[0].weight is weight and net[0].bias is bias
    assert lateinit.is_deferred(weight) and weight.is_deferred
    assert tuple(weight.shape) == (8, -1)
    assert weight.state == "DECLARED"
    assert lateinit.is_deferred(bias) and bias.state == "SHAPED"
    assert "forward" in net.__dict__  # still waiting for its first pass

    # Afterwards the same network works, with the values it would have had anyway.
    switch.on = False
    out = net(x)
    assert out.shape == (2, 8)
    assert not lateinit.is_deferred(weight) and tuple(weight.shape) == (8, 5)
    torch.manual_seed(0)
    fresh = nn.Sequential(nn.Dense(8), nn.Dropout(0.5), nn.Lambda(lambda t: t))
    fresh(torch.rand(2, 5))
    _assert_equal_values(_values(fresh), _values(net))


def test_original_exception_object_propagates_unchanged():
    raised: list[BaseException] = []

    def boom(x: torch.Tensor) -> torch.Tensor:
        err = ZeroDivisionError("custom message 42")
        raised.append(err)
        raise err

    net = nn.Sequential(nn.Dense(3), nn.Lambda(boom))
    with pytest.raises(ZeroDivisionError) as excinfo:
        net(torch.rand(2, 2))
    assert excinfo.value is raised[0]
    assert str(excinfo.value) == "custom message 42"


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_failure_at_layer_k_rolls_back_all_earlier_layers(k, h):
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [
        nn.Dense(6, in_units=5),  # READY before the pass: must stay bit-identical
        nn.Dense(7, activation="relu"),
        nn.Dropout(0.3),
        nn.Dense(4),
        nn.Dense(3),
    ]
    switch = _Switch()
    layers.insert(k + 1, nn.Lambda(switch))
    net = nn.Sequential(*layers)
    net.initialize()
    net.train()
    before = h.snapshot(net)
    x = torch.rand(2, 5)
    rng = torch.random.get_rng_state()
    with pytest.raises(KeyError):
        net(x)
    assert torch.equal(torch.random.get_rng_state(), rng)
    h.assert_same_snapshot(before, h.snapshot(net))
    switch.on = False
    assert net(x).shape == (2, 3)
    h.assert_all_ready(net)


def test_shape_mismatch_mid_pass_rolls_back(h):
    net = nn.Sequential(nn.Dense(8), nn.Dropout(0.5), nn.Dense(4, in_units=5))
    net.train()
    before = h.snapshot(net)
    x = torch.rand(2, 3)
    rng = torch.random.get_rng_state()
    with pytest.raises(ShapeMismatchError) as excinfo:
        net(x)
    assert "'2'" in str(excinfo.value)
    assert torch.equal(torch.random.get_rng_state(), rng)
    h.assert_same_snapshot(before, h.snapshot(net))
    assert lateinit.is_deferred(net[0].weight) and tuple(net[0].weight.shape) == (8, -1)


def test_failure_in_nested_user_block_rolls_back(h):
    class Outer(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.switch = _Switch()
            self.encoder = nn.Sequential(nn.Dense(6), nn.Dense(4))
            self.tail = nn.Lambda(self.switch)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.tail(self.encoder(x))

    net = Outer()
    before = h.snapshot(net)
    with pytest.raises(KeyError):
        net(torch.rand(2, 3))
    h.assert_same_snapshot(before, h.snapshot(net))
    net.switch.on = False
    assert net(torch.rand(2, 3)).shape == (2, 4)


# -- thread-safe first pass ----------------------------------------------------------------


def test_threads_making_the_first_call_initialize_each_parameter_once():
    x = torch.rand(4, 20)
    torch.manual_seed(7)
    reference = _mlp()
    expected_out = reference(x)

    torch.manual_seed(7)
    net = _mlp()
    params = list(net.parameters())
    # Count every initializer run; sleeping in it lets the other threads in meanwhile.
    calls: list[tuple[int, ...]] = []

    def counting_default(tensor: torch.Tensor, generator: torch.Generator | None = None):
        calls.append(tuple(tensor.shape))
        time.sleep(0.01)
        bound = 1 / math.sqrt(tensor.shape[1])  # Dense's default, so values match
        return tensor.uniform_(-bound, bound, generator=generator)

    net.initialize(counting_default)
    n = 8
    barrier = threading.Barrier(n)
    outs: list[torch.Tensor | None] = [None] * n
    errors: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(n)]

    def worker(i: int) -> None:
        try:
            barrier.wait()
            outs[i] = net(x)
            seen[i] = [id(p) for p in net.parameters()]
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(calls) == sorted(tuple(p.shape) for p in params if p.dim() == 2)
    assert all(a is b for a, b in zip(net.parameters(), params, strict=True))
    assert all(ids == [id(p) for p in params] for ids in seen)
    for out in outs:
        assert out is not None and torch.equal(out, outs[0])
    assert torch.equal(outs[0], expected_out)
    _assert_equal_values(_values(reference), _values(net))
    for module in net.modules():
        assert "forward" not in module.__dict__


# -- sharing -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["block", "dict"])
def test_share_parameters_ties_by_structural_name(source):
    a = nn.Sequential(nn.Dense(4), nn.Dense(2))
    b = nn.Sequential(nn.Dense(4), nn.Dense(2))
    objects = {n: p for n, p in a.named_parameters()}
    b.share_parameters(a if source == "block" else a.collect_params())
    for i in (0, 1):
        assert b[i].weight is a[i].weight
        assert b[i].bias is a[i].bias
    assert dict(a.named_parameters()) == objects  # a keeps its own objects
    x = torch.rand(3, 5)
    assert torch.equal(a(x), b(x))
    assert b[0].weight is objects["0.weight"] and tuple(a[0].weight.shape) == (4, 5)


@pytest.mark.parametrize("known_on", ["this", "other"])
def test_share_parameters_fills_unknown_dims_from_either_side(known_on):
    mine = nn.Dense(4, in_units=3) if known_on == "this" else nn.Dense(4)
    other = nn.Dense(4) if known_on == "this" else nn.Dense(4, in_units=3)
    mine.share_parameters(other)
    assert mine.weight is other.weight
    assert tuple(other.weight.shape) == (4, 3)
    other.initialize()
    assert not lateinit.is_deferred(mine.weight)
    assert mine(torch.rand(2, 3)).shape == (2, 4)


def test_share_parameters_conflict_names_both_and_changes_nothing(h):
    a = nn.Sequential(nn.Dense(4), nn.Dense(2, in_units=4))
    b = nn.Sequential(nn.Dense(4), nn.Dense(2, in_units=5))
    before_a, before_b = h.snapshot(a), h.snapshot(b)
    with pytest.raises(ShapeMismatchError) as excinfo:
        b.share_parameters(a)
    message = str(excinfo.value)
    assert "1.weight" in message
    assert "(2, 4)" in message and "(2, 5)" in message
    assert "Fix" in message
    # Nothing changed: not even the compatible layer 0 was tied.
    h.assert_same_snapshot(before_a, h.snapshot(a))
    h.assert_same_snapshot(before_b, h.snapshot(b))
    assert b[0].weight is not a[0].weight


def test_share_parameters_with_a_ready_block():
    a = nn.Dense(4)
    a(torch.rand(2, 3))
    b = nn.Dense(4)
    b.share_parameters(a)
    assert b.weight is a.weight and not lateinit.is_deferred(b.weight)
    x = torch.rand(2, 3)
    assert torch.equal(a(x), b(x))
    with pytest.raises(ShapeMismatchError):
        b(torch.rand(2, 6))


# -- one block instance used twice -----------------------------------------------------


class _Both(nn.Block):
    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.first = layer
        self.second = layer

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.first(x) + self.second(y)


@pytest.mark.parametrize("ready_first", [False, True], ids=["deferred", "ready"])
def test_block_used_twice_first_size_wins_and_conflict_names_both_uses(ready_first, h):
    net = _Both(nn.Dense(4))
    good = (torch.rand(2, 3), torch.rand(2, 3))
    if ready_first:
        net(*good)
    before = h.snapshot(net)
    with pytest.raises(ShapeMismatchError) as excinfo:
        net(torch.rand(2, 3), torch.rand(2, 5))
    message = str(excinfo.value)
    assert "'first'" in message and "'second'" in message
    assert re.search(r"\b3\b", message) and "(2, 5)" in message  # the first size won
    h.assert_same_snapshot(before, h.snapshot(net))
    assert net(*good).shape == (2, 4)
    assert tuple(net.first.weight.shape) == (4, 3)


def test_block_used_twice_error_blames_the_use_that_got_the_bad_input():
    """The first use fixed in_units=3; the second use ('second') got (2, 5): the error's
    layer path is that of the second use, and the first use is the one named as having
    fixed the size."""
    net = _Both(nn.Dense(4))
    with pytest.raises(ShapeMismatchError) as excinfo:
        net(torch.rand(2, 3), torch.rand(2, 5))
    assert excinfo.value.layer == "second", str(excinfo.value)


def test_block_used_twice_in_a_sequential():
    shared = nn.Dense(4)
    net = nn.Sequential(shared, nn.Activation("tanh"), shared)
    x = torch.rand(2, 4)
    out = net(x)
    torch.testing.assert_close(out, shared(torch.tanh(shared(x))))
    assert tuple(shared.weight.shape) == (4, 4)


# -- copies --------------------------------------------------------------------------------

COPIERS = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda m: pickle.loads(pickle.dumps(m)),
}


@pytest.mark.parametrize("copier", list(COPIERS))
def test_copy_of_a_deferred_network(copier, h):
    torch.manual_seed(3)
    net = _mlp()
    clone = COPIERS[copier](net)
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in net.named_parameters()]
    for (name, p), q in zip(net.named_parameters(), clone.parameters(), strict=True):
        assert q is not p, name
        assert lateinit.is_deferred(q) == lateinit.is_deferred(p), name
        assert tuple(q.shape) == tuple(p.shape), name
    x = torch.rand(3, 20)
    out_clone = clone(x)
    # The copy materialized on its own: the original is still deferred.
    assert lateinit.is_deferred(net[0].weight)
    h.assert_all_ready(clone)
    out = net(x)
    assert torch.equal(out, out_clone)  # seeds were copied: same values
    _assert_equal_values(_values(net), _values(clone))
    with torch.no_grad():
        clone[0].weight.add_(1.0)
    assert not torch.equal(clone[0].weight, net[0].weight)


@pytest.mark.parametrize("copier", list(COPIERS))
def test_copy_of_a_ready_network(copier, h):
    net = _mlp()
    x = torch.rand(3, 20)
    out = net(x)
    clone = COPIERS[copier](net)
    h.assert_all_ready(clone)
    _assert_equal_values(_values(net), _values(clone))
    assert torch.equal(clone(x), out)
    for p, q in zip(net.parameters(), clone.parameters(), strict=True):
        assert p is not q
    for module in clone.modules():
        assert "forward" not in module.__dict__
    with torch.no_grad():
        clone[0].weight.mul_(2.0)
    assert torch.equal(net(x), out)


def test_state_dict_round_trip_between_ready_networks():
    torch.manual_seed(0)
    a = _mlp()
    torch.manual_seed(1)
    b = _mlp()
    x = torch.rand(3, 20)
    a(x)
    b(x)
    assert not torch.equal(a(x), b(x))
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    objects = list(b.parameters())
    b.load_state_dict(state)
    assert all(p is q for p, q in zip(b.parameters(), objects, strict=True))
    _assert_equal_values(_values(a), _values(b))
    assert torch.equal(a(x), b(x))


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(16, activation="relu"), nn.Dense(4))
    x = torch.rand(3, 10)
    eager = net(x)
    compiled = torch.compile(net, fullgraph=True)
    torch.testing.assert_close(compiled(x), eager)
    y = torch.rand(3, 10)
    torch.testing.assert_close(compiled(y), net(y))


def test_nothing_of_the_first_pass_remains_after_the_first_batch():
    class Outer(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.body = _mlp()
            self.plain = torch.nn.Linear(3, 2)
            self.act = nn.Activation("relu")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.plain(self.act(self.body(x)))

    net = Outer()
    assert "forward" in net.__dict__
    net(torch.rand(2, 20))
    for name, module in net.named_modules():
        assert "forward" not in module.__dict__, name
        assert not module._forward_pre_hooks and not module._forward_hooks, name
    for name, p in net.named_parameters():
        assert type(p) is torch.nn.Parameter, name


def test_fully_sized_network_needs_no_first_pass_after_initialize():
    net = nn.Sequential(nn.Dense(4, in_units=3), nn.Activation("relu"), nn.Dense(2, in_units=4))
    net.initialize()
    for name, module in net.named_modules():
        assert "forward" not in module.__dict__, name
    for p in net.parameters():
        assert type(p) is torch.nn.Parameter


def test_to_meta_keeps_a_deferred_network_deferred():
    net = _mlp()
    params = dict(net.named_parameters())
    out = net.to("meta")
    assert out is net
    for name, p in net.named_parameters():
        assert p is params[name], name
        assert lateinit.is_deferred(p), name
        assert p.device.type == "meta", name
    assert tuple(net[0].weight.shape) == (16, -1)
    net(torch.empty(2, 20, device="meta"))
    assert tuple(net[0].weight.shape) == (16, 20)
    assert net[0].weight is params["0.weight"] and net[0].weight.device.type == "meta"


def test_load_state_dict_into_a_deferred_network_fills_shapes():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Dense(4), nn.BatchNorm(), nn.Dense(2))
    source(torch.rand(3, 5))
    target = nn.Sequential(nn.Dense(4), nn.BatchNorm(), nn.Dense(2))
    weight = target[0].weight
    target.load_state_dict(source.state_dict())
    assert target[0].weight is weight and type(weight) is torch.nn.Parameter
    assert tuple(weight.shape) == (4, 5)
    assert not any(lateinit.is_deferred(t) for t in [*target.parameters(), *target.buffers()])
    x = torch.rand(3, 5)
    torch.testing.assert_close(target.eval()(x), source.eval()(x), rtol=0, atol=0)


def test_load_state_dict_with_a_conflicting_known_size_reports_it():
    source = nn.Sequential(nn.Dense(4), nn.Dense(2))
    source(torch.rand(3, 5))
    target = nn.Sequential(nn.Dense(4, in_units=7), nn.Dense(2))
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight"):
        target.load_state_dict(source.state_dict())


# -- to_empty: torch's materialization protocol -------------------------------------------


def test_to_empty_on_a_shaped_network_allocates_ready_parameters():
    net = nn.Sequential(nn.Dense(4), nn.BatchNorm(), nn.Dense(2))
    net.infer_shape((3, 5))
    assert net.to_empty(device="cpu") is net
    assert all(lateinit.state(t) == "READY" for t in [*net.parameters(), *net.buffers()])
    assert [tuple(p.shape) for p in net.parameters()] == [(4, 5), (4,), (4,), (4,), (2, 4), (2,)]
    assert "forward" not in net.__dict__
    assert net(torch.rand(3, 5)).shape == (3, 2)


def test_to_empty_that_fails_changes_nothing():
    net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2))
    net.initialize()
    before = net[0].weight.detach().clone()
    with pytest.raises(lateinit.DeferredInitializationError, match=r"'1\.weight' \(2, -1\)"):
        net.to_empty(device="cpu")
    assert torch.equal(net[0].weight, before)  # the READY layer kept its values
    assert lateinit.state(net[1].weight) == "DECLARED"
    assert net(torch.ones(1, 3)).shape == (1, 2)


class _Scale(lateinit.Block):
    """A layer of one's own that explains its kernel's failures."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = lateinit.Parameter((-1,), init="ones")

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        self.weight.shape = (x.shape[-1],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            if x.shape[0] == 0:
                raise ValueError("an unrelated failure")
            return x * self.weight
        except (RuntimeError, ValueError) as err:
            raise self.explain_error(err, x)


def test_explain_error_names_a_custom_layer_and_leaves_it_unchanged():
    net = nn.Sequential(nn.Identity(), _Scale())
    net(torch.ones(2, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net(torch.ones(1, 4))
    msg = str(info.value)
    assert "layer '1' (_Scale)" in msg and "(1, 4)" in msg and "Fix:" in msg, msg
    assert isinstance(info.value.__cause__, RuntimeError)  # the kernel's error, kept
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # an error the inputs do not explain is raised as it was
    with pytest.raises(ValueError, match="an unrelated failure"):
        net[1](torch.ones(0, 3))
    assert net[1](torch.ones(1, 3)).shape == (1, 3)
