"""Devices and dtypes decided before inference, and mixed precision with torch.autocast."""

from __future__ import annotations

import pytest
import torch

import lateinit
from lateinit import zoo
from test_io import X, small_net  # conv, BatchNorm, Dense: every kind of state


def dtypes(net: torch.nn.Module) -> set[torch.dtype]:
    """The dtypes of the floating tensors (BatchNorm's num_batches_tracked stays int64,
    as in torch)."""
    return {t.dtype for t in net.state_dict(keep_vars=True).values() if t.is_floating_point()}


@pytest.mark.parametrize(
    ("convert", "dtype"),
    [
        (lambda n: n.half(), torch.float16),
        (lambda n: n.bfloat16(), torch.bfloat16),
        (lambda n: n.double(), torch.float64),
        (lambda n: n.to(torch.bfloat16), torch.bfloat16),
        (lambda n: n.to("cpu", torch.float64), torch.float64),
        (lambda n: n.initialize(dtype=torch.bfloat16), torch.bfloat16),
    ],
    ids=["half", "bfloat16", "double", "to_dtype", "to_device_dtype", "initialize_dtype"],
)
def test_dtype_chosen_before_inference_decides_creation(convert, dtype):
    net = small_net()
    params = list(net.parameters())
    convert(net)
    # still deferred (initialize() creates the parameters whose shape is known already)
    assert any(lateinit.is_deferred(p) for p in net.parameters())
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]  # identity kept
    out = net(X.to(dtype))
    assert out.dtype == dtype and dtypes(net) == {dtype}


def test_infer_shape_then_initialize_on_device_and_dtype():
    net = zoo.resnet18(num_classes=10)
    net.infer_shape(lateinit.Spec((None, 3, 32, 32)))
    net.initialize(device="meta", dtype=torch.bfloat16)
    assert {t.device.type for t in net.state_dict().values()} == {"meta"}
    assert dtypes(net) == {torch.bfloat16}
    assert lateinit.count_params(net) == 11_181_642


def test_autocast_on_a_deferred_network_matches_a_ready_one():
    torch.manual_seed(0)
    deferred = small_net()
    torch.manual_seed(0)
    ready = small_net()
    ready(X)  # READY in float32 before any autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = deferred(X)  # the initializing call runs under autocast
        expected = ready(X)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected)
    # parameters are created in float32 (autocast casts per op, as in torch)
    assert dtypes(deferred) == {torch.float32}
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in deferred.parameters())


def test_autocast_infer_shape_and_training_step():
    torch.manual_seed(0)
    net = zoo.lenet()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = net.infer_shape(lateinit.Spec((None, 1, 28, 28)))
    assert spec.shape == (None, 10)
    net.initialize()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = net[0].weight.detach().clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert not torch.equal(before, net[0].weight)
    assert net[0].weight.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_before_inference_creates_on_the_gpu():
    net = small_net().cuda()
    out = net(X.cuda())
    assert out.is_cuda and {t.device.type for t in net.state_dict().values()} == {"cuda"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_initialize_on_cuda_from_infer_shape_allocates_nothing_on_cpu():
    net = zoo.llama(vocab_size=100, dim=64, n_layers=2, n_heads=4, hidden_dim=128)
    net.infer_shape(lateinit.Spec((None, 8), torch.long))
    net.initialize(device="cuda", dtype=torch.bfloat16)
    assert {t.device.type for t in net.parameters()} == {"cuda"}
    out = net(torch.randint(0, 100, (2, 8), device="cuda"))
    assert out.dtype == torch.bfloat16
