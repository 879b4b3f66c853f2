"""Shapes: input specs and the shape-mismatch error.

:class:`Spec` describes an input without data (``None`` marks a dim of any size, such as
the batch). :class:`ShapeMismatchError` is what a layer raises when an input disagrees
with a size it already knows; the block that raised it adds its path and type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Spec", "ShapeMismatchError", "fmt_list", "fmt_shape"]


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


# ---------------------------------------------------------------------------------------
# Data-free inference: run the forward on meta tensors.

Inputs = Any
# Sizes standing in for None dims (meta tensors cost nothing, whatever the size); dims
# that differ between the two runs become None. Unusual primes, so that messages can
# show them as None.
_SENTINELS = (1031, 1033)


def _to_meta(obj: Any, size: int) -> Any:
    """Meta tensors for a tensor / shape tuple / Spec (nested tuples, lists, dicts)."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "meta" else torch.empty_like(obj, device="meta")
    if isinstance(obj, Spec):
        return torch.empty(
            tuple(size if d is None else d for d in obj.shape), dtype=obj.dtype, device="meta"
        )
    if isinstance(obj, tuple) and all(isinstance(d, int) or d is None for d in obj) and obj:
        return torch.empty(tuple(size if d is None else d for d in obj), device="meta")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_meta(o, size) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_meta(v, size) for k, v in obj.items()}
    return obj


def _has_none(obj: Any) -> bool:
    if isinstance(obj, Spec):
        return None in obj.shape
    if isinstance(obj, (list, tuple)):
        return any(d is None for d in obj) or any(_has_none(o) for o in obj)
    if isinstance(obj, dict):
        return any(_has_none(v) for v in obj.values())
    return False


