"""Layer cases of the conv family (rows of the table in cases.py).

Convolutions are checked against ``torch.nn.Conv*d``/``ConvTranspose*d`` on copied
weights; channels-last rows move the channel axis for the twin. Pools have no
parameters: their bad input has the wrong number of dims.
"""

from __future__ import annotations

from typing import Any

import torch

from lateinit.nn import conv, pool
from lateinit.testing import LayerCase, rand

T = torch.nn


def copy_conv(ours: Any, twin: torch.nn.Module) -> None:
    """Copy our weight and bias into the first torch conv inside ``twin``."""
    target = next(m for m in twin.modules() if isinstance(m, T.modules.conv._ConvNd))
    with torch.no_grad():
        target.weight.copy_(ours.weight)
        if ours.bias is not None:
            target.bias.copy_(ours.bias)


def to_channels_first(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (inputs[0].movedim(-1, 1),)


def to_channels_last(out: torch.Tensor) -> torch.Tensor:
    return out.movedim(1, -1)


CHANNELS_LAST: dict[str, Any] = {
    "twin_inputs": to_channels_first,
    "twin_output": to_channels_last,
}

CONV: list[LayerCase] = [
    LayerCase(
        "conv1d",
        conv.Conv1D,
        {"channels": 8, "kernel_size": 3},
        {"in_channels": 4},
        rand(2, 4, 16),
        (2, 8, 14),
        8 * 4 * 3 + 8,
        bad_inputs=rand(2, 5, 16),
        twin=lambda: T.Conv1d(4, 8, 3),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv1d_unbatched",
        conv.Conv1D,
        {"channels": 3, "kernel_size": 3, "use_bias": False},
        {"in_channels": 2},
        rand(2, 8),
        (3, 6),
        3 * 2 * 3,
        bad_inputs=rand(4, 8),
        twin=lambda: T.Conv1d(2, 3, 3, bias=False),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv1d_nwc_strided",
        conv.Conv1D,
        {"channels": 6, "kernel_size": 5, "strides": 2, "padding": 2, "layout": "NWC"},
        {"in_channels": 3},
        rand(2, 20, 3),
        (2, 10, 6),
        6 * 3 * 5 + 6,
        bad_inputs=rand(2, 20, 4),
        twin=lambda: T.Conv1d(3, 6, 5, stride=2, padding=2),
        copy_to_twin=copy_conv,
        **CHANNELS_LAST,
    ),
    LayerCase(
        "conv2d",
        conv.Conv2D,
        {"channels": 16, "kernel_size": 3},
        {"in_channels": 3},
        rand(2, 3, 10, 10),
        (2, 16, 8, 8),
        16 * 3 * 3 * 3 + 16,
        bad_inputs=rand(2, 4, 10, 10),
        twin=lambda: T.Conv2d(3, 16, 3),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv2d_groups",
        conv.Conv2D,
        {"channels": 8, "kernel_size": 3, "padding": 1, "groups": 4},
        {"in_channels": 8},
        rand(2, 8, 6, 6),
        (2, 8, 6, 6),
        8 * 2 * 3 * 3 + 8,
        bad_inputs=rand(2, 12, 6, 6),  # divisible by groups, but 3 per group, not 2
        twin=lambda: T.Conv2d(8, 8, 3, padding=1, groups=4),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv2d_depthwise_nobias",
        conv.Conv2D,
        {"channels": 6, "kernel_size": 3, "groups": 6, "use_bias": False},
        {"in_channels": 6},
        rand(2, 6, 5, 5),
        (2, 6, 3, 3),
        6 * 1 * 3 * 3,
        bad_inputs=rand(2, 7, 5, 5),  # not divisible by groups
        twin=lambda: T.Conv2d(6, 6, 3, groups=6, bias=False),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv2d_stride_pad_dilation",
        conv.Conv2D,
        {
            "channels": 5,
            "kernel_size": (3, 2),
            "strides": (2, 1),
            "padding": (1, 2),
            "dilation": (2, 1),
        },
        {"in_channels": 3},
        rand(2, 3, 11, 9),
        (2, 5, 5, 12),
        5 * 3 * 3 * 2 + 5,
        bad_inputs=rand(2, 2, 11, 9),
        twin=lambda: T.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv2d_same",
        conv.Conv2D,
        {"channels": 4, "kernel_size": 5, "padding": "same"},
        {"in_channels": 2},
        rand(1, 2, 7, 7),
        (1, 4, 7, 7),
        4 * 2 * 5 * 5 + 4,
        bad_inputs=rand(1, 3, 7, 7),
        twin=lambda: T.Conv2d(2, 4, 5, padding="same"),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv2d_nhwc_relu",
        conv.Conv2D,
        {"channels": 7, "kernel_size": 3, "padding": 1, "layout": "NHWC", "activation": "relu"},
        {"in_channels": 4},
        rand(2, 9, 9, 4),
        (2, 9, 9, 7),
        7 * 4 * 3 * 3 + 7,
        bad_inputs=rand(2, 9, 9, 5),
        twin=lambda: T.Sequential(T.Conv2d(4, 7, 3, padding=1), T.ReLU()),
        copy_to_twin=copy_conv,
        **CHANNELS_LAST,
    ),
    LayerCase(
        "conv3d_tanh",
        conv.Conv3D,
        {"channels": 4, "kernel_size": 3, "strides": 2, "activation": "tanh"},
        {"in_channels": 2},
        rand(1, 2, 7, 7, 7),
        (1, 4, 3, 3, 3),
        4 * 2 * 27 + 4,
        bad_inputs=rand(1, 3, 7, 7, 7),
        twin=lambda: T.Sequential(T.Conv3d(2, 4, 3, stride=2), T.Tanh()),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv3d_ndhwc",
        conv.Conv3D,
        {"channels": 3, "kernel_size": (1, 3, 3), "padding": (0, 1, 1), "layout": "NDHWC"},
        {"in_channels": 2},
        rand(1, 4, 6, 6, 2),
        (1, 4, 6, 6, 3),
        3 * 2 * 9 + 3,
        bad_inputs=rand(1, 4, 6, 6, 3),
        twin=lambda: T.Conv3d(2, 3, (1, 3, 3), padding=(0, 1, 1)),
        copy_to_twin=copy_conv,
        **CHANNELS_LAST,
    ),
    LayerCase(
        "conv1d_transpose",
        conv.Conv1DTranspose,
        {"channels": 4, "kernel_size": 3, "strides": 2, "output_padding": 1},
        {"in_channels": 6},
        rand(2, 6, 10),
        (2, 4, 22),
        6 * 4 * 3 + 4,
        bad_inputs=rand(2, 5, 10),
        twin=lambda: T.ConvTranspose1d(6, 4, 3, stride=2, output_padding=1),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv2d_transpose_groups",
        conv.Conv2DTranspose,
        {
            "channels": 8,
            "kernel_size": 4,
            "strides": 2,
            "padding": 1,
            "output_padding": 1,
            "groups": 2,
        },
        {"in_channels": 6},
        rand(2, 6, 5, 5),
        (2, 8, 11, 11),
        6 * 4 * 4 * 4 + 8,
        bad_inputs=rand(2, 4, 5, 5),
        twin=lambda: T.ConvTranspose2d(6, 8, 4, stride=2, padding=1, output_padding=1, groups=2),
        copy_to_twin=copy_conv,
    ),
    LayerCase(
        "conv2d_transpose_nhwc_dilation",
        conv.Conv2DTranspose,
        {
            "channels": 3,
            "kernel_size": 3,
            "strides": (2, 1),
            "dilation": 2,
            "output_padding": 1,
            "layout": "NHWC",
            "activation": "sigmoid",
        },
        {"in_channels": 4},
        rand(2, 5, 6, 4),
        (2, 14, 11, 3),
        4 * 3 * 3 * 3 + 3,
        bad_inputs=rand(2, 5, 6, 2),
        twin=lambda: T.Sequential(
            T.ConvTranspose2d(4, 3, 3, stride=(2, 1), dilation=2, output_padding=1), T.Sigmoid()
        ),
        copy_to_twin=copy_conv,
        **CHANNELS_LAST,
    ),
    LayerCase(
        "conv3d_transpose",
        conv.Conv3DTranspose,
        {"channels": 2, "kernel_size": 3, "strides": 2, "output_padding": 1},
        {"in_channels": 4},
        rand(1, 4, 3, 3, 3),
        (1, 2, 8, 8, 8),
        4 * 2 * 27 + 2,
        bad_inputs=rand(1, 3, 3, 3, 3),
        twin=lambda: T.ConvTranspose3d(4, 2, 3, stride=2, output_padding=1),
        copy_to_twin=copy_conv,
    ),
]

POOL: list[LayerCase] = [
    LayerCase(
        "maxpool1d",
        pool.MaxPool1D,
        {},
        {},
        rand(2, 3, 9),
        (2, 3, 4),
        0,
        bad_inputs=rand(2, 3, 9, 9),
        twin=lambda: T.MaxPool1d(2),
    ),
    LayerCase(
        "maxpool2d_overlapping",
        pool.MaxPool2D,
        {"pool_size": 3, "strides": 2, "padding": 1},
        {},
        rand(2, 4, 9, 9),
        (2, 4, 5, 5),
        0,
        bad_inputs=rand(9, 9),
        twin=lambda: T.MaxPool2d(3, stride=2, padding=1),
    ),
    LayerCase(
        "maxpool2d_ceil_nhwc",
        pool.MaxPool2D,
        {"pool_size": 2, "ceil_mode": True, "layout": "NHWC"},
        {},
        rand(2, 7, 7, 3),
        (2, 4, 4, 3),
        0,
        bad_inputs=rand(2, 1, 7, 7, 3),
        twin=lambda: T.MaxPool2d(2, ceil_mode=True),
        **CHANNELS_LAST,
    ),
    LayerCase(
        "maxpool3d",
        pool.MaxPool3D,
        {"pool_size": (1, 2, 2)},
        {},
        rand(1, 2, 4, 6, 6),
        (1, 2, 4, 3, 3),
        0,
        bad_inputs=rand(2, 4, 6),
        twin=lambda: T.MaxPool3d((1, 2, 2)),
    ),
    LayerCase(
        "avgpool1d_no_pad_count",
        pool.AvgPool1D,
        {"pool_size": 3, "strides": 1, "padding": 1, "count_include_pad": False},
        {},
        rand(2, 3, 8),
        (2, 3, 8),
        0,
        bad_inputs=rand(8),
        twin=lambda: T.AvgPool1d(3, stride=1, padding=1, count_include_pad=False),
    ),
    LayerCase(
        "avgpool2d",
        pool.AvgPool2D,
        {},
        {},
        rand(2, 3, 8, 8),
        (2, 3, 4, 4),
        0,
        bad_inputs=rand(2, 3, 8, 8, 8),
        twin=lambda: T.AvgPool2d(2),
    ),
    LayerCase(
        "avgpool2d_pad_ceil",
        pool.AvgPool2D,
        {"pool_size": 3, "strides": 2, "padding": 1, "ceil_mode": True},
        {},
        rand(2, 3, 8, 8),
        (2, 3, 5, 5),
        0,
        bad_inputs=rand(3, 8),
        twin=lambda: T.AvgPool2d(3, stride=2, padding=1, ceil_mode=True),
    ),
    LayerCase(
        "avgpool3d_ndhwc",
        pool.AvgPool3D,
        {"layout": "NDHWC"},
        {},
        rand(1, 4, 4, 4, 2),
        (1, 2, 2, 2, 2),
        0,
        bad_inputs=rand(4, 4, 2),
        twin=lambda: T.AvgPool3d(2),
        **CHANNELS_LAST,
    ),
    LayerCase(
        "global_maxpool1d",
        pool.GlobalMaxPool1D,
        {},
        {},
        rand(2, 5, 7),
        (2, 5, 1),
        0,
        bad_inputs=rand(7),
        twin=lambda: T.AdaptiveMaxPool1d(1),
    ),
    LayerCase(
        "global_maxpool2d",
        pool.GlobalMaxPool2D,
        {},
        {},
        rand(2, 5, 6, 7),
        (2, 5, 1, 1),
        0,
        bad_inputs=rand(2, 5),
        twin=lambda: T.AdaptiveMaxPool2d(1),
    ),
    LayerCase(
        "global_maxpool3d",
        pool.GlobalMaxPool3D,
        {},
        {},
        rand(2, 3, 4, 5, 6),
        (2, 3, 1, 1, 1),
        0,
        bad_inputs=rand(2, 3, 4),
        twin=lambda: T.AdaptiveMaxPool3d(1),
    ),
    LayerCase(
        "global_avgpool1d_nwc",
        pool.GlobalAvgPool1D,
        {"layout": "NWC"},
        {},
        rand(2, 7, 5),
        (2, 1, 5),
        0,
        bad_inputs=rand(2, 7, 5, 1),
        twin=lambda: T.AdaptiveAvgPool1d(1),
        **CHANNELS_LAST,
    ),
    LayerCase(
        "global_avgpool2d",
        pool.GlobalAvgPool2D,
        {},
        {},
        rand(2, 5, 6, 7),
        (2, 5, 1, 1),
        0,
        bad_inputs=rand(2, 5, 6, 7, 8),
        twin=lambda: T.AdaptiveAvgPool2d(1),
    ),
    LayerCase(
        "global_avgpool3d",
        pool.GlobalAvgPool3D,
        {},
        {},
        rand(2, 3, 4, 5, 6),
        (2, 3, 1, 1, 1),
        0,
        bad_inputs=rand(3, 4),
        twin=lambda: T.AdaptiveAvgPool3d(1),
    ),
]

CASES: list[LayerCase] = CONV + POOL
