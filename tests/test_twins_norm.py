"""The normalization layers are their torch twins ("Layers are torch layers"): isinstance,
the twin's names and state_dict keys, the twin's attributes once known, strict state dicts
both ways, and Gluon's names (gamma, beta, moving_mean, moving_var) as aliases in
attributes, lookups and loading."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

import lateinit
from lateinit import init, nn
from lateinit.io import load_parameters, save_parameters

RANDOM = {"gamma_initializer": init.Normal(1.0), "beta_initializer": init.Normal(1.0)}

# (factory, torch base class, plain twin factory given the channels, input)
TWINS = [
    (
        lambda: nn.BatchNorm(**RANDOM),
        _BatchNorm,
        lambda c: torch.nn.BatchNorm2d(c),
        lambda: torch.randn(4, 3, 5, 5),
    ),
    (
        lambda: nn.LayerNorm(**RANDOM),
        torch.nn.LayerNorm,
        lambda c: torch.nn.LayerNorm(c),
        lambda: torch.randn(2, 5, 8),
    ),
    (
        lambda: nn.GroupNorm(num_groups=2, **RANDOM),
        torch.nn.GroupNorm,
        lambda c: torch.nn.GroupNorm(2, c),
        lambda: torch.randn(2, 6, 4, 4),
    ),
    (
        lambda: nn.RMSNorm(gamma_initializer=init.Normal(1.0)),
        torch.nn.RMSNorm,
        lambda c: torch.nn.RMSNorm(c, eps=1e-6),
        lambda: torch.randn(2, 5, 8),
    ),
    (
        lambda: nn.InstanceNorm(**RANDOM),
        _InstanceNorm,
        lambda c: torch.nn.InstanceNorm2d(c, affine=True, track_running_stats=False),
        lambda: torch.randn(2, 3, 6, 6),
    ),
]
IDS = ["BatchNorm", "LayerNorm", "GroupNorm", "RMSNorm", "InstanceNorm"]


def _size_attr(layer: torch.nn.Module):
    """The twin's size attribute of ``layer``, as the twin spells it."""
    if isinstance(layer, _BatchNorm | _InstanceNorm):
        return layer.num_features
    if isinstance(layer, torch.nn.GroupNorm):
        return layer.num_channels
    return layer.normalized_shape


def _ready(factory, make_input):
    torch.manual_seed(0)
    layer = factory()
    x = make_input()
    layer(x)
    return layer, x


@pytest.mark.parametrize(("factory", "base", "twin", "make_input"), TWINS, ids=IDS)
def test_is_an_instance_of_its_twin_deferred_and_ready(factory, base, twin, make_input):
    layer = factory()
    assert isinstance(layer, base) and isinstance(layer, nn.Block)
    assert _size_attr(layer) is None  # not known yet
    assert lateinit.is_deferred(layer.weight)
    layer(make_input())
    assert isinstance(layer, base)
    channels = layer.weight.shape[0]
    assert _size_attr(layer) in (channels, (channels,))
    assert _size_attr(twin(channels)) == _size_attr(layer)


@pytest.mark.parametrize(("factory", "base", "twin", "make_input"), TWINS, ids=IDS)
def test_strict_state_dict_both_ways_with_equal_outputs(factory, base, twin, make_input):
    layer, x = _ready(factory, make_input)
    layer.eval()
    plain = twin(layer.weight.shape[0]).eval()
    assert list(layer.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(layer.state_dict(), strict=True)
    torch.testing.assert_close(plain(x), layer(x))
    # ... and back, into a READY layer and into a deferred one
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn_like(p))
    for target in (layer, factory().eval()):
        target.load_state_dict(plain.state_dict(), strict=True)
        torch.testing.assert_close(target(x), plain(x))


def test_batchnorm_twin_attributes():
    bn = nn.BatchNorm(momentum=0.8, epsilon=1e-3)
    assert (bn.num_features, bn.eps, bn.affine, bn.track_running_stats) == (None, 1e-3, True, True)
    assert bn.momentum == pytest.approx(0.2)  # torch's convention: 1 - Gluon's momentum
    assert repr(bn) == "BatchNorm(-1, axis=1, eps=0.001, momentum=0.8)"
    bn(torch.randn(4, 3))
    assert bn.num_features == 3
    assert repr(bn) == "BatchNorm(3, axis=1, eps=0.001, momentum=0.8)"
    assert not nn.BatchNorm(center=False, scale=False).affine
    assert nn.BatchNorm(in_channels=5).num_features == 5  # known from the constructor
    ln = nn.LayerNorm(scale=False)
    assert (ln.normalized_shape, ln.eps, ln.elementwise_affine) == (None, 1e-5, True)
    assert not nn.LayerNorm(center=False, scale=False).elementwise_affine
    gn = nn.GroupNorm(num_groups=3, in_channels=6)
    assert (gn.num_groups, gn.num_channels, gn.affine) == (3, 6, True)
    rms = nn.RMSNorm(epsilon=None)
    assert (rms.normalized_shape, rms.eps, rms.elementwise_affine) == (None, None, True)
    assert not hasattr(rms, "bias")  # torch.nn.RMSNorm has no bias slot
    inorm = nn.InstanceNorm(center=False, scale=False)
    assert (inorm.affine, inorm.track_running_stats, inorm.running_mean) == (False, False, None)


