"""The row type of the layer-case table (tests/cases.py) and small helpers for rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class LayerCase:
    id: str
    cls: type
    kwargs: dict[str, Any]
    eager: dict[str, Any]
    inputs: Callable[[], tuple[Any, ...]]
    output_shape: Any  # a shape tuple, or a tuple of shapes for several outputs
    n_params: int
    bad_inputs: Callable[[], tuple[Any, ...]] | None = None
    twin: Callable[[], torch.nn.Module] | None = None
    copy_to_twin: Callable[[Any, torch.nn.Module], None] | None = None
    twin_inputs: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
    output: Callable[[Any], Any] = field(default=lambda out: out)  # picks what to compare
    twin_output: Callable[[Any], Any] = field(default=lambda out: out)
    atol: float = 1e-5
    compile: bool = True
    float64: bool = True  # the layer runs in float64 after .to(torch.float64)
    mismatch_layer: str = ""  # text the mismatch error must contain (default: the type)

    def __str__(self) -> str:
        return self.id

    def build(self, eager: bool = False) -> Any:
        return self.cls(**self.kwargs, **(self.eager if eager else {}))


def rand(*shape: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    return lambda: (torch.randn(*shape),)


def copy_linear(ours: Any, twin: torch.nn.Module) -> None:
    """Copy a Dense into a torch.nn.Linear (possibly inside a Sequential twin)."""
    linear = twin if isinstance(twin, torch.nn.Linear) else twin[0]
    with torch.no_grad():
        linear.weight.copy_(ours.weight)
        if ours.bias is not None:
            linear.bias.copy_(ours.bias)
