"""Shapes: input specs and the shape-mismatch error.

:class:`Spec` describes an input without data (``None`` marks a dim of any size, such as
the batch). :class:`ShapeMismatchError` is what a layer raises when an input disagrees
with a size it already knows; the block that raised it adds its path and type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Spec", "ShapeMismatchError", "fmt_shape"]


def fmt_shape(shape: Sequence[Any]) -> str:
    """``(2, 30)`` for a shape, ``(5,)`` for one dim, ``None`` shown as ``None``."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


@dataclass(frozen=True)
class Spec:
    """The shape and dtype of an input, without data.

    Args:
        shape: the dims; ``None`` means any size (e.g. the batch).
        dtype: the input's dtype (default: torch's default dtype).

    Example:
        >>> import torch
        >>> from lateinit import Spec
        >>> Spec((None, 20))
        Spec(shape=(None, 20), dtype=torch.float32)
    """

    shape: tuple[int | None, ...]
    dtype: torch.dtype = field(default_factory=torch.get_default_dtype)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))


class ShapeMismatchError(ValueError):
    """An input's shape disagrees with a size a layer already knows.

    The message says what happened, what was expected, which layer (its path inside the
    network that was called, and its type) and how to fix it.
    """

    def __init__(
        self,
        detail: str,
        *,
        param: str | None = None,
        expected: Sequence[int] | None = None,
        got: Sequence[int] | None = None,
        dim: int | None = None,
        layer: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.param = param
        self.expected = tuple(expected) if expected is not None else None
        self.got = tuple(got) if got is not None else None
        self.dim = dim
        self.layer = layer

    def with_message(self, message: str, layer: str) -> ShapeMismatchError:
        """A copy of this error carrying a complete message and the layer's path."""
        new = ShapeMismatchError(
            message,
            param=self.param,
            expected=self.expected,
            got=self.got,
            dim=self.dim,
            layer=layer,
        )
        new.detail = self.detail
        return new
