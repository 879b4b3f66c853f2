"""The table of layer cases: one row per layer configuration.

Every generic check of ``lateinit.testing`` (``CHECKS``, run by ``test_layers.py``) runs
over every row. Adding a layer is one file change (the layer) plus rows here (or in the family's
``cases_<family>.py``, gathered below).

A row builds the layer deferred with ``cls(**kwargs)`` and eager (every input size given)
with ``cls(**kwargs, **eager)``; ``inputs()`` makes a valid batch, ``bad_inputs()`` one
with another input size. ``twin()`` builds the ``torch.nn`` twin and ``copy_to_twin``
copies our weights into it so outputs can be compared.
"""

from __future__ import annotations

from typing import Any

import torch

import cases_attention
import cases_conv
import cases_norm
import cases_rnn
from lateinit import nn
from lateinit.testing import LayerCase, rand


def copy_linear(ours: Any, twin: torch.nn.Module) -> None:
    """Copy a Dense into a torch.nn.Linear (possibly inside a Sequential twin)."""
    linear = twin if isinstance(twin, torch.nn.Linear) else twin[0]
    with torch.no_grad():
        linear.weight.copy_(ours.weight)
        if ours.bias is not None:
            linear.bias.copy_(ours.bias)


BASIC: list[LayerCase] = [
    LayerCase(
        "dense",
        nn.Dense,
        {"units": 16},
        {"in_units": 20},
        rand(4, 20),
        (4, 16),
        16 * 20 + 16,
        bad_inputs=rand(4, 30),
        twin=lambda: torch.nn.Linear(20, 16),
        copy_to_twin=copy_linear,
    ),
    LayerCase(
        "dense_relu_nobias",
        nn.Dense,
        {"units": 8, "activation": "relu", "use_bias": False},
        {"in_units": 5},
        rand(3, 5),
        (3, 8),
        40,
        bad_inputs=rand(3, 6),
        twin=lambda: torch.nn.Sequential(torch.nn.Linear(5, 8, bias=False), torch.nn.ReLU()),
        copy_to_twin=copy_linear,
    ),
    LayerCase(
        "dense_flatten",
        nn.Dense,
        {"units": 6, "activation": "tanh"},
        {"in_units": 12},
        rand(2, 3, 4),
        (2, 6),
        6 * 12 + 6,
        bad_inputs=rand(2, 3, 5),
        twin=lambda: torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(12, 6), torch.nn.Tanh()
        ),
        copy_to_twin=lambda ours, twin: copy_linear(ours, twin[1:]),
    ),
    LayerCase(
        "dense_no_flatten",
        nn.Dense,
        {"units": 7, "flatten": False},
        {"in_units": 4},
        rand(2, 3, 4),
        (2, 3, 7),
        7 * 4 + 7,
        bad_inputs=rand(2, 3, 5),
        twin=lambda: torch.nn.Linear(4, 7),
        copy_to_twin=copy_linear,
    ),
    LayerCase(
        "activation_gelu",
        nn.Activation,
        {"activation": "gelu"},
        {},
        rand(2, 5),
        (2, 5),
        0,
        twin=lambda: torch.nn.GELU(),
    ),
    LayerCase("dropout_eval", nn.Dropout, {"rate": 0.5}, {}, rand(2, 5), (2, 5), 0),
    LayerCase(
        "flatten", nn.Flatten, {}, {}, rand(2, 3, 4), (2, 12), 0, twin=lambda: torch.nn.Flatten()
    ),
    LayerCase("identity", nn.Identity, {}, {}, rand(2, 3), (2, 3), 0),
    LayerCase(
        "embedding",
        nn.Embedding,
        {"input_dim": 10, "output_dim": 4},
        {},
        lambda: (torch.randint(0, 10, (2, 5)),),
        (2, 5, 4),
        40,
        twin=lambda: torch.nn.Embedding(10, 4),
        copy_to_twin=lambda ours, twin: twin.weight.data.copy_(ours.weight),
    ),
    LayerCase(
        "concatenate",
        lambda in_units=None: nn.Concatenate(
            nn.Dense(3, in_units=in_units), nn.Dense(5, in_units=in_units), axis=1
        ),
        {},
        {"in_units": 4},
        rand(2, 4),
        (2, 8),
        3 * 4 + 3 + 5 * 4 + 5,
        bad_inputs=rand(2, 6),
        mismatch_layer="'0' (Dense)",
    ),
    LayerCase(
        "residual",
        lambda in_units=None: nn.Residual(nn.Dense(4, flatten=False, in_units=in_units)),
        {},
        {"in_units": 4},
        rand(2, 4),
        (2, 4),
        4 * 4 + 4,
        bad_inputs=rand(2, 6),
        mismatch_layer="'body' (Dense)",
    ),
    LayerCase("lambda_tanh", nn.Lambda, {"function": "tanh"}, {}, rand(2, 3), (2, 3), 0),
]


CASES: list[LayerCase] = (
    BASIC + cases_conv.CASES + cases_norm.CASES + cases_rnn.CASES + cases_attention.CASES
)
