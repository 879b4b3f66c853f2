"""Behaviour of the normalization layers beyond the generic checks (which run in eval mode):
BatchNorm training against torch (Gluon's momentum convention), its running statistics as
deferred buffers, and the errors of each layer."""

from __future__ import annotations

import copy

import pytest
import torch

import lateinit
from lateinit import init
from lateinit.nn.basic import Dense
from lateinit.nn.containers import Sequential
from lateinit.nn.norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm


def _copy_affine(ours: BatchNorm, twin: torch.nn.Module) -> None:
    with torch.no_grad():
        twin.weight.copy_(ours.weight)
        twin.bias.copy_(ours.bias)


# (ours kwargs, input shape, twin factory, channels-last input)
TRAINING = [
    ({}, (6, 5), lambda: torch.nn.BatchNorm1d(5), False),
    ({}, (4, 3, 7), lambda: torch.nn.BatchNorm1d(3), False),
    ({"momentum": 0.7}, (4, 3, 5, 5), lambda: torch.nn.BatchNorm2d(3, momentum=0.3), False),
    ({}, (2, 4, 3, 3, 3), lambda: torch.nn.BatchNorm3d(4), False),
    ({"axis": -1, "epsilon": 1e-3}, (4, 5, 5, 3), lambda: torch.nn.BatchNorm2d(3, eps=1e-3), True),
]


@pytest.mark.parametrize(("kwargs", "shape", "twin", "channels_last"), TRAINING)
def test_batchnorm_training_matches_torch(kwargs, shape, twin, channels_last):
    """Gluon momentum m is torch momentum 1 - m: outputs, gradients and running
    statistics equal torch's over several training steps, then eval outputs too."""
    torch.manual_seed(0)
    bn = BatchNorm(gamma_initializer=init.Normal(1.0), beta_initializer=init.Normal(1.0), **kwargs)
    ref = twin()
    to_twin = (lambda x: x.movedim(-1, 1)) if channels_last else (lambda x: x)
    from_twin = (lambda y: y.movedim(1, -1)) if channels_last else (lambda y: y)
    for step in range(4):
        x = torch.randn(*shape) * 3 + step
        out = bn(x)
        if step == 0:
            _copy_affine(bn, ref)
        want = from_twin(ref(to_twin(x)))
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(bn.running_mean, ref.running_mean)
        torch.testing.assert_close(bn.running_var, ref.running_var)
    (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
    (want * torch.arange(want.numel()).reshape(want.shape)).sum().backward()
    torch.testing.assert_close(bn.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(bn.bias.grad, ref.bias.grad)
    bn.eval()
    ref.eval()
    x = torch.randn(*shape)
    torch.testing.assert_close(bn(x), from_twin(ref(to_twin(x))))


def test_batchnorm_momentum_is_gluon_convention():
    """running = momentum * running + (1 - momentum) * batch (unbiased variance)."""
    torch.manual_seed(0)
    bn = BatchNorm(momentum=0.9)
    x = torch.randn(16, 4) * 2 + 1
    bn(x)
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(0))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var(0, unbiased=True))


def test_batchnorm_use_global_stats_in_training():
    torch.manual_seed(0)
    bn = BatchNorm(
        use_global_stats=True,
        running_mean_initializer=init.Constant(0.5),
        running_variance_initializer=init.Constant(4.0),
    )
    assert bn.training
    x = torch.randn(8, 3, 4, 4)
    out = bn(x)
    torch.testing.assert_close(out, (x - 0.5) / torch.sqrt(torch.tensor(4.0 + 1e-5)))
    assert torch.equal(bn.running_mean, torch.full((3,), 0.5))
    assert torch.equal(bn.running_var, torch.full((3,), 4.0))
    assert "use_global_stats=True" in repr(bn)


