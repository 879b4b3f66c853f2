"""The leaf of the package: input specs, the two lateinit errors, and message formatting.

:class:`Spec` describes an input without data (``None`` marks a dim of any size, such as
the batch). :class:`ShapeMismatchError` is what a layer raises when an input disagrees
with a size it already knows; the block that raised it adds its path and type.
:class:`DeferredInitializationError` is what using a parameter too early raises.

This module imports nothing of lateinit (only torch): every other module may use it.
See ``docs/design.md`` ("Layers of the package").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "UNKNOWN",
    "NONE_SIZES",
    "Spec",
    "ShapeMismatchError",
    "DeferredInitializationError",
    "fmt_list",
    "fmt_shape",
    "shown_shape",
    "iter_tensors",
    "not_ready_fixes",
    "in_size",
]

#: A dim whose size is not known yet, in a parameter's shape.
UNKNOWN = -1

#: Sizes standing in for ``None`` dims during data-free inference (meta tensors cost
#: nothing, whatever the size); dims that differ between the two runs become ``None``.
#: Unusual primes, so that messages can show them as ``None`` (:func:`shown_shape`).
NONE_SIZES = (1031, 1033)


def fmt_shape(shape: Sequence[Any]) -> str:
    """``(2, 30)`` for a shape, ``(5,)`` for one dim, ``None`` shown as ``None``."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def fmt_list(parts: Iterable[str], limit: int = 8) -> str:
    """``'a', 'b', 'c'`` joined for a message: at most ``limit`` parts, then
    `` and N more``."""
    shown = list(parts)
    head = ", ".join(shown[:limit])
    return head + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def shown_shape(t: torch.Tensor) -> tuple[int | None, ...]:
    """An input's shape for a message: on the meta device (data-free inference) the sizes
    standing in for ``None`` dims (:data:`NONE_SIZES`) are shown as ``None``."""
    if t.device.type != "meta":
        return tuple(t.shape)
    return tuple(None if d in NONE_SIZES else d for d in t.shape)


def iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``obj`` (a tensor, or nested lists/tuples/mappings), in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from iter_tensors(item)
    elif isinstance(obj, Mapping):
        for item in obj.values():
            yield from iter_tensors(item)


def not_ready_fixes(hint: str = "in_units / in_channels") -> str:
    """The three ways to make deferred parameters READY, as a message's fix.

    ``hint`` names the constructor argument that gives the input size.
    """
    return (
        "pass one batch through the network first (net(x)), or call net.infer_shape(...) "
        "with the input shape and then net.initialize(), or give the input size when "
        f"building the layer ({hint}=...)"
    )


def in_size(value: Any, arg: str, owner: str) -> int:
    """Validate a constructor's input-size argument (``in_units``, ``in_channels``...).

    ``None`` means unknown (inferred from the first batch); ``0`` is accepted as Gluon's
    spelling of the same. Returns the size, or :data:`UNKNOWN`.

    Example:
        >>> [in_size(v, "in_units", "Dense") for v in (None, 0, 3)]
        [-1, -1, 3]
    """
    if value is None or (value == 0 and isinstance(value, int) and not isinstance(value, bool)):
        return UNKNOWN
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"{owner}: {arg} must be a positive int, or None (0 in Gluon) to infer it from "
            f"the first batch, got {value!r}"
        )
    return value


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


class DeferredInitializationError(RuntimeError):
    """A parameter was used before it was READY (its initialization is deferred)."""
