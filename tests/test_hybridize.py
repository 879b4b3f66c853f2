"""Block.hybridize: eager initializing call, torch.compile afterwards, no graph breaks."""

from __future__ import annotations

import contextlib
import logging
import traceback

import pytest
import torch

import lateinit
from lateinit import nn, zoo


class CountingBackend:
    """A torch.compile backend that counts the graphs it is given and runs them as is."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1
        return gm.forward


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Dense(16, activation="relu"), nn.Dense(4))


def test_first_call_is_eager_then_compiled():
    torch.manual_seed(0)
    backend = CountingBackend()
    net = mlp().hybridize(backend=backend, fullgraph=True)
    assert net._compiled_call_impl is None  # deferred: nothing to compile yet
    x = torch.randn(3, 5)
    out = net(x)  # eager: infers the shapes, creates the parameters
    assert backend.graphs == 0 and net._compiled_call_impl is not None
    assert torch.equal(net(x), out)
    assert backend.graphs == 1
    net.hybridize(False)
    assert net._compiled_call_impl is None
    assert torch.equal(net(x), out) and backend.graphs == 1


def test_compiled_equals_eager_with_inductor():
    torch.manual_seed(0)
    net = zoo.lenet()
    x = torch.randn(4, 1, 28, 28)
    eager = net(x)
    net.hybridize()
    compiled = net(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    loss = compiled.square().sum()
    loss.backward()  # and it trains
    assert net[0].weight.grad is not None


def test_dynamic_shapes_compile_once():
    backend = CountingBackend()
    net = mlp().hybridize(backend=backend, dynamic=True)
    net(torch.randn(2, 5))
    for batch in (3, 7, 11):
        assert net(torch.randn(batch, 5)).shape == (batch, 4)
    assert backend.graphs == 1


@pytest.mark.parametrize("how", ["infer_shape", "load_parameters"])
def test_ready_without_a_call_compiles_at_once(tmp_path, how):
    backend = CountingBackend()
    net = mlp().hybridize(backend=backend)
    if how == "infer_shape":
        net.infer_shape((2, 5))
        net.initialize()
    else:
        donor = mlp()
        donor(torch.randn(1, 5))
        donor.save_parameters(tmp_path / "mlp.safetensors")
        net.load_parameters(tmp_path / "mlp.safetensors")
    assert net._compiled_call_impl is not None
    net(torch.randn(2, 5))
    assert backend.graphs == 1


def test_hybridize_inside_a_larger_network_and_rearm():
    backend = CountingBackend()
    trunk = mlp().hybridize(backend=backend)
    net = nn.Sequential(trunk, nn.Dense(2))
    net(torch.randn(2, 5))  # the root's first pass makes the trunk READY: compiled next time
    assert trunk._compiled_call_impl is not None
    net(torch.randn(2, 5))
    assert backend.graphs == 1
    # deferred parameters come in again (shared from a fresh block): eager until READY
    fresh = mlp()
    trunk.share_parameters(fresh.collect_params())
    assert lateinit.is_deferred(trunk[0].weight)
    assert trunk._compiled_call_impl is None and "forward" in trunk.__dict__
    trunk(torch.randn(2, 5))  # eager first pass creates them, then compiles again
    assert not lateinit.is_deferred(trunk[0].weight) and trunk._compiled_call_impl is not None
    x = torch.randn(2, 5)
    eager = trunk.forward(x)  # the class forward, not compiled
    assert torch.equal(trunk(x), eager) and backend.graphs >= 1


ZOO = [
    ("mlp", lambda: zoo.mlp(hidden=(32,)), (2, 1, 28, 28)),
    ("lenet", zoo.lenet, (2, 1, 28, 28)),
    ("alexnet", zoo.alexnet, (1, 3, 224, 224)),
    ("vgg11", zoo.vgg11, (1, 3, 64, 64)),
    ("nin", zoo.nin, (1, 1, 224, 224)),
    ("googlenet", zoo.googlenet, (1, 3, 64, 64)),
    ("resnet18", lambda: zoo.resnet18(num_classes=10), (2, 3, 32, 32)),
    ("resnet50", lambda: zoo.resnet50(num_classes=10), (1, 3, 32, 32)),
    ("densenet121", lambda: zoo.densenet121(num_classes=10), (1, 3, 32, 32)),
    ("llama", lambda: zoo.llama(vocab_size=50, dim=32, n_layers=2, n_heads=4, hidden_dim=64), None),
]


@pytest.mark.parametrize(("name", "factory", "shape"), ZOO, ids=[z[0] for z in ZOO])
def test_zoo_models_have_no_graph_breaks(name, factory, shape):
    """fullgraph=True makes any graph break an error; Dynamo's own eager backend keeps
    the test fast (the graph capture is what can break, not the code generation)."""
    torch.manual_seed(0)
    x = torch.randint(0, 50, (2, 7)) if shape is None else torch.randn(shape)
    net = factory().eval()
    backend = CountingBackend()
    net.hybridize(backend=backend, fullgraph=True)
    with torch.no_grad():
        eager = net(x)
        compiled = net(x)
    assert backend.graphs == 1
    assert torch.equal(compiled, eager)


# -- errors under hybridize: the eager, named error, and nothing from dynamo --------------


@pytest.fixture
def torch_logs(caplog):
    """caplog, also fed by torch's loggers: they do not propagate to the root logger, and
    their handler writes to the stream pytest had when torch set it up (not capfd's)."""
    names = ["torch", "torch._dynamo", "torch._subclasses.fake_tensor", "torch._inductor"]
    loggers = [logging.getLogger(n) for n in names]
    for logger in loggers:
        logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING)
    yield caplog
    for logger in loggers:
        logger.removeHandler(caplog.handler)