def test_batchnorm_running_stats_are_deferred_buffers():
    bn = BatchNorm()
    assert lateinit.is_deferred(bn.running_mean) and lateinit.is_deferred(bn.running_var)
    assert tuple(bn.running_mean.shape) == (-1,)
    assert [n for n, _ in bn.named_buffers()] == [
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    with pytest.raises(lateinit.DeferredInitializationError, match="running_mean"):
        bn.running_mean + 1
    bn(torch.randn(4, 3, 2, 2))
    for name in ("running_mean", "running_var"):
        buf = getattr(bn, name)
        assert type(buf) is torch.Tensor and not buf.requires_grad
        assert not lateinit.is_deferred(buf)
        assert tuple(buf.shape) == (3,)
    state = bn.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert all(type(t) is torch.Tensor for t in state.values())
    assert torch.equal(state["running_mean"], bn.running_mean)
    # The running statistics are not parameters: an optimizer never sees them.
    assert sum(p.numel() for p in bn.parameters()) == 6


def test_batchnorm_eager_creates_buffers_at_initialize():
    bn = BatchNorm(in_channels=5).initialize()
    assert type(bn.running_var) is torch.Tensor
    assert torch.equal(bn.running_var, torch.ones(5))
    assert repr(bn) == "BatchNorm(5, axis=1, eps=1e-05, momentum=0.9)"


def test_batchnorm_float64_before_inference():
    bn = BatchNorm()
    bn.to(torch.float64)
    assert lateinit.is_deferred(bn.running_mean)
    bn(torch.randn(4, 3, dtype=torch.float64))
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        assert t.dtype == torch.float64
    bn2 = BatchNorm(axis=-1).initialize(dtype=torch.float64)
    bn2(torch.randn(2, 5, 3, dtype=torch.float64))
    assert bn2.running_var.dtype == torch.float64


def test_deepcopy_of_deferred_batchnorm():
    """torch.nn.LazyBatchNorm2d cannot be deep-copied before its first batch; ours can,
    and the copy is independent."""
    torch.manual_seed(0)
    bn = BatchNorm()
    clone = copy.deepcopy(bn)
    x = torch.randn(4, 3, 5, 5)
    y_clone = clone(x)
    assert type(clone.running_mean) is torch.Tensor
    assert lateinit.is_deferred(bn.running_mean) and lateinit.is_deferred(bn.weight)
    y = bn(x)
    assert torch.equal(y, y_clone)
    assert torch.equal(bn.running_mean, clone.running_mean)
    assert bn.running_mean is not clone.running_mean
    clone(x + 1)
    assert not torch.equal(bn.running_mean, clone.running_mean)


def test_norm_parameters_keep_their_own_initializers():
    """As in Gluon, initialize(init) does not override weight=ones / bias=zeros (Gluon's
    gamma and beta: the aliases are the same tensors)."""
    bn = BatchNorm(in_channels=4).initialize(init.Uniform(5.0))
    assert torch.equal(bn.weight, torch.ones(4)) and torch.equal(bn.bias, torch.zeros(4))
    assert bn.gamma is bn.weight and bn.beta is bn.bias


def test_batchnorm_mismatch_names_the_layer_and_axis():
    net = Sequential(Dense(8), BatchNorm(in_channels=6))
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net(torch.randn(2, 5))
    message = str(info.value)
    assert "'1'" in message and "BatchNorm" in message and "in_channels=6" in message
    assert lateinit.is_deferred(net[0].weight)  # the failed first pass was rolled back
    bn = BatchNorm(axis=-1)
    bn(torch.randn(2, 4, 4, 3))
    with pytest.raises(lateinit.ShapeMismatchError, match="channels on the last axis"):
        bn(torch.randn(2, 4, 4, 5))
    with pytest.raises(lateinit.ShapeMismatchError, match="at least 2 dims"):
        BatchNorm()(torch.randn(5))


def test_groupnorm_channels_not_divisible():
    gn = GroupNorm(num_groups=4)
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        gn(torch.randn(2, 6, 3, 3))
    message = str(info.value)
    assert "GroupNorm" in message and "divisible" in message and "Fix" in message
    assert lateinit.is_deferred(gn.weight)  # unchanged, still usable
    assert gn(torch.randn(2, 8, 3, 3)).shape == (2, 8, 3, 3)
    with pytest.raises(ValueError, match="not divisible"):
        GroupNorm(num_groups=4, in_channels=6)
    # Without parameters nothing is inferred; the kernel's error is still explained.
    bare = GroupNorm(num_groups=2, center=False, scale=False)
    with pytest.raises(lateinit.ShapeMismatchError, match=r"GroupNorm.*divisible"):
        bare(torch.randn(2, 5, 3))


def test_layernorm_and_rmsnorm_only_last_axis():
    with pytest.raises(ValueError, match="last axis only"):
        LayerNorm(axis=1)
    with pytest.raises(ValueError, match="last axis only"):
        RMSNorm(axis=0)


def test_layernorm_without_parameters_has_no_channels():
    ln = LayerNorm(center=False, scale=False)
    assert repr(ln) == "LayerNorm(eps=1e-05, center=False, scale=False)"
    x = torch.randn(3, 7)
    torch.testing.assert_close(ln(x), torch.nn.functional.layer_norm(x, (7,)))


def test_rmsnorm_epsilon_defaults():
    assert "eps=1e-06" in repr(RMSNorm())
    torch.manual_seed(0)
    x = torch.randn(4, 8) * 1e-3
    ours = RMSNorm(epsilon=None, in_channels=8).initialize()
    torch.testing.assert_close(ours(x), torch.nn.RMSNorm(8)(x))


def test_instancenorm_channels_last_and_errors():
    torch.manual_seed(0)
    norm = InstanceNorm(axis=-1, gamma_initializer=init.Normal(1.0))
    x = torch.randn(2, 6, 6, 3)
    out = norm(x)
    twin = torch.nn.InstanceNorm2d(3, affine=True)
    with torch.no_grad():
        twin.weight.copy_(norm.weight)
    torch.testing.assert_close(out, twin(x.movedim(-1, 1)).movedim(1, -1))
    assert repr(norm) == "InstanceNorm(3, axis=last, eps=1e-05)"
    with pytest.raises(lateinit.ShapeMismatchError, match="at least 3 dims"):
        InstanceNorm()(torch.randn(4, 3))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match="in_channels"):
        BatchNorm(in_channels=-3)
    with pytest.raises(ValueError, match="num_groups"):
        GroupNorm(num_groups=0)
    with pytest.raises(ValueError, match="epsilon"):
        LayerNorm(epsilon=-1.0)


def test_too_few_values_per_channel_names_the_layer():
    net = Sequential(Dense(4), BatchNorm())
    with pytest.raises(ValueError, match=r"layer '1' \(BatchNorm\).*Fix"):
        net(torch.randn(1, 3))
    assert lateinit.is_deferred(net[0].weight)
    net.eval()
    assert net(torch.randn(1, 3)).shape == (1, 4)
    with pytest.raises(ValueError, match=r"InstanceNorm.*spatial"):
        InstanceNorm()(torch.randn(2, 3, 1))
