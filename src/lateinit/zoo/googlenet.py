"""GoogLeNet (Inception v1) as in torchvision (6,624,904 parameters at 1000 classes).

Like torchvision (kept there for compatibility with its pretrained weights), the
"5x5" branch uses a 3x3 convolution, and every convolution is followed by batch norm.
"""

from __future__ import annotations

from .. import nn

__all__ = ["googlenet"]


def _conv(channels: int, kernel_size: int, strides: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2D(channels, kernel_size, strides=strides, padding=kernel_size // 2, use_bias=False),
        nn.BatchNorm(epsilon=1e-3),
        nn.Activation("relu"),
    )


def _inception(c1: int, c3r: int, c3: int, c5r: int, c5: int, pool: int) -> nn.Concatenate:
    return nn.Concatenate(
        _conv(c1, 1),
        nn.Sequential(_conv(c3r, 1), _conv(c3, 3)),
        nn.Sequential(_conv(c5r, 1), _conv(c5, 3)),
        nn.Sequential(nn.MaxPool2D(3, strides=1, padding=1, ceil_mode=True), _conv(pool, 1)),
        axis=1,
    )


def googlenet(num_classes: int = 1000, dropout: float = 0.2) -> nn.Sequential:
    """GoogLeNet (Inception v1) as in torchvision, without the auxiliary classifiers.

    6,624,904 parameters at 1000 classes. As in torchvision, the "5x5" branch of each
    inception block uses a 3x3 convolution and every convolution is followed by batch
    norm.

    Args:
        num_classes: the width of the output layer.
        dropout: the dropout rate before the output layer.

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.googlenet()
        >>> net.infer_shape((1, 3, 224, 224))
        Spec(shape=(1, 1000), dtype=torch.float32)
        >>> lateinit.count_params(net)
        6624904
    """

    def pool(size: int = 3) -> nn.MaxPool2D:
        return nn.MaxPool2D(size, strides=2, ceil_mode=True)

    return nn.Sequential(
        _conv(64, 7, strides=2),
        pool(),
        _conv(64, 1),
        _conv(192, 3),
        pool(),
        _inception(64, 96, 128, 16, 32, 32),
        _inception(128, 128, 192, 32, 96, 64),
        pool(),
        _inception(192, 96, 208, 16, 48, 64),
        _inception(160, 112, 224, 24, 64, 64),
        _inception(128, 128, 256, 24, 64, 64),
        _inception(112, 144, 288, 32, 64, 64),
        _inception(256, 160, 320, 32, 128, 128),
        pool(2),
        _inception(256, 160, 320, 32, 128, 128),
        _inception(384, 192, 384, 48, 128, 128),
        nn.GlobalAvgPool2D(),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Dense(num_classes),
    )
