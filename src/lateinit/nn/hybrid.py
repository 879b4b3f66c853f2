"""Gluon's HybridBlock, HybridSequential, and ``F``, the operator namespace that Gluon 1.x
``hybrid_forward(self, F, x, *args, **params)`` computes with.

In Gluon, ``F`` was ``mx.nd`` (eager) or ``mx.sym`` (symbolic, after ``hybridize()``).
Here there is one ``F``: ``lateinit.nn.F``, a module of functions spelled as MXNet's ndarray ops
(``F.FullyConnected``, ``F.Activation``, ``F.dot``, ``F.broadcast_add``, ``F.sum``...),
each computed by torch ops; ``hybridize()`` compiles the block with ``torch.compile``
(``Block.hybridize``), which traces these functions like any torch code. ``F.np`` and
``F.npx`` hold the most used functions of MXNet 2's numpy interface. A name ``F`` does not
define falls back to ``torch``'s function of that name (``F.tanh`` is ``torch.tanh``).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Sequence
from typing import Any, overload

import torch
import torch.nn.functional as TF

from ..block import Block
from .basic import get_activation
from .containers import Sequential

__all__ = ["HybridBlock", "HybridSequential", "F"]

_Axis = int | Sequence[int] | None


# -- F: MXNet's ndarray operators, in torch ---------------------------------------------
def _dims(axis: _Axis, ndim: int, exclude: bool = False) -> list[int] | None:
    """MXNet's ``axis`` (an int, a tuple, or ``None`` = all) as a list of dims;
    ``exclude=True`` takes every other axis."""
    if axis is None:
        return None if not exclude else []
    dims = [axis] if isinstance(axis, int) else list(axis)
    dims = [d % ndim for d in dims] if ndim else dims
    if exclude:
        return [d for d in range(ndim) if d not in dims]
    return dims


def _reduce(name: str) -> Callable[..., torch.Tensor]:
    def reduce(
        data: torch.Tensor, axis: _Axis = None, keepdims: bool = False, exclude: bool = False
    ) -> torch.Tensor:
        dims = _dims(axis, data.dim(), exclude)
        if name in ("max", "min"):
            out = data
            for d in sorted(range(data.dim()) if dims is None else dims, reverse=True):
                out = getattr(out, "amax" if name == "max" else "amin")(d, keepdim=keepdims)
            return out
        if name == "prod":
            out = data
            for d in sorted(range(data.dim()) if dims is None else dims, reverse=True):
                out = out.prod(d, keepdim=keepdims)
            return out
        if dims is None:
            dims = list(range(data.dim()))
        return getattr(torch, name)(data, dim=dims, keepdim=keepdims)

    reduce.__name__ = name
    reduce.__doc__ = f"MXNet's ``{name}(data, axis=None, keepdims=False, exclude=False)``."
    return reduce


def FullyConnected(
    data: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    num_hidden: int | None = None,
    no_bias: bool = False,
    flatten: bool = True,
) -> torch.Tensor:
    """``data @ weight.T + bias``; ``flatten`` flattens all axes but the first (MXNet's
    default), else it applies to the last axis."""
    x = data.flatten(1) if flatten and data.dim() > 2 else data
    return TF.linear(x, weight, None if no_bias else bias)


def Activation(data: torch.Tensor, act_type: str) -> torch.Tensor:
    """``act_type``: ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"softrelu"``,
    ``"softsign"`` (and lateinit's other activation names)."""
    return get_activation(act_type, "F.Activation")(data)  # type: ignore[misc]


def LeakyReLU(
    data: torch.Tensor, act_type: str = "leaky", slope: float = 0.25, **_: Any
) -> torch.Tensor:
    """``act_type``: ``"leaky"`` (``slope``), ``"elu"`` (``slope`` is alpha), ``"selu"``,
    ``"gelu"``."""
    if act_type == "leaky":
        return TF.leaky_relu(data, slope)
    if act_type == "elu":
        return TF.elu(data, slope)
    if act_type == "selu":
        return TF.selu(data)
    if act_type == "gelu":
        return TF.gelu(data)
    raise ValueError(f"F.LeakyReLU: act_type must be leaky, elu, selu or gelu, got {act_type!r}")


def Dropout(
    data: torch.Tensor,
    p: float = 0.5,
    mode: str = "training",
    axes: Sequence[int] = (),
    training: bool | None = None,
) -> torch.Tensor:
    """Dropout with rate ``p``. MXNet drops only in training (``autograd.record()``); ``F``
    has no block to ask, so ``training=None`` means "while autograd records"
    (``torch.is_grad_enabled()``); ``mode="always"`` always drops. ``axes``: the axes
    sharing one mask (variational dropout)."""
    on = mode == "always" or (torch.is_grad_enabled() if training is None else training)
    if not on or p == 0:
        return data
    if not axes:
        return TF.dropout(data, p, True)
    shape = [1 if d in {a % data.dim() for a in axes} else s for d, s in enumerate(data.shape)]
    mask = torch.bernoulli(data.new_full(shape, 1 - p)) / (1 - p)
    return data * mask


def Convolution(
    data: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    kernel: Sequence[int] = (),
    stride: Sequence[int] = (),
    dilate: Sequence[int] = (),
    pad: Sequence[int] = (),
    num_filter: int | None = None,
    num_group: int = 1,
    no_bias: bool = False,
    **_: Any,
) -> torch.Tensor:
    """A 1/2/3-d convolution (``NCW``/``NCHW``/``NCDHW``) by torch's ``conv1d/2d/3d``."""
    conv = {3: TF.conv1d, 4: TF.conv2d, 5: TF.conv3d}[data.dim()]
    return conv(
        data,
        weight,
        None if no_bias else bias,
        tuple(stride) or 1,
        tuple(pad) or 0,
        tuple(dilate) or 1,
        num_group,
    )


def Pooling(
    data: torch.Tensor,
    kernel: Sequence[int] = (),
    pool_type: str = "max",
    global_pool: bool = False,
    stride: Sequence[int] = (),
    pad: Sequence[int] = (),
    count_include_pad: bool = True,
    **_: Any,
) -> torch.Tensor:
    """Max or average pooling (``pool_type``), or global pooling (``global_pool``)."""
    n = data.dim() - 2
    if global_pool:
        dims = list(range(2, data.dim()))
        if pool_type == "max":
            return data.amax(dims, keepdim=True)
        return data.mean(dims, keepdim=True)
    stride = tuple(stride) or tuple(kernel)
    padding = tuple(pad) or 0
    if pool_type == "max":
        fn = (TF.max_pool1d, TF.max_pool2d, TF.max_pool3d)[n - 1]
        return fn(data, tuple(kernel), stride, padding)
    if pool_type == "avg":
        fn = (TF.avg_pool1d, TF.avg_pool2d, TF.avg_pool3d)[n - 1]
        return fn(data, tuple(kernel), stride, padding, count_include_pad=count_include_pad)
    raise ValueError(f"F.Pooling: pool_type must be 'max' or 'avg', got {pool_type!r}")


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.permute(*reversed(range(x.dim())))


def dot(
    lhs: torch.Tensor, rhs: torch.Tensor, transpose_a: bool = False, transpose_b: bool = False
) -> torch.Tensor:
    """MXNet's ``dot``: sums over the last axis of ``lhs`` and the first of ``rhs``
    (a matrix product for 2-D inputs); ``transpose_a``/``_b`` reverse the axes first."""
    a = _t(lhs) if transpose_a else lhs
    b = _t(rhs) if transpose_b else rhs
    if a.dim() <= 2 and b.dim() <= 2:
        return a @ b if a.dim() and b.dim() else a * b
    return torch.tensordot(a, b, dims=1)


def batch_dot(
    lhs: torch.Tensor, rhs: torch.Tensor, transpose_a: bool = False, transpose_b: bool = False
) -> torch.Tensor:
    """Batched matrix product over the last two axes."""
    a = lhs.transpose(-1, -2) if transpose_a else lhs
    b = rhs.transpose(-1, -2) if transpose_b else rhs
    return torch.matmul(a, b)


def reshape(data: torch.Tensor, shape: Sequence[int], reverse: bool = False) -> torch.Tensor:
    """MXNet's ``reshape`` with its special values: ``0`` copies the input's dim, ``-1``
    is inferred, ``-2`` copies all remaining dims, ``-3`` merges two dims, ``-4`` splits
    one into the next two values (one may be -1). ``reverse`` reads both from the right."""
    src = list(data.shape)
    spec = list(shape)
    if reverse:
        src, spec = src[::-1], spec[::-1]
    out: list[int] = []
    i = j = 0
    while j < len(spec):
        s = spec[j]
        if s == 0:
            out.append(src[i])
            i += 1
        elif s == -1:
            out.append(-1)
            i += 1
        elif s == -2:
            out.extend(src[i:])
            i = len(src)
        elif s == -3:
            out.append(src[i] * src[i + 1])
            i += 2
        elif s == -4:
            a, b = spec[j + 1], spec[j + 2]
            if a == -1:
                a = src[i] // b
            if b == -1:
                b = src[i] // a
            out += [a, b]
            i += 1
            j += 2
        else:
            out.append(s)
            i += 1
        j += 1
    if reverse:
        out = out[::-1]
    return data.reshape(out)


def transpose(data: torch.Tensor, axes: Sequence[int] | None = None) -> torch.Tensor:
    """Permute the axes (reverse them when ``axes`` is ``None`` or empty)."""
    return _t(data) if not axes else data.permute(*axes)


def concat(*data: torch.Tensor, dim: int = 1, num_args: int | None = None) -> torch.Tensor:
    """Concatenate along ``dim`` (MXNet's default: 1)."""
    return torch.cat(data, dim)


def stack(*data: torch.Tensor, axis: int = 0, num_args: int | None = None) -> torch.Tensor:
    """Stack along a new ``axis``."""
    return torch.stack(data, axis)


def split(
    data: torch.Tensor, num_outputs: int, axis: int = 1, squeeze_axis: bool = False
) -> list[torch.Tensor]:
    """``num_outputs`` equal parts along ``axis`` (MXNet's ``SliceChannel``)."""
    parts = list(torch.chunk(data, num_outputs, axis))
    return [p.squeeze(axis) for p in parts] if squeeze_axis else parts


def slice_axis(data: torch.Tensor, axis: int, begin: int, end: int | None) -> torch.Tensor:
    """``data`` from ``begin`` to ``end`` (``None``: the end) along ``axis``."""
    size = data.shape[axis]
    end = size if end is None else end
    begin, end = begin % size if begin < 0 else begin, end % size if end < 0 else end
    return data.narrow(axis, begin, max(end - begin, 0))


def expand_dims(data: torch.Tensor, axis: int) -> torch.Tensor:
    """A new axis of size 1 at ``axis``."""
    return data.unsqueeze(axis)


def squeeze(data: torch.Tensor, axis: _Axis = None) -> torch.Tensor:
    """Drop axes of size 1 (all, or those in ``axis``)."""
    return data.squeeze() if axis is None else data.squeeze(axis)


def flatten(data: torch.Tensor) -> torch.Tensor:
    """``(N, d1, d2...) -> (N, d1*d2*...)``."""
    return data.flatten(1)


def broadcast_to(data: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Broadcast to ``shape`` (``0`` keeps the input's dim)."""
    return data.expand(*[d if s == 0 else s for s, d in zip(shape, data.shape, strict=True)])


def broadcast_like(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Broadcast ``lhs`` to ``rhs``'s shape."""
    return lhs.expand_as(rhs)


def softmax(
    data: torch.Tensor, axis: int = -1, temperature: float | None = None, **_: Any
) -> torch.Tensor:
    """Softmax along ``axis`` (of ``data / temperature``)."""
    return torch.softmax(data if temperature is None else data / temperature, axis)


def log_softmax(data: torch.Tensor, axis: int = -1, **_: Any) -> torch.Tensor:
    """Log-softmax along ``axis``."""
    return torch.log_softmax(data, axis)


def clip(data: torch.Tensor, a_min: float, a_max: float) -> torch.Tensor:
    """Clamp to ``[a_min, a_max]``."""
    return data.clamp(a_min, a_max)


def argmax(data: torch.Tensor, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """Index of the maximum along ``axis`` (MXNet returns it as a float)."""
    return data.argmax(axis, keepdims).to(data.dtype)


def argmin(data: torch.Tensor, axis: int | None = None, keepdims: bool = False) -> torch.Tensor:
    """Index of the minimum along ``axis`` (MXNet returns it as a float)."""
    return data.argmin(axis, keepdims).to(data.dtype)


def norm(
    data: torch.Tensor, ord: int = 2, axis: _Axis = None, keepdims: bool = False
) -> torch.Tensor:
    """The ``ord``-norm over ``axis`` (all axes when ``None``)."""
    return torch.linalg.vector_norm(data, ord, _dims(axis, data.dim()), keepdims)


def pick(
    data: torch.Tensor, index: torch.Tensor, axis: int = -1, keepdims: bool = False
) -> torch.Tensor:
    """The element at ``index`` along ``axis`` for each position of the other axes."""
    picked = data.gather(axis, index.long().unsqueeze(axis))
    return picked if keepdims else picked.squeeze(axis)


def take(a: torch.Tensor, indices: torch.Tensor, axis: int = 0, **_: Any) -> torch.Tensor:
    """The slices of ``a`` at ``indices`` along ``axis``."""
    return a.index_select(axis, indices.long().flatten()).reshape(
        *a.shape[: axis % a.dim()], *indices.shape, *a.shape[axis % a.dim() + 1 :]
    )


def one_hot(
    indices: torch.Tensor,
    depth: int,
    on_value: float = 1.0,
    off_value: float = 0.0,
    dtype: Any = "float32",
) -> torch.Tensor:
    """One-hot vectors of length ``depth`` (MXNet's default dtype: float32)."""
    hot = TF.one_hot(indices.long(), depth).to(_dtype(dtype))
    return hot * (on_value - off_value) + off_value


def where(condition: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x`` where ``condition`` is nonzero, else ``y``."""
    return torch.where(condition.bool(), x, y)


def Embedding(
    data: torch.Tensor, weight: torch.Tensor, input_dim: int = 0, output_dim: int = 0, **_: Any
) -> torch.Tensor:
    """Rows of ``weight`` at the (float or int) indices ``data``."""
    return TF.embedding(data.long(), weight)


def LayerNorm(
    data: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    axis: int = -1,
    eps: float = 1e-5,
    **_: Any,
) -> torch.Tensor:
    """Layer normalization over ``axis``."""
    moved = data.movedim(axis, -1)
    out = TF.layer_norm(moved, (moved.shape[-1],), gamma, beta, eps)
    return out.movedim(-1, axis)


def SequenceMask(
    data: torch.Tensor,
    sequence_length: torch.Tensor | None = None,
    use_sequence_length: bool = False,
    value: float = 0.0,
    axis: int = 0,
) -> torch.Tensor:
    """Set the steps past each sequence's length to ``value``; time is ``axis`` (0 or 1),
    the batch the other one."""
    if not use_sequence_length or sequence_length is None:
        return data
    steps = data.shape[axis]
    live = (
        torch.arange(steps, device=data.device)[:, None] < sequence_length.to(data.device)[None, :]
    )  # (T, N)
    if axis == 1:
        live = live.T
    live = live.reshape(*live.shape, *([1] * (data.dim() - 2)))
    return torch.where(live, data, torch.full_like(data, value))


def softmax_cross_entropy(data: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The summed cross-entropy of the softmax of ``data`` against class ``label``s."""
    return TF.cross_entropy(data, label.long(), reduction="sum")


def _dtype(dtype: Any) -> torch.dtype:
    """An MXNet dtype (``"float32"``, ``numpy.float16``, a torch dtype) as torch's."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = getattr(dtype, "__name__", None) or str(dtype)
    found = getattr(torch, name, None)
    if not isinstance(found, torch.dtype):
        raise TypeError(f"F: unknown dtype {dtype!r} (use 'float32', 'int64', ...)")
    return found


def cast(data: torch.Tensor, dtype: Any) -> torch.Tensor:
    """``data`` in ``dtype`` (``"float16"``, ``"int64"``... or a torch dtype)."""
    return data.to(_dtype(dtype))


def _factory(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def make(
        shape: int | Sequence[int], ctx: Any = None, dtype: Any = "float32", **kwargs: Any
    ) -> torch.Tensor:
        device = kwargs.pop("device", ctx)
        size = (shape,) if isinstance(shape, int) else tuple(shape)
        return fn(size, dtype=_dtype(dtype), device=device, **kwargs)

    make.__name__ = fn.__name__
    make.__doc__ = f"MXNet's ``{fn.__name__}(shape, ctx=None, dtype='float32')``."
    return make


def full(shape: int | Sequence[int], val: float, ctx: Any = None, dtype: Any = "float32") -> Any:
    """A tensor of ``shape`` filled with ``val``."""
    size = (shape,) if isinstance(shape, int) else tuple(shape)
    return torch.full(size, val, dtype=_dtype(dtype), device=ctx)


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1.0,
    repeat: int = 1,
    ctx: Any = None,
    dtype: Any = "float32",
) -> torch.Tensor:
    """``start, start+step, ...`` below ``stop`` (each repeated ``repeat`` times)."""
    if stop is None:
        start, stop = 0, start
    out = torch.arange(start, stop, step, dtype=_dtype(dtype), device=ctx)
    return out.repeat_interleave(repeat) if repeat != 1 else out


def _binary(fn: Callable[..., torch.Tensor], name: str) -> Callable[..., torch.Tensor]:
    def op(lhs: Any, rhs: Any) -> torch.Tensor:
        return fn(lhs, rhs)

    op.__name__ = name
    op.__doc__ = f"MXNet's ``{name}(lhs, rhs)``: ``torch.{fn.__name__}``, broadcasting."
    return op


def _compare(fn: Callable[..., torch.Tensor], name: str) -> Callable[..., torch.Tensor]:
    def op(lhs: Any, rhs: Any) -> torch.Tensor:
        out = fn(lhs, rhs)
        like = lhs if isinstance(lhs, torch.Tensor) else rhs
        return out.to(like.dtype)  # MXNet's comparisons return 0/1 in the input's dtype

    op.__name__ = name
    op.__doc__ = f"MXNet's ``{name}(lhs, rhs)``: 1 where true, 0 elsewhere, in lhs's dtype."
    return op


_BINARY = {
    "add": torch.add,
    "subtract": torch.sub,
    "multiply": torch.mul,
    "divide": torch.div,
    "power": torch.pow,
    "modulo": torch.remainder,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}
_COMPARE = {
    "equal": torch.eq,
    "not_equal": torch.ne,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "lesser": torch.lt,
    "lesser_equal": torch.le,
}
_UNARY = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softsign": TF.softsign,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "square": torch.square,
    "abs": torch.abs,
    "sign": torch.sign,
    "negative": torch.neg,
    "reciprocal": torch.reciprocal,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "round": torch.round,
    "sin": torch.sin,
    "cos": torch.cos,
    "erf": torch.erf,
    "identity": lambda x: x,
    "stop_gradient": torch.Tensor.detach,
    "zeros_like": torch.zeros_like,
    "ones_like": torch.ones_like,
}


def _build_f() -> types.ModuleType:
    f = types.ModuleType("lateinit.nn.F", __doc__)
    ops: dict[str, Any] = {
        "FullyConnected": FullyConnected,
        "Activation": Activation,
        "LeakyReLU": LeakyReLU,
        "Dropout": Dropout,
        "Convolution": Convolution,
        "Pooling": Pooling,
        "Embedding": Embedding,
        "LayerNorm": LayerNorm,
        "SequenceMask": SequenceMask,
        "Flatten": flatten,
        "flatten": flatten,
        "Reshape": reshape,
        "reshape": reshape,
        "transpose": transpose,
        "swapaxes": lambda data, dim1=0, dim2=0: data.transpose(dim1, dim2),
        "SwapAxis": lambda data, dim1=0, dim2=0: data.transpose(dim1, dim2),
        "expand_dims": expand_dims,
        "squeeze": squeeze,
        "concat": concat,
        "Concat": concat,
        "stack": stack,
        "split": split,
        "SliceChannel": split,
        "slice_axis": slice_axis,
        "tile": lambda data, reps: data.repeat(*reps),
        "repeat": lambda data, repeats, axis=None: data.repeat_interleave(repeats, axis),
        "broadcast_to": broadcast_to,
        "broadcast_like": broadcast_like,
        "dot": dot,
        "batch_dot": batch_dot,
        "softmax": softmax,
        "log_softmax": log_softmax,
        "softmax_cross_entropy": softmax_cross_entropy,
        "clip": clip,
        "argmax": argmax,
        "argmin": argmin,
        "norm": norm,
        "pick": pick,
        "take": take,
        "one_hot": one_hot,
        "where": where,
        "cast": cast,
        "Cast": cast,
        "zeros": _factory(torch.zeros),
        "ones": _factory(torch.ones),
        "empty": _factory(torch.empty),
        "full": full,
        "arange": arange,
        "add_n": lambda *args: sum(args[1:], args[0]),
        "ElementWiseSum": lambda *args: sum(args[1:], args[0]),
    }
    for name in ("sum", "mean", "max", "min", "prod", "nansum"):
        ops[name] = _reduce(name)
    ops["sum_axis"] = ops["sum"]
    for name, fn in _BINARY.items():
        ops[name] = _binary(fn, name)
        ops[f"broadcast_{name.replace('subtract', 'sub').replace('multiply', 'mul')}"] = _binary(
            fn, name
        )
    for short, name in (("add", "add"), ("sub", "subtract"), ("mul", "multiply")):
        ops[f"elemwise_{short}"] = ops[name]
    ops["broadcast_div"] = ops["elemwise_div"] = ops["divide"]
    ops["broadcast_mod"] = ops["modulo"]
    for name, fn in _COMPARE.items():
        ops[name] = ops[f"broadcast_{name}"] = _compare(fn, name)
    ops.update(_UNARY)
    for name, fn in ops.items():
        setattr(f, name, fn)
    f.np = _build_np()
    f.npx = _build_npx()
    f.__getattr__ = _torch_fallback("F")  # PEP 562: names F lacks come from torch
    f.__all__ = [*sorted(ops), "np", "npx"]
    return f


def _torch_fallback(where: str) -> Callable[[str], Any]:
    def fallback(name: str) -> Any:
        found = getattr(torch, name, None)
        if found is None or name.startswith("_"):
            raise AttributeError(
                f"lateinit.nn.{where} has no operator {name!r} (nor has torch). Fix: "
                "compute it with torch's functions (any torch op works inside "
                "hybrid_forward)"
            )
        return found

    return fallback


def _np_reduce(fn: Callable[..., Any]) -> Callable[..., torch.Tensor]:
    def reduce(a: torch.Tensor, axis: _Axis = None, keepdims: bool = False, **_: Any) -> Any:
        return _reduce(fn.__name__)(a, axis, keepdims)

    reduce.__name__ = fn.__name__
    return reduce


def _build_np() -> types.ModuleType:
    np = types.ModuleType("lateinit.nn.F.np", "MXNet 2's numpy interface (a minimal subset).")
    ops: dict[str, Any] = {
        "dot": torch.matmul,
        "matmul": torch.matmul,
        "concatenate": lambda seq, axis=0: torch.cat(tuple(seq), axis),
        "stack": lambda arrays, axis=0: torch.stack(tuple(arrays), axis),
        "reshape": lambda a, newshape: a.reshape(newshape),
        "transpose": lambda a, axes=None: transpose(a, axes),
        "swapaxes": lambda a, axis1, axis2: a.transpose(axis1, axis2),
        "expand_dims": expand_dims,
        "squeeze": squeeze,
        "where": where,
        "clip": lambda a, a_min, a_max: a.clamp(a_min, a_max),
        "zeros": _factory(torch.zeros),
        "ones": _factory(torch.ones),
        "full": full,
        "arange": lambda start, stop=None, step=1, dtype=None, ctx=None: (
            torch.arange(
                0 if stop is None else start, start if stop is None else stop, step, device=ctx
            )
            if dtype is None
            else torch.arange(
                0 if stop is None else start,
                start if stop is None else stop,
                step,
                dtype=_dtype(dtype),
                device=ctx,
            )
        ),
        "split": lambda a, indices_or_sections, axis=0: list(
            torch.tensor_split(a, indices_or_sections, axis)
        ),
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "power": torch.pow,
        "exp": torch.exp,
        "log": torch.log,
        "sqrt": torch.sqrt,
        "tanh": torch.tanh,
        "abs": torch.abs,
        "sin": torch.sin,
        "cos": torch.cos,
        "zeros_like": torch.zeros_like,
        "ones_like": torch.ones_like,
        "pi": math.pi,
        "float32": torch.float32,
        "float16": torch.float16,
        "int32": torch.int32,
        "int64": torch.int64,
    }
    for name in ("sum", "mean", "max", "min", "prod"):
        ops[name] = _np_reduce(getattr(torch, name))
    for name, fn in ops.items():
        setattr(np, name, fn)
    np.__getattr__ = _torch_fallback("F.np")
    return np


def _build_npx() -> types.ModuleType:
    npx = types.ModuleType("lateinit.nn.F.npx", "MXNet 2's npx operators (a minimal subset).")
    ops: dict[str, Any] = {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "softmax": softmax,
        "log_softmax": log_softmax,
        "activation": Activation,
        "leaky_relu": LeakyReLU,
        "fully_connected": FullyConnected,
        "convolution": Convolution,
        "pooling": Pooling,
        "embedding": Embedding,
        "layer_norm": LayerNorm,
        "dropout": Dropout,
        "batch_dot": batch_dot,
        "sequence_mask": SequenceMask,
        "one_hot": one_hot,
        "pick": pick,
        "reshape": reshape,
    }
    for name, fn in ops.items():
        setattr(npx, name, fn)
    npx.__getattr__ = _torch_fallback("F.npx")
    return npx


#: The operator namespace ``hybrid_forward`` receives as ``F`` (also usable directly).
F = _build_f()


# -- HybridBlock ------------------------------------------------------------------------
class HybridBlock(Block):
    """Gluon's HybridBlock: a [`Block`][lateinit.Block] whose computation may be written as
    Gluon 1.x `hybrid_forward(self, F, x, *args, **params)`.

    A subclass that defines [`hybrid_forward`][lateinit.nn.HybridBlock.hybrid_forward]
    (and no `forward`) gets `forward(x, *args)`, which calls
    `self.hybrid_forward(F, x, *args, **params)` with `F` (`lateinit.nn.F`: MXNet's
    operators, computed by torch) and `params` this block's own parameters and buffers by
    their attribute names (the parameters of child blocks are theirs: call the children).
    A subclass may define `forward` instead (Gluon 2). Parameters whose shape is not known
    at construction need `infer_param_shapes`, as in any Block (see the example).
    `hybridize()` compiles with `torch.compile`
    ([`Block.hybridize`][lateinit.Block.hybridize]; Gluon's `static_alloc` and
    `static_shape` are accepted and have no effect).

    Args:
        prefix: Gluon 1.x's name prefix, accepted for old code; names are structural
            here, so it changes nothing.
        params: Gluon 1.x's shared parameters: the block shares the parameters of that
            `collect_params()` by name once it is built.

    Examples:
        >>> import torch
        >>> import lateinit
        >>> from lateinit import nn
        >>> class MyDense(nn.HybridBlock):
        ...     def __init__(self, units, in_units=0, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.weight = lateinit.Parameter((units, in_units or -1))
        ...         self.bias = lateinit.Parameter((units,), init="zeros")
        ...     def infer_param_shapes(self, x):
        ...         self.weight.shape = (self.weight.shape[0], x.shape[1])
        ...     def hybrid_forward(self, F, x, weight, bias):
        ...         return F.relu(F.FullyConnected(x, weight, bias, num_hidden=weight.shape[0]))
        >>> net = nn.HybridSequential()
        >>> net.add(MyDense(8), nn.Dense(2))
        >>> tuple(net[0].weight.shape)
        (8, -1)
        >>> _ = net.hybridize(backend="eager")
        >>> net(torch.rand(3, 5)).shape
        torch.Size([3, 2])
        >>> tuple(net[0].weight.shape)
        (8, 5)
    """

    def __init__(self, prefix: str | None = None, params: Any = None) -> None:
        super().__init__()  # params= is taken by Block (shared once constructed)

    def forward(self, x: Any, *args: Any) -> Any:
        """``self.hybrid_forward(F, x, *args, **own parameters and buffers)``."""
        params = {n: p for n, p in self._parameters.items() if p is not None}
        for n, b in self._buffers.items():
            if b is not None:
                params[n] = b
        return self.hybrid_forward(F, x, *args, **params)

    def hybrid_forward(self, F: Any, x: Any, *args: Any, **params: Any) -> Any:
        """Gluon 1.x's computation; a subclass overrides it (or `forward`).

        `forward(x, *args)` calls it with the operator namespace `F` (`lateinit.nn.F`, MXNet's
        operator names computed by torch: `F.FullyConnected`, `F.relu`, `F.concat`...), the
        inputs, and this block's own parameters and buffers as keyword arguments named as
        their attributes.

        Args:
            F: the operator namespace (`lateinit.nn.F`).
            x: the first input.
            *args: the other inputs.
            **params: this block's parameters and buffers, by attribute name.

        Returns:
            The block's output.

        Raises:
            NotImplementedError: the subclass defines neither `hybrid_forward` nor `forward`.

        Examples:
            >>> import torch
            >>> import lateinit
            >>> from lateinit import nn
            >>> class Scale(nn.HybridBlock):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.alpha = lateinit.Parameter((1,), init="ones")
            ...     def hybrid_forward(self, F, x, alpha):
            ...         return F.broadcast_mul(x, alpha)
            >>> block = Scale()
            >>> block(torch.tensor([1.0, 2.0]))
            tensor([1., 2.], grad_fn=<MulBackward0>)
        """
        raise NotImplementedError(
            f"{type(self).__name__} defines neither forward nor hybrid_forward. Fix: define "
            "hybrid_forward(self, F, x, ...) (Gluon 1.x) or forward(self, x, ...)"
        )

    def hybridize(
        self,
        active: bool = True,
        static_alloc: bool = False,
        static_shape: bool = False,
        **compile_kwargs: Any,
    ) -> Block:
        """[`Block.hybridize`][lateinit.Block.hybridize] (`torch.compile`), with Gluon's
        signature.

        Args:
            active: compile (`True`) or go back to eager (`False`).
            static_alloc: MXNet's memory planning; no torch counterpart, ignored.
            static_shape: MXNet's memory planning; no torch counterpart, ignored.
            **compile_kwargs: passed to `torch.compile` (`backend=`, `mode=`...).

        Returns:
            The block itself.

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> net = nn.HybridSequential(nn.Dense(4), nn.Dense(1))
            >>> net.hybridize(static_alloc=True, backend="eager") is net
            True
            >>> net(torch.rand(2, 3)).shape
            torch.Size([2, 1])
        """
        return super().hybridize(active, **compile_kwargs)


class HybridSequential(Sequential, HybridBlock):
    """Gluon's HybridSequential: a [`Sequential`][lateinit.nn.Sequential] (same API) that is
    also a [`HybridBlock`][lateinit.nn.HybridBlock]; `hybridize()` compiles the whole
    stack.

    As in `Sequential`, each deferred child infers its input size from the previous
    child's output on the first batch; a slice is a `HybridSequential`.

    Args:
        *blocks: the children, in order (or one list of them).

    Shape:
        - Input: what the first child takes.
        - Output: what the last child returns.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.HybridSequential()
        >>> net.add(nn.Dense(4, activation="relu"), nn.Dense(1))
        >>> net(torch.rand(2, 3)).shape, type(net[:1]).__name__
        (torch.Size([2, 1]), 'HybridSequential')
        >>> net
        HybridSequential(
          (0): Dense(3 -> 4, relu)
          (1): Dense(4 -> 1)
        )
    """

    @overload
    def __getitem__(self, index: int) -> torch.nn.Module: ...
    @overload
    def __getitem__(self, index: slice) -> HybridSequential: ...
    def __getitem__(self, index: int | slice) -> torch.nn.Module | HybridSequential:
        if isinstance(index, slice):
            return HybridSequential(list(self._modules.values())[index])
        return super().__getitem__(index)
