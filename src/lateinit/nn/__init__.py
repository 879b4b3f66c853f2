"""Layers and containers; every input size is optional and inferred from the data."""

from ..block import Block, ParameterDict
from .basic import Activation, Dense, Dropout, Embedding, Flatten, Identity, Lambda
from .containers import Concatenate, Residual, Sequential

__all__ = [
    "Block",
    "ParameterDict",
    "Dense",
    "Activation",
    "Dropout",
    "Flatten",
    "Lambda",
    "Identity",
    "Embedding",
    "Sequential",
    "Concatenate",
    "Residual",
]
