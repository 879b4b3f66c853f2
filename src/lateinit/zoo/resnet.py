"""ResNet-18/50 (torchvision's architecture) written without input sizes.

Parameter counts at 1000 classes equal torchvision's: ResNet-18 11,689,512 and ResNet-50
25,557,032. The global average pool makes them work at any resolution (224, 96, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import nn

__all__ = ["resnet18", "resnet50", "ResidualUnit"]


def _conv_bn(channels: int, kernel_size: int, strides: int = 1) -> list[nn.Block]:
    return [
        nn.Conv2D(channels, kernel_size, strides=strides, padding=kernel_size // 2, use_bias=False),
        nn.BatchNorm(),
    ]


class ResidualUnit(nn.Block):
    """``relu(body(x) + shortcut(x))``; the shortcut is a strided 1x1 conv + BN when the
    unit changes the resolution or the channel count (the architecture says which)."""

    def __init__(self, body: nn.Sequential, channels: int, strides: int, project: bool) -> None:
        super().__init__()
        self.body = body
        self.shortcut = nn.Sequential(*_conv_bn(channels, 1, strides)) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.body(x) + identity)


def _basic(channels: int, strides: int, project: bool) -> ResidualUnit:
    body = nn.Sequential(
        *_conv_bn(channels, 3, strides), nn.Activation("relu"), *_conv_bn(channels, 3)
    )
    return ResidualUnit(body, channels, strides, project)


def _bottleneck(channels: int, strides: int, project: bool) -> ResidualUnit:
    body = nn.Sequential(
        *_conv_bn(channels, 1),
        nn.Activation("relu"),
        *_conv_bn(channels, 3, strides),
        nn.Activation("relu"),
        *_conv_bn(channels * 4, 1),
    )
    return ResidualUnit(body, channels * 4, strides, project)


def _resnet(unit: str, layers: tuple[int, ...], num_classes: int) -> nn.Sequential:
    make, expansion = (_basic, 1) if unit == "basic" else (_bottleneck, 4)
    net = nn.Sequential(
        *_conv_bn(64, 7, 2), nn.Activation("relu"), nn.MaxPool2D(3, strides=2, padding=1)
    )
    channels_in = 64
    for stage, count in enumerate(layers):
        channels = 64 * 2**stage
        for i in range(count):
            strides = 2 if (i == 0 and stage > 0) else 1
            project = i == 0 and (strides != 1 or channels_in != channels * expansion)
            net.add(make(channels, strides, project))
            channels_in = channels * expansion
    net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(num_classes))
    return net


def resnet18(num_classes: int = 1000) -> nn.Sequential:
    """ResNet-18 (11,689,512 parameters at 1000 classes), torchvision's architecture.

    The global average pool makes it work at any resolution (224, 96, ...).

    Args:
        num_classes: the width of the output layer.

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.resnet18()
        >>> net.infer_shape((1, 3, 96, 96))  # meta tensors: nothing is allocated
        Spec(shape=(1, 1000), dtype=torch.float32)
        >>> lateinit.count_params(net)
        11689512
    """
    return _resnet("basic", (2, 2, 2, 2), num_classes)


def resnet50(num_classes: int = 1000) -> nn.Sequential:
    """ResNet-50 (25,557,032 parameters at 1000 classes), torchvision's architecture.

    Bottleneck units (1x1, 3x3, 1x1 convolutions, 4x expansion) in stages of
    (3, 4, 6, 3); the global average pool makes it work at any resolution.

    Args:
        num_classes: the width of the output layer.

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.resnet50()
        >>> net.infer_shape(lateinit.Spec((None, 3, 224, 224)))
        Spec(shape=(None, 1000), dtype=torch.float32)
        >>> lateinit.count_params(net)
        25557032
        >>> net[0].weight.shape  # SHAPED: the first convolution's input channels are 3
        torch.Size([64, 3, 7, 7])
    """
    return _resnet("bottleneck", (3, 4, 6, 3), num_classes)