def _to_spec(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return Spec(tuple(obj.shape), obj.dtype)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_spec(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_spec(v) for k, v in obj.items()}
    return obj


def _merge_specs(a: Any, b: Any) -> Any:
    """Two runs' output specs: dims that differ depend on a None input dim."""
    if isinstance(a, Spec):
        shape = tuple(x if x == y else None for x, y in zip(a.shape, b.shape, strict=True))
        return Spec(shape, a.dtype)
    if isinstance(a, (list, tuple)):
        return type(a)(_merge_specs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return {k: _merge_specs(v, b[k]) for k, v in a.items()}
    return a


def _from_spec(obj: Any) -> Any:
    """Meta tensors rebuilt from recorded output specs (a memoized module's output)."""
    if isinstance(obj, Spec):
        return torch.empty(obj.shape, dtype=obj.dtype, device="meta")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_from_spec(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _from_spec(v) for k, v in obj.items()}
    return obj


_SKIP_ATTRS = {"training", "forward", "_li_meta", "_li_uses", "_li_fixed_by"}


def _value_key(value: Any) -> Any:
    """A hashable stand-in for an attribute or argument value, safe for memoizing: plain
    values by value, tensors by shape and dtype, anything else by identity."""
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return value
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_value_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *((k, _value_key(v)) for k, v in value.items()))
    return ("id", id(value))


class _Inference:
    """One data-free pass over a network (see :func:`infer_shape`).

    Every module gets a temporary per-instance ``forward`` that infers its own deferred
    parameters' shapes (``infer_param_shapes``), swaps meta stand-ins in for its parameters
    and buffers, and runs the real forward on meta tensors. Modules of identical structure
    called on identical input specs (the 32 decoder layers of a Llama) run once: the others
    replay the recorded parameter shapes and output spec.
    """

    def __init__(self, root: torch.nn.Module, flops: bool = False) -> None:
        self.root = root
        self.modules = list(root.modules())
        self.signatures: dict[int, Any] = {}
        for module in reversed(self.modules):  # children first
            self.signatures[id(module)] = self._signature(module)
        self.owners: dict[int, list[tuple[dict[str, Any], str]]] = {}
        for module in self.modules:
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None:
                        self.owners.setdefault(id(t), []).append((table, name))
        self.memo: dict[Any, tuple[list[tuple[int, ...]], Any, float, list[Any]]] = {}
        self.subtrees: dict[int, list[tuple[int, str, str]]] = {}
        self.saved_tables: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.saved_forwards: dict[int, Any] = {}
        self.records: dict[int, tuple[Any, float]] = {}  # per module: output spec, FLOPs
        self.flops = flops
        self.counter: Any = None
        self.replayed_flops = 0  # FLOPs of replayed (memoized) calls

    def _flops_so_far(self) -> float:
        counted = self.counter.get_total_flops() if self.counter is not None else 0
        return counted + self.replayed_flops

    def _signature(self, module: torch.nn.Module) -> Any:
        attrs = tuple(
            sorted(
                (k, _value_key(v))
                for k, v in vars(module).items()
                if k not in _SKIP_ATTRS
                and not k.startswith("_forward")
                and not k.endswith("hooks")
                and k not in ("_parameters", "_buffers", "_modules")
                and not k.startswith("_state_dict")
                and not k.startswith("_load_state_dict")
                and k != "_non_persistent_buffers_set"
            )
        )
        tensors = tuple(
            (name, tuple(t.shape), t.dtype, t.requires_grad)
            for table in (module._parameters, module._buffers)
            for name, t in table.items()
            if t is not None
        )
        children = tuple((n, self.signatures[id(c)]) for n, c in module._modules.items() if c)
        return (type(module), attrs, tensors, children)

    # -- stand-ins -----------------------------------------------------------------------
    def stand_in(self, t: torch.Tensor) -> None:
        """Put a meta tensor of ``t``'s (full) shape wherever ``t`` is held."""
        shape = tuple(t.shape)
        if isinstance(t, torch.nn.Parameter):
            meta = torch.nn.Parameter(
                torch.empty(shape, dtype=t.dtype, device="meta"), t.requires_grad
            )
        else:
            meta = torch.empty(shape, dtype=t.dtype, device="meta")
        for table, name in self.owners.get(id(t), ()):
            table[name] = meta

    def __enter__(self) -> _Inference:
        from .parameter import is_deferred

        for module in self.modules:
            self.saved_tables[id(module)] = (dict(module._parameters), dict(module._buffers))
            self.saved_forwards[id(module)] = module.__dict__.get("forward")
        done: set[int] = set()
        for module in self.modules:
            for table in (module._parameters, module._buffers):
                for t in list(table.values()):
                    if t is not None and id(t) not in done and not is_deferred(t):
                        done.add(id(t))
                        self.stand_in(t)
            module.__dict__["forward"] = _bound(self, module)
        return self

    def __exit__(self, *exc: Any) -> None:
        for module in self.modules:
            params, buffers = self.saved_tables[id(module)]
            module._parameters.clear()
            module._parameters.update(params)
            module._buffers.clear()
            module._buffers.update(buffers)
            previous = self.saved_forwards[id(module)]
            if previous is None:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = previous

    def _originals(self, module: torch.nn.Module) -> list[torch.Tensor | None]:
        """The subtree's parameters and buffers (the objects, not their stand-ins), in a
        fixed order that modules of equal signature share."""
        where = self.subtrees.get(id(module))
        if where is None:
            where = [
                (id(m), kind, name)
                for m in module.modules()
                for kind, table in (("p", m._parameters), ("b", m._buffers))
                for name in table
            ]
            self.subtrees[id(module)] = where
        return [self.saved_tables[mid][0 if kind == "p" else 1][name] for mid, kind, name in where]

    # -- one module call -----------------------------------------------------------------
    def call(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from .block import Block

        key = (
            self.signatures[id(module)],
            module.training,
            _value_key(args),
            _value_key(kwargs),
        )
        hit = self.memo.get(key)
        if hit is not None:
            shapes, spec, flops, subtree = hit
            for t, shape in zip(self._originals(module), shapes, strict=True):
                _fill_and_stand_in(self, t, shape)
            for m, record in zip(module.modules(), subtree, strict=True):
                if record is not None:  # the descendants' calls, as in the run replayed
                    self.records[id(m)] = record
            self.records[id(module)] = (spec, flops)
            self.replayed_flops += flops  # the counter never sees a replayed module's ops
            return _from_spec(spec)
        if isinstance(module, Block):
            for _, p in module._infer_own(args, kwargs):
                self.stand_in(p)
        before = self._flops_so_far()
        previous = {id(m): self.records.get(id(m)) for m in module.modules()}
        try:
            out = type(module).forward(module, *args, **kwargs)
        except (RuntimeError, NotImplementedError) as err:
            wrapped = _data_dependent(module, err)
            if wrapped is err:
                raise
            raise wrapped from err
        flops = self._flops_so_far() - before
        spec = _to_spec(out)
        shapes = [tuple(t.shape) if t is not None else () for t in self._originals(module)]
        subtree = [
            r if r is not previous[id(m)] else None
            for m in module.modules()
            for r in (self.records.get(id(m)),)
        ]
        self.memo[key] = (shapes, spec, flops, subtree)
        self.records[id(module)] = (spec, flops)
        return out


def _fill_and_stand_in(ctx: _Inference, t: torch.Tensor | None, shape: tuple[int, ...]) -> None:
    """Replay a memoized module: fill a deferred tensor's shape and stand in for it (READY
    tensors, and deferred ones shared with a module already run, are stand-ins already)."""
    from .parameter import Parameter

    if isinstance(t, Parameter):
        t.shape = shape
        ctx.stand_in(t)


def _bound(ctx: _Inference, module: torch.nn.Module) -> Any:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return ctx.call(module, args, kwargs)

    return forward


class _NeedsValuesError(RuntimeError):
    """A forward needed real values during infer_shape (raised once, at the innermost
    block; enclosing blocks let it through)."""


def _data_dependent(module: torch.nn.Module, err: BaseException) -> BaseException:
    text = str(err)
    if isinstance(err, _NeedsValuesError):
        return err
    if "meta" not in text.lower() and "data-dependent" not in text.lower():
        return err
    from .block import _layer_label, _locate

    return _NeedsValuesError(
        f"{_layer_label(module, _locate(module)[1])} needs real values in its forward "
        f"(e.g. .item(), a value-dependent branch or index), so its shapes cannot be inferred "
        f"without data ({text.splitlines()[0]}). Fix: pass one real batch instead of "
        "infer_shape(...)."
    )


def infer_shape(root: torch.nn.Module, *inputs: Any, flops: bool = False) -> Any:
    """Infer every parameter's shape of ``root`` without data; see ``Block.infer_shape``.

    With ``flops=True`` also returns the :class:`_Inference` record (per-module output
    specs and FLOPs), for summaries.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from .parameter import transaction

    sizes = _SENTINELS if _has_none(inputs) else _SENTINELS[:1]
    rng = torch.random.get_rng_state()
    specs: list[Any] = []
    record: dict[int, tuple[Any, float]] = {}
    try:
        with transaction():
            ctx = _Inference(root, flops=flops)
            for i, size in enumerate(sizes):
                meta_inputs = _to_meta(inputs, size)
                with ctx, torch.no_grad():
                    if flops and i == 0:
                        with FlopCounterMode(display=False) as counter:
                            ctx.counter = counter
                            out = root(*meta_inputs)
                        ctx.counter = None
                    else:
                        out = root(*meta_inputs)
                specs.append(_to_spec(out))
                if i == 0:
                    record = dict(ctx.records)
    finally:
        torch.random.set_rng_state(rng)  # meta ops draw nothing; be sure of it
    result = specs[0] if len(specs) == 1 else _merge_specs(specs[0], specs[1])
    return (result, record) if flops else result  # record: id(module) -> (spec, FLOPs)
