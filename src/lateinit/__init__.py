"""lateinit: deferred parameter initialization for PyTorch.

Layers are declared without input sizes (``nn.Dense(256)``); an initializer is registered
before any shape is known; shapes are inferred layer by layer from the first batch, and
the parameters are then created on the right device.
"""

from . import distributed, init, nn
from .block import Block, ParameterDict
from .convert import to_torch
from .io import ParameterFileError
from .parameter import Parameter, State, is_deferred, state
from .shapes import DeferredInitializationError, ShapeMismatchError, Spec
from .summary import Summary, count_params, param_bytes
from .tensorfile import load, save
from .trainer import Trainer
from .version import __version__

__all__ = [
    "distributed",
    "init",
    "nn",
    "Block",
    "ParameterDict",
    "Parameter",
    "is_deferred",
    "state",
    "State",
    "DeferredInitializationError",
    "ShapeMismatchError",
    "ParameterFileError",
    "Spec",
    "Trainer",
    "Summary",
    "count_params",
    "to_torch",
    "param_bytes",
    "save",
    "load",
    "__version__",
]
