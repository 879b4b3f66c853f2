"""Behaviour of the conv and pool layers beyond the generic checks of the case table."""

from __future__ import annotations

import math

import pytest
import torch

import lateinit
from lateinit import ShapeMismatchError
from lateinit.nn import Dense, Sequential
from lateinit.nn.conv import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
)
from lateinit.nn.pool import (
    AvgPool2D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    MaxPool2D,
    MaxPool3D,
)

# -- groups --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Conv2D, Conv2DTranspose])
def test_groups_divisibility_given_is_a_value_error(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: in_channels=6 .*groups=4"):
        cls(8, 3, groups=4, in_channels=6)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: channels=6 .*groups=4"):
        cls(6, 3, groups=4)


@pytest.mark.parametrize("cls", [Conv2D, Conv2DTranspose])
def test_groups_divisibility_inferred_names_the_layer_and_rolls_back(cls, h):
    net = Sequential(cls(8, 3, groups=4))
    before = h.snapshot(net)
    with pytest.raises(ShapeMismatchError) as info:
        net(torch.rand(2, 6, 8, 8))
    message = str(info.value)
    assert f"layer '0' ({cls.__name__})" in message
    assert "6 input channels are not divisible by groups=4" in message
    assert "Fix" in message
    h.assert_same_snapshot(before, h.snapshot(net))
    assert net(torch.rand(2, 8, 8, 8)).shape[:2] == (2, 8)
    assert tuple(net[0].weight.shape) == (8, 2, 3, 3)  # (out, in/g) or (in, out/g)


def test_groups_divisibility_after_inference_says_what_it_expects():
    layer = Conv2DTranspose(8, 3, groups=2)
    layer(torch.rand(1, 4, 5, 5))
    with pytest.raises(ShapeMismatchError, match=r"not divisible by groups=2 .*in_channels=4"):
        layer(torch.rand(1, 5, 5, 5))


# -- layouts -------------------------------------------------------------------------------

LAYOUTS = [
    (Conv1D, {"channels": 4, "kernel_size": 3, "strides": 2}, "NWC", (2, 3, 11)),
    (Conv2D, {"channels": 4, "kernel_size": 3, "padding": 1, "groups": 2}, "NHWC", (2, 6, 7, 5)),
    (Conv3D, {"channels": 4, "kernel_size": 2, "activation": "relu"}, "NDHWC", (1, 3, 4, 5, 6)),
    (Conv1DTranspose, {"channels": 4, "kernel_size": 3, "strides": 2}, "NWC", (2, 3, 6)),
    (Conv2DTranspose, {"channels": 4, "kernel_size": 2, "strides": 2}, "NHWC", (2, 3, 4, 5)),
    (Conv3DTranspose, {"channels": 2, "kernel_size": 3}, "NDHWC", (1, 2, 3, 3, 4)),
    (MaxPool2D, {"pool_size": 3, "strides": 2, "padding": 1}, "NHWC", (2, 3, 9, 8)),
    (MaxPool3D, {}, "NDHWC", (1, 3, 4, 4, 6)),
    (AvgPool2D, {"ceil_mode": True, "count_include_pad": False}, "NHWC", (2, 3, 7, 5)),
    (GlobalAvgPool2D, {}, "NHWC", (2, 3, 7, 5)),
    (GlobalMaxPool1D, {}, "NWC", (2, 3, 7)),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "layout", "shape"), LAYOUTS, ids=[c[0].__name__ for c in LAYOUTS]
)
def test_channels_last_equals_channels_first_on_permuted_input(cls, kwargs, layout, shape):
    x = torch.randn(*shape)
    torch.manual_seed(0)
    first = cls(**kwargs)
    torch.manual_seed(0)
    last = cls(**kwargs, layout=layout)
    want = first(x)
    got = last(x.movedim(1, -1))
    assert got.shape == want.movedim(1, -1).shape
    torch.testing.assert_close(got, want.movedim(1, -1))
    for p, q in zip(first.parameters(), last.parameters(), strict=True):
        assert torch.equal(p, q)


def test_channels_last_mismatch_names_the_channel_axis():
    layer = Conv2D(4, 3, layout="NHWC", in_channels=3)
    layer.initialize()
    with pytest.raises(ShapeMismatchError, match=r"in_channels=3 .*axis 3 of its NHWC input"):
        layer(torch.rand(2, 8, 8, 5))


def test_unknown_layout_is_a_value_error():
    with pytest.raises(ValueError, match=r"Conv2D: layout must be 'NCHW' .* or 'NHWC'"):
        Conv2D(4, 3, layout="NCW")
    with pytest.raises(ValueError, match=r"MaxPool2D: layout"):
        MaxPool2D(layout="NCW")


# -- repr and shapes before inference ------------------------------------------------------


def test_repr_shows_minus_one_before_inference():
    conv = Conv2D(64, 3, strides=2, padding=1, groups=2, use_bias=False)
    assert repr(conv) == (
        "Conv2D(-1 -> 64, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=2, bias=False)"
    )
    assert tuple(conv.weight.shape) == (64, -1, 3, 3)
    conv(torch.rand(1, 6, 9, 9))
    assert repr(conv).startswith("Conv2D(6 -> 64, ")
    assert tuple(conv.weight.shape) == (64, 3, 3, 3)

    up = Conv2DTranspose(16, 4, strides=2, output_padding=1, layout="NHWC", activation="relu")
    assert repr(up) == (
        "Conv2DTranspose(-1 -> 16, kernel_size=(4, 4), stride=(2, 2), output_padding=(1, 1), "
        "layout=NHWC, relu)"
    )
    assert tuple(up.weight.shape) == (-1, 16, 4, 4)
    assert "(-1, 16, 4, 4)" in repr(up.collect_params())
    up(torch.rand(1, 5, 5, 32))
    assert repr(up).startswith("Conv2DTranspose(32 -> 16, ")