def test_torch_code_runs_on_ready_layers():
    """torch's own forward of the twins, torch.ao's conv-bn fusion and SyncBatchNorm's
    conversion read the twin attributes."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    bn = nn.BatchNorm(**RANDOM, running_variance_initializer=init.Constant(2.0))
    bn(x)
    bn.eval()
    torch.testing.assert_close(torch.nn.BatchNorm2d.forward(bn, x), bn(x))
    conv = torch.nn.Conv2d(2, 3, 3).eval()
    fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
    y = torch.randn(2, 2, 7, 7)
    torch.testing.assert_close(fused(y), bn(conv(y)), rtol=1e-4, atol=1e-5)
    sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(torch.nn.Sequential(bn))[0]
    assert isinstance(sync, torch.nn.SyncBatchNorm) and sync.num_features == 3
    assert sync.momentum == bn.momentum and sync.weight is bn.weight
    assert torch.equal(sync.running_var, bn.running_var)
    ln = nn.LayerNorm(**RANDOM)
    h = torch.randn(2, 4, 8)
    ln(h)
    torch.testing.assert_close(torch.nn.LayerNorm.forward(ln, h), ln(h))
    gn = nn.GroupNorm(num_groups=2, **RANDOM)
    g = torch.randn(2, 4, 3)
    gn(g)
    torch.testing.assert_close(torch.nn.GroupNorm.forward(gn, g), gn(g))
    rms = nn.RMSNorm(gamma_initializer=init.Normal(1.0))
    rms(h)
    torch.testing.assert_close(torch.nn.RMSNorm.forward(rms, h), rms(h))


def test_torch_conv_bn_state_dict_loads_into_lateinit_strictly():
    """The case that failed: Missing key(s) "1.gamma", "1.beta"; Unexpected key(s)
    "1.weight", "1.bias", "1.num_batches_tracked"."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    x = torch.randn(4, 3, 9, 9)
    theirs(x)  # non-trivial running statistics and a count
    theirs.eval()
    ours = nn.Sequential(nn.Conv2D(8, 3), nn.BatchNorm()).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    torch.testing.assert_close(ours(x), theirs(x))
    assert int(ours[1].num_batches_tracked) == 1
    theirs.load_state_dict(ours.state_dict(), strict=True)


def test_num_batches_tracked_counts_training_batches():
    bn = nn.BatchNorm()
    assert lateinit.is_deferred(bn.num_batches_tracked)
    x = torch.randn(4, 3, 2, 2)
    for _ in range(3):
        bn(x)
    count = bn.num_batches_tracked
    assert type(count) is torch.Tensor and count.dtype == torch.int64 and count.shape == ()
    assert int(count) == 3
    bn.eval()
    bn(x)
    frozen = nn.BatchNorm(use_global_stats=True)
    frozen(x)
    assert int(bn.num_batches_tracked) == 3 and int(frozen.num_batches_tracked) == 0
    twin = torch.nn.BatchNorm2d(3)
    for _ in range(3):
        twin(x)
    assert torch.equal(twin.num_batches_tracked, bn.num_batches_tracked)
    # stays int64 through .to(float64) and initialize(dtype=...)
    bn64 = nn.BatchNorm().to(torch.float64)
    bn64(x.double())
    assert bn64.num_batches_tracked.dtype == torch.int64
    eager = nn.BatchNorm(in_channels=3).initialize(dtype=torch.float64)
    assert eager.num_batches_tracked.dtype == torch.int64 and int(eager.num_batches_tracked) == 0


def test_momentum_none_is_torchs_cumulative_average():
    torch.manual_seed(0)
    bn, twin = nn.BatchNorm(), torch.nn.BatchNorm2d(3, momentum=None)
    bn.momentum = None
    assert "momentum=None" in repr(bn)
    for step in range(3):
        x = torch.randn(4, 3, 2, 2) + step
        torch.testing.assert_close(bn(x), twin(x))
    torch.testing.assert_close(bn.running_mean, twin.running_mean)
    torch.testing.assert_close(bn.running_var, twin.running_var)


def test_gluon_names_are_aliases():
    net = nn.Sequential(nn.BatchNorm(), nn.LayerNorm(), nn.RMSNorm())
    bn, ln, rms = net
    assert bn.gamma is bn.weight and bn.beta is bn.bias  # deferred
    net(torch.randn(4, 6))
    assert bn.gamma is bn.weight and bn.beta is bn.bias
    assert bn.moving_mean is bn.running_mean and bn.moving_var is bn.running_var
    assert ln.gamma is ln.weight and ln.beta is ln.bias and rms.gamma is rms.weight
    params = net.collect_params()
    assert params["0.gamma"] is bn.weight and params["1.beta"] is ln.bias
    assert "2.gamma" in params and list(params)[:2] == ["0.weight", "0.bias"]
    assert list(net.collect_params(".*gamma")) == ["0.weight", "1.weight", "2.weight"]
    assert set(bn.state_dict()) == {
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }
    with torch.no_grad():
        bn.gamma = torch.nn.Parameter(torch.full((6,), 2.0))  # assigned by the Gluon name
    assert torch.equal(bn.weight, torch.full((6,), 2.0)) and "gamma" not in bn._parameters


