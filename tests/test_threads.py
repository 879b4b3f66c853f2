"""Threads, races and inspection (docs/design.md, "Threads" and "Inspecting never mutates").

Bounded stress tests: each runs a few seconds at most (loop counts and a time cap), and
every thread is joined with a timeout so that a deadlock fails the test instead of
hanging the suite.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import torch

import lateinit
from lateinit import init, nn

SECONDS = 1.5  # time cap of each stress loop
JOIN = 30.0  # a thread still running after this is a deadlock


def _run_threads(*targets, join=JOIN):
    """Run each target in a thread; re-raise the first exception; fail on a hang."""
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as err:  # reported below
                errors.append(err)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join)
    assert not any(t.is_alive() for t in threads), "a thread is still running: deadlock"
    if errors:
        raise errors[0]


def _until(deadline, count):
    """Loop counter bounded by both a count and a deadline."""
    for i in range(count):
        if time.monotonic() > deadline:
            return
        yield i


class CountingInit(init.Initializer):
    """Fills ones and counts how often each parameter was initialized, and by which name."""

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, tensor, *, generator=None, name=""):
        with self.lock:
            self.calls[name] += 1
        with torch.no_grad():
            return tensor.fill_(1.0)

    def _args(self):
        return {}


def _mlp():
    return nn.Sequential(nn.Dense(16, activation="relu"), nn.Dense(8), nn.Dense(3))


# -- item: inspection never changes what a READY forward sees ---------------------------


@pytest.mark.parametrize("inspect", ["summary", "infer_shape", "bad_call"])
def test_inspection_never_disturbs_ready_forwards_in_other_threads(inspect):
    torch.manual_seed(0)
    net = _mlp()
    x = torch.randn(4, 5)
    net(x)
    reference = net(x).detach().clone()
    deadline = time.monotonic() + SECONDS
    stop = threading.Event()
    bad = torch.randn(4, 7)  # the wrong size: its error is explained on the side

    def inspector():
        for _ in _until(deadline, 10_000):
            if stop.is_set():
                return
            if inspect == "summary":
                net.summary((None, 5))
            elif inspect == "infer_shape":
                assert net.infer_shape(lateinit.Spec((None, 5))).shape == (None, 3)
            else:
                with pytest.raises(lateinit.ShapeMismatchError, match="layer '0'"):
                    net(bad)

    def runner():
        try:
            for _ in _until(deadline, 100_000):
                out = net(x)
                assert out.device.type == "cpu", out
                assert torch.equal(out, reference), (out - reference).abs().max()
        finally:
            stop.set()

    _run_threads(inspector, runner)
    assert all(type(p) is torch.nn.Parameter for p in net.parameters())
    assert torch.equal(net(x), reference)


def test_a_bad_call_never_makes_good_calls_fail():
    """Explaining a wrong-size input used to swap a READY layer's parameters for
    deferred stand-ins: valid calls in other threads got DeferredInitializationError."""
    net = nn.Dense(4, in_units=5)
    net.initialize()
    good, bad = torch.randn(3, 5), torch.randn(3, 6)
    reference = net(good).detach().clone()
    deadline = time.monotonic() + SECONDS

    def bad_calls():
        for _ in _until(deadline, 5_000):
            with pytest.raises(lateinit.ShapeMismatchError):
                net(bad)

    def good_calls():
        for _ in _until(deadline, 50_000):
            assert torch.equal(net(good), reference)

    _run_threads(bad_calls, good_calls, good_calls)


# -- item: first calls racing infer_shape / summary --------------------------------------


def _race_first_calls_with_inspection() -> None:
    counting = CountingInit()
    net = _mlp()
    net.initialize(counting)
    x = torch.ones(2, 5)
    outputs: list[torch.Tensor] = []
    barrier = threading.Barrier(4)

    def first_call():
        barrier.wait()
        outputs.append(net(x))

    def inspect_shape():
        barrier.wait()
        net.infer_shape(lateinit.Spec((None, 5)))

    def inspect_summary():
        barrier.wait()
        net.summary((None, 5))

    _run_threads(first_call, first_call, inspect_shape, inspect_summary)
    weights = [n for n in net.collect_params() if n.endswith("weight")]
    assert dict(counting.calls) == dict.fromkeys(weights, 1), counting.calls
    assert all(lateinit.state(p) == "READY" for p in net.parameters())
    for out in outputs:
        assert out.device.type == "cpu" and out.shape == (2, 3)
        assert torch.equal(out, outputs[0])


def test_first_calls_racing_inspection_initialize_each_parameter_once():
    deadline = time.monotonic() + 4 * SECONDS
    rounds = sum(1 for _ in _until(deadline, 40) if _race_first_calls_with_inspection() is None)
    assert rounds >= 3


def _first_calls_at_once(threads: int) -> None:
    counting = CountingInit()
    net = _mlp()
    net.initialize(counting)
    x = torch.ones(3, 5)
    outs: list[torch.Tensor] = []
    _run_threads(*[lambda: outs.append(net(x))] * threads)
    assert sum(counting.calls.values()) == 3
    assert all(torch.equal(o, outs[0]) for o in outs)


def test_concurrent_first_calls_of_one_network_serialize():
    for _ in range(10):
        _first_calls_at_once(4)


# -- item: locks belong to a network, not the process -----------------------------------


def test_a_first_pass_waiting_for_another_networks_first_call_completes():
    other = _mlp()
    result: list[torch.Tensor] = []

    def call_other_in_a_worker(x):
        worker = threading.Thread(target=lambda: result.append(other(torch.ones(2, 7))))
        worker.start()
        worker.join(JOIN)
        assert not worker.is_alive(), "the other network's first call waited for ours"
        return x

    net = nn.Sequential(nn.Dense(4), nn.Lambda(call_other_in_a_worker), nn.Dense(2))
    _run_threads(lambda: net(torch.ones(2, 3)))
    assert result[0].shape == (2, 3)
    assert all(lateinit.state(p) == "READY" for p in [*net.parameters(), *other.parameters()])


def test_unrelated_networks_never_wait_for_each_other():
    """One network's first pass blocks inside a forward; another network's first pass,
    in another thread, finishes meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def block_inside(x):
        entered.set()
        assert release.wait(JOIN)
        return x

    slow = nn.Sequential(nn.Dense(4), nn.Lambda(block_inside))
    fast = _mlp()
    done = threading.Event()

    def run_slow():
        slow(torch.ones(1, 3))

    def run_fast():
        assert entered.wait(JOIN)
        fast(torch.ones(1, 5))
        done.set()
        release.set()

    _run_threads(run_slow, run_fast)
    assert done.is_set()