def test_given_in_channels_is_shaped_at_construction():
    assert tuple(Conv3D(8, 3, in_channels=4, groups=2).weight.shape) == (8, 2, 3, 3, 3)
    assert tuple(Conv1DTranspose(8, 5, in_channels=4, groups=2).weight.shape) == (4, 4, 5)
    assert tuple(Conv2D(8, 3, in_channels=None).weight.shape) == (8, -1, 3, 3)


# -- a deferred CNN ------------------------------------------------------------------------


def _cnn() -> Sequential:
    return Sequential(
        Conv2D(16, 3, padding=1, activation="relu"),
        MaxPool2D(),
        Conv2D(32, 3, padding=1, activation="relu"),
        GlobalAvgPool2D(),
        Dense(10),
    )


def test_deferred_cnn_infers_everything_and_runs_at_two_resolutions():
    torch.manual_seed(0)
    net = _cnn()
    net.initialize()
    weights = [p for name, p in net.collect_params().items() if name.endswith("weight")]
    assert all(lateinit.is_deferred(w) and -1 in tuple(w.shape) for w in weights)
    out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    shapes = {name: tuple(p.shape) for name, p in net.collect_params().items()}
    assert shapes == {
        "0.weight": (16, 3, 3, 3),
        "0.bias": (16,),
        "2.weight": (32, 16, 3, 3),
        "2.bias": (32,),
        "4.weight": (10, 32),
        "4.bias": (10,),
    }
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    )
    count = sum(p.numel() for p in net.parameters())
    assert count == sum(p.numel() for p in twin.parameters()) == 448 + 4640 + 330
    assert net(torch.rand(4, 3, 64, 64)).shape == (4, 10)
    assert net(torch.rand(1, 3, 17, 23)).shape == (1, 10)
    assert all(type(p) is torch.nn.Parameter for p in net.parameters())
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_deferred_cnn_too_small_input_names_the_layer_and_rolls_back(h):
    net = _cnn()
    before = h.snapshot(net)
    with pytest.raises(ShapeMismatchError) as info:
        net(torch.rand(2, 3, 1, 1))
    message = str(info.value)
    assert "layer '1' (MaxPool2D)" in message and "too small" in message, message
    h.assert_same_snapshot(before, h.snapshot(net))
    assert net(torch.rand(2, 3, 8, 8)).shape == (2, 10)


def test_conv_too_small_after_inference():
    conv = Conv2D(4, 5, dilation=2)
    conv(torch.rand(1, 2, 12, 12))
    with pytest.raises(ShapeMismatchError, match=r"too small for kernel_size \(5, 5\) with dil"):
        conv(torch.rand(1, 2, 8, 12))


def test_wrong_number_of_dims_names_the_layer():
    net = Sequential(Conv2D(4, 3), GlobalAvgPool2D())
    with pytest.raises(ShapeMismatchError, match=r"'0' \(Conv2D\).*expects a 4-D input"):
        net(torch.rand(2, 3, 8, 8, 8))
    net(torch.rand(2, 3, 8, 8))
    with pytest.raises(ShapeMismatchError, match=r"'0' \(GlobalAvgPool2D\).*expects a 4-D"):
        net[1:](torch.rand(2, 4, 2, 6, 6))


def test_unbatched_input_as_torch():
    conv = Conv2D(4, 3)
    assert conv(torch.rand(3, 8, 8)).shape == (4, 6, 6)
    assert conv(torch.rand(2, 3, 8, 8)).shape == (2, 4, 6, 6)
    assert GlobalAvgPool2D()(torch.rand(3, 8, 8)).shape == (3, 1, 1)


# -- construction checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Conv2D(4, 3, output_padding=1), "output_padding applies to transposed"),
        (lambda: Conv2DTranspose(4, 3, strides=2, output_padding=2), "smaller than strides"),
        (lambda: Conv2D(4, 3, strides=2, padding="same"), "'same' needs strides=1"),
        (lambda: Conv2D(4, (3, 3, 3)), "kernel_size must be an int or 2 ints"),
        (lambda: Conv2D(0, 3), "channels must be a positive int"),
        (lambda: Conv1D(4, 3, in_channels=-2), "in_channels must be a positive int"),
        (lambda: MaxPool2D(2, padding=2), "padding must be at most half of pool_size"),
        (lambda: MaxPool2D(0), "pool_size must be >= 1"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_pool_strides_default_to_pool_size():
    assert MaxPool2D(3)._strides == (3, 3)
    assert AvgPool2D((2, 3), strides=1)._strides == (1, 1)


# -- initialization ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "twin"),
    [
        (Conv2D(64, 3, groups=2, in_channels=32), torch.nn.Conv2d(32, 64, 3, groups=2)),
        (
            Conv2DTranspose(32, 3, groups=2, in_channels=64),
            torch.nn.ConvTranspose2d(64, 32, 3, groups=2),
        ),
    ],
)
def test_default_weight_distribution_is_torchs(layer, twin):
    layer.initialize()
    bound = 1 / math.sqrt(twin.weight[0].numel())  # torch: kaiming_uniform(a=sqrt(5))
    for w in (layer.weight, twin.weight):
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.95 * bound
    assert torch.equal(layer.bias, torch.zeros(layer.bias.shape))  # Gluon: zeros