def _gluon_state(channels: int) -> dict[str, torch.Tensor]:
    return {
        "0.gamma": torch.full((channels,), 2.0),
        "0.beta": torch.full((channels,), 0.5),
        "0.moving_mean": torch.full((channels,), 1.0),
        "0.moving_var": torch.full((channels,), 4.0),
    }


def _check_gluon_values(bn) -> None:
    x = torch.randn(2, 3, 4, 4)
    bn.eval()
    want = (x - 1.0) / torch.sqrt(torch.tensor(4.0 + 1e-5)) * 2.0 + 0.5
    torch.testing.assert_close(bn(x), want)


def test_state_dict_with_gluon_keys_loads():
    for net in (nn.Sequential(nn.BatchNorm()), nn.Sequential(nn.BatchNorm(in_channels=3))):
        if not lateinit.is_deferred(net[0].weight):
            net.initialize()
        net.load_state_dict(_gluon_state(3), strict=True)  # no num_batches_tracked: 0
        assert int(net[0].num_batches_tracked) == 0
        _check_gluon_values(net[0])
        assert list(net.state_dict()) == [
            "0.weight",
            "0.bias",
            "0.running_mean",
            "0.running_var",
            "0.num_batches_tracked",
        ]


def test_safetensors_file_with_gluon_keys_loads(tmp_path):
    path = tmp_path / "gluon.safetensors"
    save_file(_gluon_state(3), str(path))
    ready = nn.Sequential(nn.BatchNorm(in_channels=3)).initialize()
    # A Gluon file has no num_batches_tracked; the READY count stays as it is.
    load_parameters(ready, path, allow_missing=True)
    _check_gluon_values(ready[0])
    deferred = nn.Sequential(nn.BatchNorm())
    load_parameters(deferred, path, allow_missing=True)
    assert not lateinit.is_deferred(deferred[0].running_var)
    _check_gluon_values(deferred[0])  # the count is created at the first call
    assert int(deferred[0].num_batches_tracked) == 0
    # saved with torch's names, and loaded back strictly
    saved = tmp_path / "torch.safetensors"
    save_parameters(deferred, saved)
    with safe_open(str(saved), "pt") as f:
        assert set(f.keys()) == {
            "0.weight",
            "0.bias",
            "0.running_mean",
            "0.running_var",
            "0.num_batches_tracked",
        }
    again = nn.Sequential(nn.BatchNorm())
    load_parameters(again, saved)
    _check_gluon_values(again[0])


def test_deepcopy_pickle_and_compile_keep_the_twin():
    torch.manual_seed(0)
    bn = nn.BatchNorm(**RANDOM)
    clone = copy.deepcopy(bn)  # deferred
    x = torch.randn(4, 3, 5, 5)
    bn(x)
    clone(x)
    assert isinstance(clone, _BatchNorm) and clone.num_features == 3
    assert torch.equal(clone.num_batches_tracked, bn.num_batches_tracked)
    loaded = pickle.loads(pickle.dumps(bn))
    assert isinstance(loaded, _BatchNorm) and loaded.gamma is loaded.weight
    assert loaded.state_dict().keys() == bn.state_dict().keys()
    torch._dynamo.reset()
    compiled = torch.compile(bn, fullgraph=True, backend="eager")
    want = bn(x)  # training: counts
    got = compiled(x)
    torch.testing.assert_close(got, want)
    assert int(bn.num_batches_tracked) == 3


def test_infer_shape_and_to_empty_with_twin_names():
    net = nn.Sequential(nn.Conv2D(4, 3), nn.BatchNorm(), nn.GroupNorm(2))
    net.infer_shape(lateinit.Spec((None, 3, 8, 8)))
    bn, gn = net[1], net[2]
    assert bn.num_features == 4 and gn.num_channels == 4  # SHAPED: sizes known
    assert lateinit.is_deferred(bn.num_batches_tracked)
    net.to_empty(device="cpu")
    net.reset_parameters()
    assert torch.equal(bn.weight, torch.ones(4)) and torch.equal(gn.bias, torch.zeros(4))
    assert bn.num_batches_tracked.dtype == torch.int64


def test_reset_parameters_redraws_running_statistics():
    net = nn.Sequential(nn.BatchNorm())
    net.infer_shape(lateinit.Spec((None, 4, 8, 8)))
    net.to_empty(device="cpu")
    net.reset_parameters()
    bn = net[0]
    assert torch.equal(bn.running_var, torch.ones(4)) and int(bn.num_batches_tracked) == 0
    assert type(bn.running_var) is torch.Tensor
