"""torch's own protocols on lateinit networks (docs/design.md, "Layers are torch layers"):
materialization (to_empty, reset_parameters, meta-device construction, accelerate's
init_empty_weights), torch's Lazy* modules inside a network, and compile / export /
trace before the first batch."""

from __future__ import annotations

import os

import pytest
import torch

import lateinit
from lateinit import DeferredInitializationError, nn


def _mlp(**kw):
    return nn.Sequential(nn.Dense(8, activation="relu", **kw), nn.Dense(2))


# -- reset_parameters ------------------------------------------------------------------


def test_reset_parameters_redraws_every_parameter_in_place():
    torch.manual_seed(0)
    net = nn.Sequential(_mlp(), torch.nn.Linear(2, 3))
    net(torch.ones(1, 5))
    before = [p.detach().clone() for p in net.parameters()]
    ids = [id(p) for p in net.parameters()]
    torch.manual_seed(1)
    net.reset_parameters()
    after = list(net.parameters())
    assert [id(p) for p in after] == ids
    for old, new in zip(before, after, strict=True):
        if old.dim() > 1 or not torch.equal(old, torch.zeros_like(old)):
            assert not torch.equal(old, new)  # redrawn (zero biases stay zero)
    assert net[0][0].weight.abs().max() <= 5**-0.5  # nn.Linear's bound, fan_in 5


def test_reset_parameters_on_every_layer_uses_its_own_initializer():
    layer = nn.Dense(3, in_units=2, weight_initializer="ones", bias_initializer="zeros")
    layer.initialize()
    with torch.no_grad():
        layer.weight.mul_(5)
    layer.reset_parameters()
    assert torch.equal(layer.weight, torch.ones(3, 2))


# -- construction on meta, accelerate ---------------------------------------------------


def test_built_under_the_meta_device_then_initialized_on_cpu():
    with torch.device("meta"):
        net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2))
    assert all(p.device.type == "meta" for p in net.parameters())
    net.initialize(device="cpu")
    assert net(torch.ones(1, 3)).shape == (1, 2)
    assert all(p.device.type == "cpu" for p in net.parameters())


def test_built_under_the_meta_device_then_to_empty_and_reset_parameters():
    with torch.device("meta"):
        net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    net.to_empty(device="cpu")
    net.reset_parameters()
    assert all(lateinit.state(p) == "READY" and p.device.type == "cpu" for p in net.parameters())
    assert torch.isfinite(net(torch.ones(1, 3))).all()


def test_accelerate_init_empty_weights_then_load_parameters(tmp_path):
    accelerate = pytest.importorskip("accelerate")
    torch.manual_seed(0)
    source = _mlp()
    x = torch.randn(2, 5)
    source(x)
    path = os.fspath(tmp_path / "net.safetensors")
    source.save_parameters(path)
    with accelerate.init_empty_weights():
        net = _mlp()
    assert all(p.device.type == "meta" and lateinit.is_deferred(p) for p in net.parameters())
    net.load_parameters(path)
    assert all(p.device.type == "cpu" and lateinit.state(p) == "READY" for p in net.parameters())
    assert torch.equal(net(x), source(x))


# -- torch's Lazy* modules inside a lateinit network -------------------------------------


def test_torch_lazy_modules_inside_a_network_with_infer_shape_and_summary():
    net = nn.Sequential(nn.Dense(8, activation="relu"), torch.nn.LazyLinear(4), nn.Dense(2))
    assert net.infer_shape(lateinit.Spec((None, 5))).shape == (None, 2)
    assert tuple(net[2].weight.shape) == (2, 4)
    assert isinstance(net[1], torch.nn.LazyLinear)  # the live lazy module is untouched
    assert len(net[1]._forward_pre_hooks) == 1
    rows = {r.path: r for r in net.summary((3, 5)).rows}
    assert rows["1"].output.shape == (3, 4)
    out = net(torch.ones(3, 5))  # torch's lazy mechanism at the first real call
    assert out.shape == (3, 2) and type(net[1]) is torch.nn.Linear


# -- compile, export, trace before the first batch -------------------------------------


def test_torch_compile_of_a_network_that_never_saw_data():
    from torch._dynamo.utils import counters

    net = _mlp()
    compiled = torch.compile(net, backend="eager")
    x = torch.ones(3, 5)
    first = compiled(x)  # the initializing call runs eagerly
    assert all(lateinit.state(p) == "READY" for p in net.parameters())
    counters.clear()
    again = compiled(x)
    assert torch.equal(first, again)
    assert not counters["graph_break"], dict(counters["graph_break"])  # a clean graph


@pytest.mark.parametrize("strict", [False, True])
def test_torch_export_before_the_first_batch_raises_our_error(strict):
    net = _mlp()
    with pytest.raises(DeferredInitializationError, match=r"infer_shape\(\.\.\.\)") as info:
        torch.export.export(net, (torch.ones(3, 5),), strict=strict)
    # says which tool and what to do, not which internal op touched the parameter first
    assert "before torch.export" in str(info.value) and "_is_view" not in str(info.value)
    net.infer_shape((3, 5))
    net.initialize()
    exported = torch.export.export(net, (torch.ones(3, 5),), strict=strict)
    assert torch.equal(exported.module()(torch.ones(3, 5)), net(torch.ones(3, 5)))


def test_jit_trace_before_the_first_batch_raises_our_error_and_changes_nothing():
    net = _mlp()
    with pytest.raises(DeferredInitializationError, match=r"torch\.jit\.trace cannot record"):
        torch.jit.trace(net, (torch.ones(3, 5),))
    assert [lateinit.state(p) for p in net.parameters()] == [
        "DECLARED",
        "SHAPED",
        "DECLARED",
        "SHAPED",
    ]
    net(torch.ones(3, 5))
    traced = torch.jit.trace(net, (torch.ones(3, 5),))
    assert torch.equal(traced(torch.ones(3, 5)), net(torch.ones(3, 5)))
