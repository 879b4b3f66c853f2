"""Layer cases of the norm family (rows of the table in cases.py).

The generic checks run in eval mode, so a BatchNorm row normalizes with its running
statistics; rows with random weight/bias and non-default running statistics keep the twin
comparison meaningful. Training-mode behaviour is tested in test_norm.py.
"""

from __future__ import annotations

from typing import Any

import torch

from lateinit import init
from lateinit.nn.norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from lateinit.testing import LayerCase, rand

# Random affine parameters and statistics, so that comparing with the twin checks them.
RANDOM_AFFINE: dict[str, Any] = {
    "gamma_initializer": init.Normal(1.0),
    "beta_initializer": init.Normal(1.0),
}
RANDOM_STATS: dict[str, Any] = {
    "running_mean_initializer": init.Normal(0.5),
    "running_variance_initializer": init.Constant(2.0),
}


def copy_norm(ours: Any, twin: torch.nn.Module) -> None:
    """Copy weight/bias (and running statistics) into a torch.nn norm layer."""
    with torch.no_grad():
        if getattr(ours, "weight", None) is not None:
            twin.weight.copy_(ours.weight)
        if getattr(ours, "bias", None) is not None:
            twin.bias.copy_(ours.bias)
        if getattr(ours, "running_mean", None) is not None:
            twin.running_mean.copy_(ours.running_mean)
            twin.running_var.copy_(ours.running_var)


def channels_first(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    (x,) = inputs
    return (x.movedim(-1, 1),)


CASES: list[LayerCase] = [
    LayerCase(
        "batchnorm_2d",
        BatchNorm,
        {},
        {"in_channels": 8},
        rand(4, 8),
        (4, 8),
        16,
        bad_inputs=rand(4, 6),
        twin=lambda: torch.nn.BatchNorm1d(8),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "batchnorm_3d_no_affine",
        BatchNorm,
        {"center": False, "scale": False, **RANDOM_STATS},
        {"in_channels": 4},
        rand(2, 4, 7),
        (2, 4, 7),
        0,
        bad_inputs=rand(2, 5, 7),
        twin=lambda: torch.nn.BatchNorm1d(4, affine=False),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "batchnorm_4d",
        BatchNorm,
        {"momentum": 0.8, "epsilon": 1e-3, **RANDOM_AFFINE, **RANDOM_STATS},
        {"in_channels": 3},
        rand(2, 3, 5, 5),
        (2, 3, 5, 5),
        6,
        bad_inputs=rand(2, 4, 5, 5),
        twin=lambda: torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.2),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "batchnorm_5d",
        BatchNorm,
        {**RANDOM_AFFINE, **RANDOM_STATS},
        {"in_channels": 4},
        rand(2, 4, 3, 3, 3),
        (2, 4, 3, 3, 3),
        8,
        bad_inputs=rand(2, 2, 3, 3, 3),
        twin=lambda: torch.nn.BatchNorm3d(4),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "batchnorm_channels_last",
        BatchNorm,
        {"axis": -1, **RANDOM_AFFINE, **RANDOM_STATS},
        {"in_channels": 3},
        rand(2, 5, 5, 3),
        (2, 5, 5, 3),
        6,
        bad_inputs=rand(2, 5, 5, 4),
        twin=lambda: torch.nn.BatchNorm2d(3),
        copy_to_twin=copy_norm,
        twin_inputs=channels_first,
        twin_output=lambda out: out.movedim(1, -1),
    ),
    LayerCase(
        "layernorm_3d",
        LayerNorm,
        dict(RANDOM_AFFINE),
        {"in_channels": 16},
        rand(2, 5, 16),
        (2, 5, 16),
        32,
        bad_inputs=rand(2, 5, 12),
        twin=lambda: torch.nn.LayerNorm(16),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "layernorm_no_center",
        LayerNorm,
        {"center": False, "epsilon": 1e-6, **RANDOM_AFFINE},
        {"in_channels": 6},
        rand(3, 6),
        (3, 6),
        6,
        bad_inputs=rand(3, 7),
        twin=lambda: torch.nn.LayerNorm(6, eps=1e-6, bias=False),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "groupnorm_4d",
        GroupNorm,
        {"num_groups": 4, **RANDOM_AFFINE},
        {"in_channels": 8},
        rand(2, 8, 5, 5),
        (2, 8, 5, 5),
        16,
        bad_inputs=rand(2, 12, 5, 5),
        twin=lambda: torch.nn.GroupNorm(4, 8),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "groupnorm_3d_one_group",
        GroupNorm,
        dict(RANDOM_AFFINE),
        {"in_channels": 6},
        rand(2, 6, 10),
        (2, 6, 10),
        12,
        bad_inputs=rand(2, 5, 10),
        twin=lambda: torch.nn.GroupNorm(1, 6),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "instancenorm_4d",
        InstanceNorm,
        dict(RANDOM_AFFINE),
        {"in_channels": 3},
        rand(2, 3, 6, 6),
        (2, 3, 6, 6),
        6,
        bad_inputs=rand(2, 5, 6, 6),
        twin=lambda: torch.nn.InstanceNorm2d(3, affine=True),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "instancenorm_3d",
        InstanceNorm,
        dict(RANDOM_AFFINE),
        {"in_channels": 4},
        rand(2, 4, 10),
        (2, 4, 10),
        8,
        bad_inputs=rand(2, 3, 10),
        twin=lambda: torch.nn.InstanceNorm1d(4, affine=True),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "rmsnorm",
        RMSNorm,
        {"gamma_initializer": init.Normal(1.0)},
        {"in_channels": 16},
        rand(2, 5, 16),
        (2, 5, 16),
        16,
        bad_inputs=rand(2, 5, 8),
        twin=lambda: torch.nn.RMSNorm(16, eps=1e-6),
        copy_to_twin=copy_norm,
    ),
    LayerCase(
        "rmsnorm_no_scale",
        RMSNorm,
        {"scale": False},
        {"in_channels": 16},
        rand(2, 16),
        (2, 16),
        0,
        twin=lambda: torch.nn.RMSNorm(16, eps=1e-6, elementwise_affine=False),
    ),
]
