"""Shape formulas for common torch functions on meta tensors (data-free inference).

On the meta device torch runs many kernels as their Python reference implementation,
op by op: an elementwise ``mul`` takes ~85 µs, ``arange`` ~120 µs,
``scaled_dot_product_attention`` ~1.2 ms, where the output is a fresh contiguous tensor
whose shape and dtype follow from the inputs' in a few lines. :class:`FastMeta`, a
``TorchFunctionMode`` that ``infer_shape`` enters around its passes, answers the plain
cases of a few such functions from the shapes (:data:`RULES`) and hands every other call
to torch unchanged:

- elementwise binary ops (``add``, ``sub``, ``mul``, ``div``, ``pow``, their reflected
  forms) on meta tensors of one floating dtype with contiguous (row-major) strides and
  Python numbers, one tensor having the broadcast shape;
- elementwise unary ops (``neg``, ``cos``, ``sin``, ``exp``, ``rsqrt``, ``tanh``,
  ``sigmoid``, ``relu``, ``silu``, ``gelu``...) on such a tensor;
- ``arange`` with integer bounds on the meta device, ``outer``, ``stack``, ``cat``, and
  ``scaled_dot_product_attention`` without mask or dropout (equal batch dims).

A rule answers only what torch would compute without error, with the same shape, dtype
and strides (a contiguous tensor: what torch gives for these inputs; ``tests/test_fastmeta.py``
compares every rule with torch on random cases); anything else (another dtype or device,
a non-contiguous or empty tensor, ``out=``, in-place, broadcasting that fails, grad on, a
dispatch mode such as a FLOP counter) goes to torch, which computes it or raises its own
error. This module imports only torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["FastMeta", "RULES", "only_fast_modes"]

_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_META = torch.device("meta")
_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _contiguous(t: Any) -> bool:
    """A plain tensor (or ``torch.nn.Parameter``) on meta, non-empty, whose strides are
    exactly the row-major ones of its shape (what ``torch.empty`` gives)."""
    if type(t) not in _TENSOR_TYPES or not t.is_meta:
        return False
    expected = 1
    shape, stride = t.shape, t.stride()
    for i in range(len(shape) - 1, -1, -1):
        size = shape[i]
        if size == 0 or stride[i] != expected:
            return False
        expected *= size
    return True


def _number(x: Any) -> bool:
    return type(x) is int or type(x) is float


def _empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=_META)


def _broadcast(operands: Sequence[Any], any_layout: bool = True) -> torch.Tensor | Any:
    """The output of an elementwise op on meta tensors of one floating dtype (and Python
    numbers, which do not change it).

    Row-major contiguous operands give a contiguous output. Other layouts (a transposed
    or sliced operand: ``x.transpose(1, 2)[..., ::2] * cos``) are laid out as torch's
    meta kernels do for float32/float64 (:func:`_output_perm`, on the operands as
    broadcast); float16/bfloat16 ones, computed in float32 and converted, go to torch,
    as all of them do without ``any_layout`` (``add``/``sub`` with ``alpha``, which
    scale one operand first).
    """
    dtype = None
    tensors = []
    contiguous = True
    for x in operands:
        if _number(x):
            continue
        if type(x) not in _TENSOR_TYPES or not x.is_meta:
            return NotImplemented
        if dtype is None:
            dtype = x.dtype
        elif x.dtype is not dtype:
            return NotImplemented
        tensors.append(x)
        contiguous = contiguous and _contiguous(x)
    if dtype not in _FLOATS:
        return NotImplemented
    shapes = [tuple(t.shape) for t in tensors]
    out = shapes[0]
    for shape in shapes[1:]:
        if shape == out:
            continue
        if len(shape) > len(out):
            out, shape = shape, out
        lead = len(out) - len(shape)
        merged = list(out)
        for i, size in enumerate(shape):
            have = out[lead + i]
            if size != have:
                if have == 1:
                    merged[lead + i] = size
                elif size != 1:
                    return NotImplemented  # torch raises its broadcasting error
        out = tuple(merged)
    if contiguous and out in shapes:
        return _empty(out, dtype)
    if not any_layout or (dtype is not torch.float32 and dtype is not torch.float64):
        return NotImplemented
    if 0 in out or 1 in out:  # size-1 dims: torch's tie-breaks, not reproduced here
        return NotImplemented
    strides = [
        _broadcast_strides(shape, t.stride(), out) for t, shape in zip(tensors, shapes, strict=True)
    ]
    return torch.empty_permuted(out, _output_perm(out, strides), dtype=dtype, device=_META)


def _broadcast_strides(
    shape: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...]
) -> tuple[int, ...]:
    """An operand's strides as broadcast to ``out`` (``expand``: 0 on new and broadcast
    dims), left as they are when its shape is ``out``."""
    if shape == out:
        return tuple(stride)
    lead = len(out) - len(shape)
    return (0,) * lead + tuple(
        0 if size == 1 and want != 1 else st
        for size, want, st in zip(shape, out[lead:], stride, strict=True)
    )


def _row_major(shape: tuple[int, ...], stride: tuple[int, ...], order: Sequence[int]) -> bool:
    """torch's contiguity test (``is_contiguous``, ``is_channels_last_contiguous``) for
    the dims in ``order``, innermost first; size-1 dims are skipped."""
    expected = 1
    for d in order:
        size = shape[d]
        if size == 1:
            continue
        if stride[d] != expected:
            return False
        expected *= size
    return True


def _output_perm(shape: tuple[int, ...], strides: list[tuple[int, ...]]) -> list[int]:
    """The logical-to-physical permutation of an elementwise op's output: a port, for
    concrete non-empty sizes, of ``torch._prims_common``'s
    ``compute_elementwise_output_logical_to_physical_perm`` (what the meta kernels lay
    their outputs out by): row-major if every operand is contiguous, channels-last if
    every one is that instead, else the dims sorted by the operands' strides."""
    ndim = len(shape)
    if ndim <= 1:
        return list(range(ndim))
    inner = list(reversed(range(ndim)))
    contiguous = all(_row_major(shape, s, inner) for s in strides)
    channels_last = ndim == 4 and all(_row_major(shape, s, (1, 3, 2, 0)) for s in strides)
    if contiguous and not channels_last:
        return list(range(ndim))
    if channels_last and not contiguous:
        return [0, *range(2, ndim), 1]

    def ge(a: int, b: int) -> bool:
        return b == 0 or (a != 0 and (a >= b or a % b == 0))

    def should_swap(a: int, b: int) -> int:
        for s in strides:
            sa, sb = s[a], s[b]
            if sa == 0 or sb == 0:
                continue
            if sa == sb:
                if ge(shape[b], shape[a]):
                    continue
                return 1
            if ge(sb, sa):
                return -1
            if ge(sa, sb):
                return 1
        return 0

    perm = inner
    for i in range(1, ndim):
        dim1 = i
        for dim0 in reversed(range(i)):
            comparison = should_swap(perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    return list(reversed(perm))


def _binary(*args: Any, **kwargs: Any) -> Any:
    if len(args) != 2 or (kwargs and (set(kwargs) != {"alpha"} or not _number(kwargs["alpha"]))):
        return NotImplemented
    return _broadcast(args, any_layout=not kwargs)


def _method(*args: Any, **kwargs: Any) -> Any:
    """A binary Tensor method: ``self`` must be the tensor (``Tensor.__pow__(2, t)``
    is torch's NotImplemented, not a power)."""
    if not args or type(args[0]) not in _TENSOR_TYPES:
        return NotImplemented
    return _binary(*args, **kwargs)


def _reflected(*args: Any, **kwargs: Any) -> Any:
    """``Tensor.__rsub__(a, b)`` and ``__rpow__``: torch computes ``op(b, a)`` (the order
    of the operands picks between equal layouts)."""
    if len(args) != 2 or kwargs:
        return NotImplemented
    return _broadcast(args[::-1])


def _reflected_div(*args: Any, **kwargs: Any) -> Any:
    """``Tensor.__rdiv__(a, b)``: torch computes ``a.reciprocal() * b``."""
    if len(args) != 2 or kwargs:
        return NotImplemented
    inverse = _broadcast(args[:1])
    return NotImplemented if inverse is NotImplemented else _broadcast((inverse, args[1]))


def _unary(*args: Any, **kwargs: Any) -> Any:
    if len(args) != 1 or kwargs:
        return NotImplemented
    return _broadcast(args)


def _activation(*args: Any, inplace: Any = False, **kwargs: Any) -> Any:
    if inplace is not False or kwargs or len(args) != 1:
        return NotImplemented
    return _broadcast(args)


def _gelu(*args: Any, approximate: Any = "none", **kwargs: Any) -> Any:
    if approximate not in ("none", "tanh") or kwargs or len(args) != 1:
        return NotImplemented
    return _broadcast(args)


def _arange(*args: Any, dtype: Any = None, device: Any = None, **kwargs: Any) -> Any:
    """``arange(end)``, ``arange(start, end[, step])`` with int bounds on the meta device."""
    if kwargs or not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
        return NotImplemented
    if device is None or torch.device(device) != _META:
        return NotImplemented
    start, end, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
    if dtype is None:
        dtype = torch.int64
    if dtype not in (torch.float32, torch.float64, torch.int64):
        return NotImplemented
    if step == 0 or (end - start) * step < 0:
        return NotImplemented  # torch's error
    size = -((start - end) // step) if step > 0 else -((end - start) // -step)
    return _empty((size,), dtype) if size > 0 else NotImplemented


def _outer(*args: Any, **kwargs: Any) -> Any:
    if len(args) != 2 or kwargs:
        return NotImplemented
    a, b = args
    if not (_contiguous(a) and _contiguous(b)) or a.dim() != 1 or b.dim() != 1:
        return NotImplemented
    if a.dtype is not b.dtype or a.dtype not in _FLOATS:
        return NotImplemented
    return _empty((a.shape[0], b.shape[0]), a.dtype)


def _joined(tensors: Any, dim: Any, new_dim: bool) -> Any:
    """``stack`` (``new_dim``) or ``cat`` of meta tensors of one floating dtype: torch's
    output is contiguous unless every input is laid out channels-last (then it declines,
    as it does for anything torch would refuse)."""
    if type(dim) is not int or not isinstance(tensors, (list, tuple)) or not tensors:
        return NotImplemented
    first = tensors[0]
    if type(first) not in _TENSOR_TYPES or not first.is_meta or first.dtype not in _FLOATS:
        return NotImplemented
    dtype, shape = first.dtype, tuple(first.shape)
    ndim = len(shape) + (1 if new_dim else 0)
    if not (-ndim <= dim < ndim) or ndim == 0:
        return NotImplemented
    dim %= ndim
    unsqueezed = new_dim and dim == len(shape)  # stack's last dim: a cat of unsqueezed
    total = 0
    channels_last = True
    for t in tensors:
        if type(t) not in _TENSOR_TYPES or not t.is_meta or t.dtype is not dtype:
            return NotImplemented
        other = tuple(t.shape)
        if 0 in other:
            return NotImplemented
        if new_dim:
            if other != shape:
                return NotImplemented
        elif len(other) != len(shape) or any(
            a != b for i, (a, b) in enumerate(zip(other, shape, strict=True)) if i != dim
        ):
            return NotImplemented
        else:
            total += other[dim]
        stride = tuple(t.stride())
        if unsqueezed:
            other, stride = (*other, 1), (*stride, 1)
        channels_last = channels_last and _like_channels_last(other, stride)
    if channels_last:
        return NotImplemented  # torch keeps the channels-last layout
    if new_dim:
        return _empty((*shape[:dim], len(tensors), *shape[dim:]), dtype)
    return _empty((*shape[:dim], total, *shape[dim + 1 :]), dtype)


def _like_channels_last(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """A port of ``torch._prims_common.are_strides_like_channels_last_or_false`` (what
    ``cat`` picks its output's memory format by), for concrete non-empty sizes."""
    if len(shape) == 4:
        order: tuple[int, ...] = (1, 3, 2, 0)
    elif len(shape) == 5:
        order = (1, 4, 3, 2, 0)
    else:
        return False
    if stride[1] == 0:
        return False
    low = 0
    for d in order:
        if stride[d] < low or (d == 0 and low == stride[1]):
            return False
        low = stride[d] * shape[d]
    return True


def _stack(tensors: Any, dim: Any = 0, **kwargs: Any) -> Any:
    return NotImplemented if kwargs else _joined(tensors, dim, True)


def _cat(tensors: Any, dim: Any = 0, **kwargs: Any) -> Any:
    return NotImplemented if kwargs else _joined(tensors, dim, False)


def _sdpa(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: Any = 0.0,
    is_causal: Any = False,
    scale: Any = None,
    enable_gqa: Any = False,
    **kwargs: Any,
) -> Any:
    """Attention without a mask or dropout: ``(*batch, L, E) x (*batch, S, E) x
    (*batch, S, Ev) -> (*batch, L, Ev)``, batch dims equal (no broadcasting, no GQA)."""
    if (
        kwargs
        or attn_mask is not None
        or dropout_p != 0
        or type(is_causal) is not bool
        or enable_gqa is not False
        or not (scale is None or _number(scale))
    ):
        return NotImplemented
    if not (_contiguous_or_view(query) and _contiguous_or_view(key) and _contiguous_or_view(value)):
        return NotImplemented
    dtype = query.dtype
    if dtype not in _FLOATS or key.dtype is not dtype or value.dtype is not dtype:
        return NotImplemented
    q, k, v = query.shape, key.shape, value.shape
    if not (3 <= len(q) == len(k) == len(v)) or q[:-2] != k[:-2] or k[:-1] != v[:-1]:
        return NotImplemented
    if q[-1] != k[-1] or 0 in q or 0 in k or 0 in v:
        return NotImplemented
    return _empty((*q[:-1], v[-1]), dtype)


def _contiguous_or_view(t: Any) -> bool:
    """A plain meta tensor (any strides, non-overlapping views included): attention's
    output on meta is contiguous whatever its inputs' layout."""
    return type(t) in _TENSOR_TYPES and t.is_meta


_T = torch.Tensor
_BINARY: list[Callable[..., Any]] = [
    torch.add,
    torch.sub,
    torch.subtract,
    torch.mul,
    torch.multiply,
    torch.div,
    torch.true_divide,
    torch.pow,
]
_METHODS: list[Callable[..., Any]] = [
    _T.add,
    _T.sub,
    _T.mul,
    _T.div,
    _T.pow,
    _T.__add__,
    _T.__radd__,
    _T.__sub__,
    _T.__mul__,
    _T.__rmul__,
    _T.__truediv__,
    _T.__pow__,
]
_UNARY: list[Callable[..., Any]] = [
    getattr(owner, name)
    for owner in (torch, _T)
    for name in (
        "neg",
        "cos",
        "sin",
        "exp",
        "sqrt",
        "rsqrt",
        "tanh",
        "sigmoid",
        "abs",
        "reciprocal",
        "relu",
    )
] + [_T.__neg__]

#: torch function -> rule: ``rule(*args, **kwargs)`` returns the output, or
#: ``NotImplemented`` to let torch compute it.
RULES: dict[Any, Callable[..., Any]] = {
    **dict.fromkeys(_BINARY, _binary),
    **dict.fromkeys(_METHODS, _method),
    **dict.fromkeys(_UNARY, _unary),
    _T.__rsub__: _reflected,
    _T.__rpow__: _reflected,
    _T.__rdiv__: _reflected_div,
    _T.__rtruediv__: _reflected_div,
    F.relu: _activation,
    F.silu: _activation,
    F.gelu: _gelu,
    torch.arange: _arange,
    torch.outer: _outer,
    _T.outer: _outer,
    torch.stack: _stack,
    torch.cat: _cat,
    torch.concat: _cat,
    F.scaled_dot_product_attention: _sdpa,
}


class FastMeta(TorchFunctionMode):
    """A torch function mode that answers :data:`RULES`' cases from the shapes, with
    grad off and no dispatch mode active, and hands every other call to torch."""

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        rule = RULES.get(func)
        if rule is not None and not torch.is_grad_enabled() and not _dispatch_modes():
            out = rule(*args, **kwargs) if kwargs else rule(*args)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs) if kwargs else func(*args)


_dispatch_modes = torch._C._len_torch_dispatch_stack


def only_fast_modes() -> bool:
    """Whether every torch function mode active is a :class:`FastMeta` (none counts)."""
    return all(
        isinstance(torch._C._get_function_stack_at(i), FastMeta)
        for i in range(torch._C._len_torch_function_stack())
    )
