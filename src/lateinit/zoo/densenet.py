"""DenseNet-121 (torchvision's architecture, 7,978,856 parameters at 1000 classes)."""

from __future__ import annotations

from .. import nn

__all__ = ["densenet121"]


def _bn_relu_conv(channels: int, kernel_size: int) -> list[nn.Block]:
    return [
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.Conv2D(channels, kernel_size, padding=kernel_size // 2, use_bias=False),
    ]


def _dense_layer(growth_rate: int, bn_size: int) -> nn.Concatenate:
    """The input, concatenated with ``growth_rate`` new channels computed from it."""
    body = nn.Sequential(*_bn_relu_conv(bn_size * growth_rate, 1), *_bn_relu_conv(growth_rate, 3))
    return nn.Concatenate(nn.Identity(), body, axis=1)


def densenet121(num_classes: int = 1000, growth_rate: int = 32, bn_size: int = 4) -> nn.Sequential:
    """DenseNet-121: dense blocks of (6, 12, 24, 16) layers with halving transitions.

    As torchvision's: 7,978,856 parameters at 1000 classes. The channel counts of the
    transitions come from the architecture's own plan (64 + layers * growth_rate), not
    from any input size.

    Args:
        num_classes: the width of the output layer.
        growth_rate: the channels each dense layer adds.
        bn_size: the bottleneck width of a dense layer, in multiples of `growth_rate`.

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.densenet121()
        >>> net.infer_shape((1, 3, 224, 224))
        Spec(shape=(1, 1000), dtype=torch.float32)
        >>> lateinit.count_params(net)
        7978856
    """
    net = nn.Sequential(
        nn.Conv2D(64, 7, strides=2, padding=3, use_bias=False),
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.MaxPool2D(3, strides=2, padding=1),
    )
    channels = 64
    blocks = (6, 12, 24, 16)
    for i, count in enumerate(blocks):
        net.add(*(_dense_layer(growth_rate, bn_size) for _ in range(count)))
        channels += count * growth_rate
        if i != len(blocks) - 1:
            channels //= 2
            net.add(*_bn_relu_conv(channels, 1), nn.AvgPool2D(2, strides=2))
    net.add(
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.GlobalAvgPool2D(),
        nn.Flatten(),
        nn.Dense(num_classes),
    )
    return net