def _shared_trunk_race() -> None:
    counting = CountingInit()
    trunk = nn.Dense(6)
    a = nn.Sequential(nn.Dense(5, in_units=3), trunk)
    b = nn.Sequential(nn.Dense(5, in_units=4), trunk)
    a.initialize(counting)
    b.initialize(counting)
    _run_threads(lambda: a(torch.ones(2, 3)), lambda: b(torch.ones(2, 4)))
    assert counting.calls["1.weight"] == 1


@pytest.mark.filterwarnings("ignore:Parameter '1.bias' is already initialized")
def test_networks_sharing_a_parameter_share_its_lock():
    for _ in range(5):
        _shared_trunk_race()


# -- item: functional_call on a deferred network ----------------------------------------


def test_functional_call_on_a_deferred_network_leaves_it_usable():
    net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    # only the input sizes are given; initialize() not called: every parameter deferred
    params = {
        "0.weight": torch.ones(4, 3),
        "0.bias": torch.zeros(4),
        "1.weight": torch.ones(2, 4),
        "1.bias": torch.zeros(2),
    }
    out = torch.func.functional_call(net, params, (torch.ones(1, 3),))
    assert torch.equal(out, torch.full((1, 2), 12.0))
    assert all(lateinit.is_deferred(p) for p in net.parameters())  # untouched
    assert net(torch.ones(1, 3)).shape == (1, 2)  # the first real call initializes
    assert all(lateinit.state(p) == "READY" for p in net.parameters())
    assert "forward" not in net.__dict__  # and the first-call wrapper is gone


# -- item: force_reinit draws fresh seeds ----------------------------------------------


def test_force_reinit_draws_fresh_seeds_from_torchs_generator():
    torch.manual_seed(0)
    net = _mlp()
    net(torch.ones(1, 5))
    first = net[0].weight.detach().clone()

    def reinit(seed):
        torch.manual_seed(seed)
        net.initialize(force_reinit=True)
        return net[0].weight.detach().clone()

    a, b, a_again = reinit(1), reinit(2), reinit(1)
    assert torch.equal(a, a_again)
    assert not torch.equal(a, b) and not torch.equal(a, first)
    # the initializer and fans stay the parameter's own (nn.Linear's U(-1/sqrt(5), .))
    assert a.abs().max() <= 5**-0.5