def eager_error(factory, good: torch.Tensor, bad: torch.Tensor) -> BaseException:
    torch.manual_seed(0)
    net = factory()
    net(good)
    with pytest.raises(Exception) as info:
        net(bad)
    return info.value


BAD_INPUTS = [
    ("dense-size", mlp, (3, 5), (3, 6)),
    (
        "conv-channels",
        lambda: nn.Sequential(nn.Conv2D(4, 3), nn.Dense(2)),
        (2, 3, 8, 8),
        (2, 4, 8, 8),
    ),
    ("conv-rank", lambda: nn.Sequential(nn.Conv2D(4, 3), nn.Dense(2)), (2, 3, 8, 8), (3, 8, 8)),
    ("batchnorm", lambda: nn.Sequential(nn.BatchNorm(), nn.Dense(2)), (4, 5), (4, 6)),
]


@pytest.mark.parametrize(
    ("name", "factory", "good", "bad"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_wrong_size_under_hybridize_is_the_eager_named_error(
    name, factory, good, bad, capfd, torch_logs
):
    good, bad = torch.randn(good), torch.randn(bad)
    want = eager_error(factory, good, bad)
    assert isinstance(want, lateinit.ShapeMismatchError)
    torch.manual_seed(0)
    backend = CountingBackend()
    net = factory().hybridize(backend=backend, fullgraph=True)
    out = net(good)  # eager first pass
    assert torch.equal(net(good), out) and backend.graphs == 1  # compiled
    capfd.readouterr()
    torch_logs.clear()
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net(bad)
    assert str(info.value) == str(want)
    assert info.value.__traceback__ is not None
    tb = "".join(traceback.format_exception(info.value))
    assert "_dynamo" not in tb and "fake tensor" not in tb
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert torch_logs.records == []
    # nothing is left broken: the same compiled graph serves the next valid call
    assert torch.equal(net(good), out) and backend.graphs == 1


def test_dtype_mismatch_under_hybridize_is_the_eager_type_error(torch_logs):
    good, bad = torch.randn(3, 5), torch.randn(3, 5, dtype=torch.float64)
    want = eager_error(mlp, good, bad)
    net = mlp().hybridize(backend="eager")
    net(good)
    net(good)
    torch_logs.clear()
    with pytest.raises(TypeError) as info:
        net(bad)
    assert str(info.value) == str(want) and "layer '0' (Dense)" in str(info.value)
    assert torch_logs.records == []


def test_hybridized_trunk_inside_a_first_pass_names_the_layer(torch_logs):
    """A READY compiled trunk fed a wrong-size input inside the outer network's first
    pass: the named error, with the trunk's path in the outer network, and the pass
    rolls back."""
    trunk = mlp().hybridize(backend="eager")
    trunk(torch.randn(2, 5))
    trunk(torch.randn(2, 5))
    net = nn.Sequential(trunk, nn.Dense(2))
    torch_logs.clear()
    with pytest.raises(lateinit.ShapeMismatchError, match=r"layer '0\.0' \(Dense\)"):
        net(torch.randn(2, 6))
    assert torch_logs.records == []
    assert lateinit.is_deferred(net[1].weight)
    assert net(torch.randn(2, 5)).shape == (2, 2)


class RaisesOnFive(nn.Block):
    """A user block whose forward raises its own error for a batch of 5."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Dense(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dense(x)
        if x.shape[0] == 5:
            raise KeyError("five is not allowed")
        return y


def test_user_error_in_a_compiled_forward_propagates_as_itself():
    net = RaisesOnFive().hybridize(backend="eager")
    net(torch.randn(2, 4))
    net(torch.randn(2, 4))
    with pytest.raises(KeyError, match="five is not allowed"):
        net(torch.randn(5, 4))
    assert net(torch.randn(2, 4)).shape == (2, 3)


class GraphBreak(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Dense(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.graph_break()
        return self.dense(x)


def test_a_compile_only_failure_is_not_swallowed():
    """fullgraph=True and a graph break: the call works eagerly, but the compiler's
    error is what the user asked to see."""
    net = GraphBreak().hybridize(backend="eager", fullgraph=True)
    net(torch.randn(2, 4))  # eager first pass
    with pytest.raises(torch._dynamo.exc.Unsupported):
        net(torch.randn(2, 4))


def test_the_fake_tensor_log_stays_for_everything_else(torch_logs):
    mlp().hybridize(backend="eager")  # installs the filter
    logging.getLogger("torch._subclasses.fake_tensor").error("an error of someone else")
    assert [r.getMessage() for r in torch_logs.records] == ["an error of someone else"]


# -- hybridize's options: refused at once when torch.compile would refuse them ------------

BAD_OPTIONS = [
    ({"mode": "fastest"}, ValueError, ["'fastest'", "'max-autotune'"]),
    ({"backend": "no-such-backend"}, ValueError, ["'no-such-backend'", "'eager'", "'inductor'"]),
    ({"backend": 3}, TypeError, ["backend", "callable"]),
    ({"bogus": 1}, TypeError, ["'bogus'", "fullgraph", "mode", "backend"]),
    ({"fullgraph": "yes"}, TypeError, ["fullgraph", "'yes'"]),
    ({"dynamic": "no"}, TypeError, ["dynamic", "'no'"]),
    ({"options": ["trace.enabled"]}, TypeError, ["options", "dict"]),
    ({"mode": "max-autotune", "options": {"max_autotune": True}}, ValueError, ["mode", "options"]),
    ({"options": {"no_such_inductor_option": 1}}, ValueError, ["no_such_inductor_option"]),
]


@pytest.mark.parametrize(
    ("options", "error", "words"), BAD_OPTIONS, ids=[str(o[0]) for o in BAD_OPTIONS]
)
def test_options_torch_compile_rejects_are_refused_at_hybridize(options, error, words):
    net = mlp()
    with pytest.raises(error) as info:
        net.hybridize(**options)
    for word in words:
        assert word in str(info.value)
    assert net._lateinit.hybrid is None  # nothing changed: the network runs eagerly
    assert net(torch.randn(2, 5)).shape == (2, 4) and net._compiled_call_impl is None


def test_refused_options_keep_the_previous_ones():
    backend = CountingBackend()
    net = mlp().hybridize(backend=backend)
    with pytest.raises(ValueError):
        net.hybridize(mode="fastest")
    net(torch.randn(2, 5))
    net(torch.randn(2, 5))
    assert backend.graphs == 1


def test_accepted_options_and_the_options_dict_is_not_consumed():
    seen = []

    def keep_all(guards):
        seen.append(len(guards))
        return [True] * len(guards)

    options = {"guard_filter_fn": keep_all}
    net = mlp().hybridize(backend="eager", options=options, dynamic=False, name="mlp")
    net(torch.randn(2, 5))
    net(torch.randn(2, 5))
    net.hybridize(backend="eager", options=options)  # recompiles with the same dict
    net(torch.randn(2, 5))
    assert options == {"guard_filter_fn": keep_all} and len(seen) == 2
    mlp().hybridize(mode="max-autotune-no-cudagraphs", fullgraph=False, disable=True)


# -- the first call under hybridize is atomic ---------------------------------------------


def test_a_failing_first_call_under_hybridize_rolls_back():
    """The initializing call fails at layer 2 (after a hybridized trunk and a dropout):
    everything goes back, as without hybridize; valid input then works, and compiles."""
    backend = CountingBackend()
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Dense(16, flatten=False), nn.Dense(4, flatten=False))
    net = nn.Sequential(
        trunk.hybridize(backend=backend), nn.Dropout(0.5), nn.BatchNorm(in_channels=4)
    )
    net.hybridize(backend=backend)
    bad = torch.randn(2, 3, 5)
    rng = torch.get_rng_state()
    with pytest.raises(lateinit.ShapeMismatchError, match=r"layer '2' \(BatchNorm\)"):
        net(bad)
    assert torch.equal(torch.get_rng_state(), rng)
    assert lateinit.is_deferred(trunk[0].weight) and lateinit.is_deferred(trunk[1].weight)
    assert net._compiled_call_impl is None and trunk._compiled_call_impl is None
    assert "forward" in net.__dict__ and "forward" in trunk.__dict__
    x = torch.randn(2, 4, 5)
    out = net(x)  # eager: creates the parameters
    assert not lateinit.is_deferred(trunk[0].weight) and backend.graphs == 0
    assert net._compiled_call_impl is not None and trunk._compiled_call_impl is not None
    assert net(x).shape == out.shape and backend.graphs >= 1  # compiled


def test_a_first_call_that_succeeded_never_fails_afterwards():
    """Before options were checked at hybridize(), a bad one failed the first call
    after its pass had made every parameter READY: the call raised, its output was
    lost, and only part of the network was disarmed."""
    net = mlp()
    with contextlib.suppress(ValueError, TypeError):
        net.hybridize(mode="fastest")
    assert net(torch.randn(2, 5)).shape == (2, 4)
    assert not lateinit.is_deferred(net[0].weight)
