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

    A `Spec` describes what a network would be called with, for
    [`Block.infer_shape`][lateinit.Block.infer_shape] and
    [`Block.summary`][lateinit.Block.summary], which run the forward on `meta` tensors
    and allocate nothing. Wherever a `Spec` is accepted, a tensor (any device, `meta`
    included) or a plain shape tuple such as `(None, 20)` (in torch's default dtype) is
    accepted too, and so are nested tuples, lists and dicts of them (for a forward taking
    several inputs). A `Spec` is needed for another dtype, e.g. `torch.int64` token ids.
    `infer_shape` also returns its outputs as `Spec`s.

    Args:
        shape: the dims, each an `int` or `None`; `None` means any size (e.g. the
            batch): the inference runs at two stand-in sizes, and an output dim that
            depends on it comes back as `None`.
        dtype: the input's dtype (default: torch's default dtype, `torch.float32` unless
            changed).

    Examples:
        >>> import torch
        >>> import lateinit
        >>> from lateinit import nn
        >>> lateinit.Spec((None, 20))
        Spec(shape=(None, 20), dtype=torch.float32)
        >>> net = nn.Sequential(nn.Embedding(100, 16), nn.Dense(4, flatten=False))
        >>> net.infer_shape(lateinit.Spec((None, 7), torch.int64))  # token ids
        Spec(shape=(None, 7, 4), dtype=torch.float32)
        >>> net[1].weight.shape
        torch.Size([4, 16])
    """

    shape: tuple[int | None, ...]
    dtype: torch.dtype = field(default_factory=torch.get_default_dtype)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))


class ShapeMismatchError(ValueError):
    """An input's shape disagrees with a size a layer already knows.

    Raised when a layer whose parameters are SHAPED or READY gets an input of another
    size (a first pass that fixed `in_units=3`, then an input with 5 features), when two
    shared parameters disagree, or when a file's shapes contradict known dims. Nothing
    changes when it is raised. The message says what happened, what was expected, which
    layer (its path inside the network that was called, and its type) and how to fix
    it. A `ValueError`.

    Args:
        detail: the message.
        param: the name of the parameter whose known size disagrees, if any.
        expected: that parameter's shape (`-1` for unknown dims).
        got: the shape the input implies for it.
        dim: the parameter's dim where the two disagree.
        layer: the structural path of the layer (`"0"`, `"body.2"`), set by the block
            that adds it to the message.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(4, in_units=3))
        >>> net(torch.ones(2, 5))
        Traceback (most recent call last):
        ...
        lateinit.shapes.ShapeMismatchError: layer '0' (Dense) got an input of shape (2, 5), ...
        >>> try:
        ...     net(torch.ones(2, 5))
        ... except ValueError as err:  # a ShapeMismatchError is a ValueError
        ...     print(err.layer, err.param, err.expected, err.got)
        0 weight (4, 3) (4, 5)
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
        """A copy of this error carrying a complete message and the layer's path.

        Used by a block to add its path and type to the detail a parameter raised; the
        copy keeps `param`, `expected`, `got`, `dim` and the original `detail`.

        Args:
            message: the complete message of the copy.
            layer: the structural path of the layer that raised it.

        Returns:
            A new `ShapeMismatchError`; this one is unchanged.

        Examples:
            >>> import lateinit
            >>> err = lateinit.ShapeMismatchError("weight: 3 vs 5", param="weight", dim=1)
            >>> named = err.with_message("layer '0' (Dense): weight: 3 vs 5", "0")
            >>> str(named), named.layer, named.param, named.dim, named.detail
            ("layer '0' (Dense): weight: 3 vs 5", '0', 'weight', 1, 'weight: 3 vs 5')
        """
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
    """A parameter was used before it was READY (its initialization is deferred).

    A deferred parameter (DECLARED: some dims unknown, or SHAPED: every dim known but no
    values yet) holds no data, so any computation with it, saving it, converting the
    network, or tracing it raises this error instead of returning garbage. The message
    names the parameter, its layer and shape (`-1` for an unknown dim), and the fixes:
    pass one batch through the network, or call
    [`Block.infer_shape`][lateinit.Block.infer_shape] then
    [`Block.initialize`][lateinit.Block.initialize], or give the input size when
    building the layer (`in_units=`). A `RuntimeError`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(4))
        >>> net[0].weight.shape  # DECLARED: the input size is not known yet
        torch.Size([4, -1])
        >>> net[0].weight + 1
        Traceback (most recent call last):
        ...
        lateinit.shapes.DeferredInitializationError: Parameter '0.weight' of Dense ...
        >>> _ = net(torch.ones(2, 3))  # the first batch creates it
        >>> (net[0].weight + 1).shape
        torch.Size([4, 3])
    """
