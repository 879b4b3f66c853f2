"""Layers and containers; every input size is optional and inferred from the data."""

from ..block import Block, ParameterDict
from .attention import MultiHeadAttention, TransformerEncoderLayer
from .basic import Activation, Dense, Dropout, Embedding, Flatten, Identity, Lambda
from .cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, SequentialRNNCell
from .containers import Concatenate, Residual, Sequential
from .conv import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose
from .hybrid import F, HybridBlock, HybridSequential
from .norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from .pool import (
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalAvgPool3D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPool3D,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
)
from .rnn import GRU, LSTM, RNN

__all__ = [
    "Block",
    "ParameterDict",
    # basic
    "Dense",
    "Activation",
    "Dropout",
    "Flatten",
    "Lambda",
    "Identity",
    "Embedding",
    # convolution
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    # pooling
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPool3D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
    # normalization
    "BatchNorm",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm",
    "RMSNorm",
    # recurrent
    "RNN",
    "LSTM",
    "GRU",
    # recurrent cells
    "RecurrentCell",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "SequentialRNNCell",
    # attention
    "MultiHeadAttention",
    "TransformerEncoderLayer",
    # containers
    "Sequential",
    "Concatenate",
    "Residual",
    # Gluon's hybrid blocks
    "HybridBlock",
    "HybridSequential",
    "F",
]
