"""Layers and containers; every input size is optional and inferred from the data."""

from ..block import Block, ParameterDict
from .basic import Activation, Dense, Dropout, Flatten, Identity, Lambda
from .containers import Sequential

__all__ = [
    "Block",
    "ParameterDict",
    "Dense",
    "Activation",
    "Dropout",
    "Flatten",
    "Lambda",
    "Identity",
    "Sequential",
]
