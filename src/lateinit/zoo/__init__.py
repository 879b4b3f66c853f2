"""The model zoo: classic networks written only with deferred layers (no input sizes).

Each is a short function returning a network; parameter counts match the published
reference architectures (torchvision's where it has one).
"""

from .classic import alexnet, lenet, mlp, nin, vgg11
from .densenet import densenet121
from .googlenet import googlenet
from .llama import HF_KEY_MAP, from_hf, llama
from .resnet import resnet18, resnet50

__all__ = [
    "mlp",
    "lenet",
    "alexnet",
    "vgg11",
    "nin",
    "googlenet",
    "resnet18",
    "resnet50",
    "densenet121",
    "llama",
    "from_hf",
    "HF_KEY_MAP",
]
