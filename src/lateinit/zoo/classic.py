"""Classic networks: MLP, LeNet, AlexNet, VGG-11, NiN — written without input sizes."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch.nn.functional as F

from .. import nn

__all__ = ["mlp", "lenet", "alexnet", "vgg11", "nin"]


def _adaptive_avg_pool(size: int) -> nn.Lambda:
    return nn.Lambda(functools.partial(F.adaptive_avg_pool2d, output_size=size))


def mlp(
    hidden: Sequence[int] = (256,),
    num_classes: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """A multilayer perceptron: `Dense(h, activation)` per hidden size, then the output.

    No input size is given: the first `Dense` flattens its input and learns its size
    from the first batch (or [`infer_shape`][lateinit.Block.infer_shape]).

    Args:
        hidden: the width of each hidden layer.
        num_classes: the width of the output layer (no activation).
        activation: the hidden layers' activation (a name such as `"relu"`).
        dropout: a `Dropout` of this rate after each hidden layer (none when 0).

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import torch
        >>> from lateinit import zoo
        >>> zoo.mlp((32, 16), num_classes=3)(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 3])
    """
    net = nn.Sequential()
    for units in hidden:
        net.add(nn.Dense(units, activation=activation))
        if dropout:
            net.add(nn.Dropout(dropout))
    net.add(nn.Dense(num_classes))
    return net


def lenet(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 as in d2l.ai (sigmoid, average pooling); 61,706 parameters on 1x28x28.

    Args:
        num_classes: the width of the output layer.

    Returns:
        An `nn.Sequential`, every parameter deferred: the input channels and the first
        `Dense`'s input size come from the first batch.

    Examples:
        >>> import torch
        >>> from lateinit import zoo
        >>> zoo.lenet()(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    return nn.Sequential(
        nn.Conv2D(6, kernel_size=5, padding=2, activation="sigmoid"),
        nn.AvgPool2D(pool_size=2, strides=2),
        nn.Conv2D(16, kernel_size=5, activation="sigmoid"),
        nn.AvgPool2D(pool_size=2, strides=2),
        nn.Dense(120, activation="sigmoid"),
        nn.Dense(84, activation="sigmoid"),
        nn.Dense(num_classes),
    )


def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> nn.Sequential:
    """AlexNet as in torchvision (61,100,840 parameters at 1000 classes).

    An adaptive average pool to 6x6 before the classifier makes it work at any input
    resolution, as torchvision's does.

    Args:
        num_classes: the width of the output layer.
        dropout: the dropout rate before each of the two hidden `Dense` layers.

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.alexnet()
        >>> net.infer_shape((1, 3, 224, 224))  # meta tensors: nothing is allocated
        Spec(shape=(1, 1000), dtype=torch.float32)
        >>> lateinit.count_params(net)
        61100840
    """
    return nn.Sequential(
        nn.Conv2D(64, kernel_size=11, strides=4, padding=2, activation="relu"),
        nn.MaxPool2D(pool_size=3, strides=2),
        nn.Conv2D(192, kernel_size=5, padding=2, activation="relu"),
        nn.MaxPool2D(pool_size=3, strides=2),
        nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
        nn.Conv2D(256, kernel_size=3, padding=1, activation="relu"),
        nn.Conv2D(256, kernel_size=3, padding=1, activation="relu"),
        nn.MaxPool2D(pool_size=3, strides=2),
        _adaptive_avg_pool(6),
        nn.Dropout(dropout),
        nn.Dense(4096, activation="relu"),
        nn.Dropout(dropout),
        nn.Dense(4096, activation="relu"),
        nn.Dense(num_classes),
    )


def vgg11(num_classes: int = 1000, dropout: float = 0.5) -> nn.Sequential:
    """VGG-11 (configuration A, no batch norm) as in torchvision (132,863,336 parameters).

    Args:
        num_classes: the width of the output layer.
        dropout: the dropout rate after each of the two hidden `Dense` layers.

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.vgg11()
        >>> net.infer_shape(lateinit.Spec((None, 3, 224, 224)))  # any batch size
        Spec(shape=(None, 1000), dtype=torch.float32)
        >>> lateinit.count_params(net), lateinit.param_bytes(net)
        (132863336, {torch.float32: 531453344})
    """
    net = nn.Sequential()
    for stage in ((64,), (128,), (256, 256), (512, 512), (512, 512)):
        for channels in stage:
            net.add(nn.Conv2D(channels, kernel_size=3, padding=1, activation="relu"))
        net.add(nn.MaxPool2D(pool_size=2, strides=2))
    net.add(
        _adaptive_avg_pool(7),
        nn.Dense(4096, activation="relu"),
        nn.Dropout(dropout),
        nn.Dense(4096, activation="relu"),
        nn.Dropout(dropout),
        nn.Dense(num_classes),
    )
    return net


def _nin_block(channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2D(channels, kernel_size, strides=strides, padding=padding, activation="relu"),
        nn.Conv2D(channels, kernel_size=1, activation="relu"),
        nn.Conv2D(channels, kernel_size=1, activation="relu"),
    )


def nin(num_classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """Network in Network as in d2l.ai: no Dense layer, a global average pool at the end.

    Args:
        num_classes: the channels of the last block, one per class.
        dropout: the dropout rate before the last block.

    Returns:
        An `nn.Sequential`, every parameter deferred.

    Examples:
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.nin()
        >>> net.infer_shape((1, 1, 224, 224))  # d2l.ai's Fashion-MNIST, resized
        Spec(shape=(1, 10), dtype=torch.float32)
        >>> lateinit.count_params(net)
        1992166
    """
    return nn.Sequential(
        _nin_block(96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2D(pool_size=3, strides=2),
        _nin_block(256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2D(pool_size=3, strides=2),
        _nin_block(384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2D(pool_size=3, strides=2),
        nn.Dropout(dropout),
        _nin_block(num_classes, kernel_size=3, strides=1, padding=1),
        nn.GlobalAvgPool2D(),
        nn.Flatten(),
    )
