"""lateinit: deferred parameter initialization for PyTorch.

Layers are declared without input sizes (``nn.Dense(256)``); an initializer is registered
before any shape is known; shapes are inferred layer by layer from the first batch, and
the parameters are then created on the right device.
"""

from . import init, nn
from .block import Block, ParameterDict
from .io import ParameterFileError
from .parameter import DeferredInitializationError, Parameter, is_deferred
from .shapes import ShapeMismatchError, Spec
from .summary import Summary, count_params, param_bytes
from .trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "init",
    "nn",
    "Block",
    "ParameterDict",
    "Parameter",
    "is_deferred",
    "DeferredInitializationError",
    "ShapeMismatchError",
    "ParameterFileError",
    "Spec",
    "Trainer",
    "Summary",
    "count_params",
    "param_bytes",
    "__version__",
]
