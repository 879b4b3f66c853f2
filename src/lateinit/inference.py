"""Data-free shape inference: run a network's forward on meta tensors.

:func:`infer_shape` (``Block.infer_shape``) fills every deferred parameter's shape
without data and without allocating: each module's forward runs on meta tensors, with
meta stand-ins for its parameters and buffers; modules of identical structure called on
identical input specs run once and are replayed. ``None`` dims of a :class:`Spec` are
found by two runs with different stand-in sizes (:data:`lateinit.shapes.NONE_SIZES`).
See ``docs/design.md``, "Shapes without data".
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import torch
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter, is_lazy
from torch.utils.flop_counter import FlopCounterMode

from .block import Block
from .explain import layer_label, locate
from .parameter import Parameter, transaction
from .shapes import NONE_SIZES, ShapeMismatchError, Spec

__all__ = ["infer_shape", "to_meta", "has_none", "merge_specs", "Inference", "Replica"]


def to_meta(obj: Any, size: int) -> Any:
    """Meta tensors for a tensor / shape tuple / Spec (nested tuples, lists, dicts);
    ``None`` dims get ``size``."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "meta" else torch.empty_like(obj, device="meta")
    if isinstance(obj, Spec):
        return torch.empty(
            tuple(size if d is None else d for d in obj.shape), dtype=obj.dtype, device="meta"
        )
    if isinstance(obj, tuple) and all(isinstance(d, int) or d is None for d in obj) and obj:
        return torch.empty(tuple(size if d is None else d for d in obj), device="meta")
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_meta(o, size) for o in obj)
    if isinstance(obj, dict):
        return {k: to_meta(v, size) for k, v in obj.items()}
    return obj


def has_none(obj: Any) -> bool:
    """Whether a spec, shape tuple or nest of them has a ``None`` dim."""
    if isinstance(obj, Spec):
        return None in obj.shape
    if isinstance(obj, (list, tuple)):
        return any(d is None for d in obj) or any(has_none(o) for o in obj)
    if isinstance(obj, dict):
        return any(has_none(v) for v in obj.values())
    return False


def _to_spec(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return Spec(tuple(obj.shape), obj.dtype)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_spec(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_spec(v) for k, v in obj.items()}
    return obj


def merge_specs(a: Any, b: Any) -> Any:
    """Two runs' output specs: dims that differ depend on a None input dim."""
    if isinstance(a, Spec):
        shape = tuple(x if x == y else None for x, y in zip(a.shape, b.shape, strict=True))
        return Spec(shape, a.dtype)
    if isinstance(a, (list, tuple)):
        return type(a)(merge_specs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return {k: merge_specs(v, b[k]) for k, v in a.items()}
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


_SKIP_ATTRS = {"training", "forward", "_lateinit"}


def _skipped_attr(k: str) -> bool:
    """Attributes a module's signature leaves out: torch's tables and hooks, the
    per-instance forward, lateinit's state (``training`` is in the memo key itself)."""
    return (
        k in _SKIP_ATTRS
        or k.startswith("_forward")
        or k.endswith("hooks")
        or k in ("_parameters", "_buffers", "_modules")
        or k.startswith("_state_dict")
        or k.startswith("_load_state_dict")
        or k == "_non_persistent_buffers_set"
    )


#: A module's attribute names (in ``__dict__`` order) -> the sorted names its signature
#: keeps. Modules of one class built alike share one entry; bounded (cleared when full).
_SIGNATURE_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}
_CACHE_LIMIT = 4096


def _signature_keys(state: dict[str, Any]) -> tuple[str, ...]:
    names = tuple(state)
    kept = _SIGNATURE_KEYS.get(names)
    if kept is None:
        if len(_SIGNATURE_KEYS) >= _CACHE_LIMIT:
            _SIGNATURE_KEYS.clear()
        kept = _SIGNATURE_KEYS[names] = tuple(sorted(k for k in names if not _skipped_attr(k)))
    return kept


#: torch.nn.Module's own attributes: tables, hooks and flags, never a module.
_TORCH_KEYS = frozenset(vars(torch.nn.Module()))
_PLAIN_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _plain_keys(state: dict[str, Any]) -> tuple[str, ...]:
    """The names in a module's ``__dict__`` that are not torch.nn.Module's own (where a
    reference to another module of the tree may be held)."""
    names = tuple(state)
    kept = _PLAIN_KEYS.get(names)
    if kept is None:
        if len(_PLAIN_KEYS) >= _CACHE_LIMIT:
            _PLAIN_KEYS.clear()
        kept = _PLAIN_KEYS[names] = tuple(k for k in names if k not in _TORCH_KEYS)
    return kept


_PLAIN = (bool, int, float, str, torch.dtype, torch.device)


def _value_key(value: Any) -> Any:
    """A hashable stand-in for an attribute or argument value, safe for memoizing: plain
    values by value, tensors by shape and dtype, anything else by identity."""
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_value_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *((k, _value_key(v)) for k, v in value.items()))
    return ("id", id(value))


_MISSING = object()


class Inference:
    """One data-free pass over a network (see :func:`infer_shape`).

    Every module gets a temporary per-instance ``forward`` that infers its own deferred
    parameters' shapes (``infer_param_shapes``), swaps meta stand-ins in for its parameters
    and buffers, and runs the real forward on meta tensors. Modules of identical structure
    called on identical input specs (the 32 decoder layers of a Llama) run once: the others
    replay the recorded parameter shapes and output spec.

    A module's structure is its *signature* (class, plain attributes, tensors' shapes,
    dtypes and ``requires_grad``, children's signatures), interned as a small int so that
    a memo key costs the same for a decoder layer as for the whole network. The context
    may be entered for several passes (``infer_shape`` runs two for a ``None`` dim): the
    stand-ins of the first stay in place for the next (a deferred parameter is SHAPED by
    then, and its stand-in has that shape, as a fresh stand-in would).
    """

    def __init__(self, root: torch.nn.Module, flops: bool = False) -> None:
        self.root = root
        self.modules: list[torch.nn.Module] = []  # root.modules(): pre-order, each once
        self.signatures: dict[int, int] = {}  # id(module) -> interned signature
        self._interned: dict[Any, int] = {}
        self.sharing: dict[int, int] = {}  # interned signature -> how many modules have it
        self.tensor_info: dict[int, tuple[torch.dtype, bool, bool]] = {}
        with torch._C.DisableTorchFunctionSubclass():  # dtype reads skip the gate
            self._signature(root)
        self.owners: dict[int, list[tuple[dict[str, Any], str]]] = {}
        self.memo: dict[Any, tuple[list[tuple[int, ...]] | None, Any, float, list[Any]]] = {}
        self.subtrees: dict[int, list[tuple[int, str, str]]] = {}
        self.trees: dict[int, list[torch.nn.Module]] = {}  # module.modules(), walked once
        self.saved_tables: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.saved_forwards: dict[int, Any] = {}
        self.stood_in: dict[int, torch.Tensor] = {}  # id(tensor) -> its stand-in
        self.records: dict[int, tuple[Any, float]] = {}  # per module: output spec, FLOPs
        self.flops = flops
        self.counter: Any = None
        self.replayed_flops = 0  # FLOPs of replayed (memoized) calls
        self._entered = 0

    def _flops_so_far(self) -> float:
        counted = self.counter.get_total_flops() if self.counter is not None else 0
        return counted + self.replayed_flops

    def _signature(self, module: torch.nn.Module) -> int:
        """The interned signature of ``module`` (children first; each module once, also
        one shared by two parents)."""
        found = self.signatures.get(id(module))
        if found is not None:
            return found
        self.modules.append(module)
        state = module.__dict__
        children = tuple(
            (n, self._signature(c)) for n, c in state["_modules"].items() if c is not None
        )
        attrs = tuple((k, _value_key(state[k])) for k in _signature_keys(state))
        tensors = []
        info = self.tensor_info
        for table in (state["_parameters"], state["_buffers"]):
            for name, t in table.items():
                if t is None:
                    continue
                dtype, requires_grad = t.dtype, t.requires_grad
                info[id(t)] = (dtype, requires_grad, isinstance(t, torch.nn.Parameter))
                shape = "lazy" if is_lazy(t) else tuple(t.shape)
                tensors.append((name, shape, dtype, requires_grad))
        key = (type(module), attrs, tuple(tensors), children)
        sid = self._interned.get(key)
        if sid is None:
            sid = self._interned[key] = len(self._interned)
        self.signatures[id(module)] = sid
        self.sharing[sid] = self.sharing.get(sid, 0) + 1
        return sid

    # -- stand-ins -----------------------------------------------------------------------
    def stand_in(self, t: torch.Tensor) -> None:
        """Put a meta tensor of ``t``'s (full) shape wherever ``t`` is held."""
        shape = tuple(t.shape)
        info = self.tensor_info.get(id(t))
        if info is None:  # created during the pass (a torch Lazy* module's parameters)
            with torch._C.DisableTorchFunctionSubclass():  # dtype reads skip the gate
                info = (t.dtype, t.requires_grad, isinstance(t, torch.nn.Parameter))
            self.tensor_info[id(t)] = info
        dtype, requires_grad, is_param = info
        meta = torch.empty(shape, dtype=dtype, device="meta")
        if is_param:  # what torch.nn.Parameter(meta, requires_grad) makes
            meta = torch.Tensor._make_subclass(torch.nn.Parameter, meta, requires_grad)
        for table, name in self.owners.get(id(t), ()):
            table[name] = meta
        self.stood_in[id(t)] = meta

    def __enter__(self) -> Inference:
        if self._entered:  # stand-ins and forwards already in place
            self._entered += 1
            return self
        owners = self.owners
        for module in self.modules:
            state = module.__dict__
            params, buffers = state["_parameters"], state["_buffers"]
            self.saved_tables[id(module)] = (params, buffers)
            self.saved_forwards[id(module)] = state.get("forward", _MISSING)
            for key, table in (("_parameters", params), ("_buffers", buffers)):
                if not table:
                    continue
                state[key] = table = dict(table)  # the pass's own table
                for name, t in table.items():
                    if t is not None:
                        owners.setdefault(id(t), []).append((table, name))
            state["forward"] = partial(self._forward, module)
        done: set[int] = set()
        for module in self.modules:
            for table in self.saved_tables[id(module)]:
                for t in table.values():
                    if (
                        t is not None
                        and id(t) not in done
                        and not isinstance(t, Parameter)
                        and not is_lazy(t)
                    ):
                        done.add(id(t))
                        self.stand_in(t)
        self._entered = 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._entered -= 1
        if self._entered:
            return
        for module in self.modules:
            state = module.__dict__
            state["_parameters"], state["_buffers"] = self.saved_tables[id(module)]
            previous = self.saved_forwards[id(module)]
            if previous is _MISSING:
                state.pop("forward", None)
            else:
                state["forward"] = previous
        self.owners.clear()
        self.stood_in.clear()

    def _originals(self, module: torch.nn.Module) -> list[torch.Tensor | None]:
        """The subtree's parameters and buffers (the objects, not their stand-ins), in a
        fixed order that modules of equal signature share."""
        where = self.subtrees.get(id(module))
        if where is None:
            where = [
                (id(m), kind, name)
                for m in self._tree(module)
                for kind, table in enumerate(self.saved_tables[id(m)])
                for name in table
            ]
            self.subtrees[id(module)] = where
        saved = self.saved_tables
        return [saved[mid][kind][name] for mid, kind, name in where]

    def _tree(self, module: torch.nn.Module) -> list[torch.nn.Module]:
        """``list(module.modules())``, walked once per module."""
        tree = self.trees.get(id(module))
        if tree is None:
            tree = self.trees[id(module)] = list(module.modules())
        return tree

    # -- one module call -----------------------------------------------------------------
    def _forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        return self.call(module, args, kwargs)

    def call(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        sid = self.signatures[id(module)]
        key = (sid, module.training, _value_key(args), _value_key(kwargs) if kwargs else None)
        hit = self.memo.get(key)
        if hit is not None:
            shapes, spec, flops, subtree = hit
            if shapes is not None:  # None: the module's own entry, its shapes are its own
                for t, shape in zip(self._originals(module), shapes, strict=True):
                    if isinstance(t, Parameter):
                        self._fill(t, shape)
            if self.flops:
                for m, record in zip(self._tree(module), subtree, strict=True):
                    if record is not None:  # the descendants' calls, as in the run replayed
                        self.records[id(m)] = record
                self.records[id(module)] = (spec, flops)
                self.replayed_flops += flops  # the counter never sees a replayed module's ops
            return _from_spec(spec)
        if isinstance(module, Block):
            for _, p in module._infer_own(args, kwargs):
                self.stand_in(p)
        elif isinstance(module, LazyModuleMixin) and module.has_uninitialized_params():
            module.initialize_parameters(*args, **kwargs)  # torch's Lazy*, on meta
        if self.flops:
            before = self._flops_so_far()
            tree = self._tree(module)
            previous = {id(m): self.records.get(id(m)) for m in tree}
        try:
            out = NotImplemented
            shortcut = getattr(type(module), "_meta_forward", None)
            if shortcut is not None and self._shortcuts_allowed():
                out = shortcut(module, *args, **kwargs)  # a layer's output from the shapes
            if out is NotImplemented:
                out = type(module).forward(module, *args, **kwargs)
        except (RuntimeError, NotImplementedError) as err:
            wrapped = _data_dependent(module, err)
            if wrapped is err:
                raise
            raise wrapped from err
        spec = _to_spec(out)
        shapes = None  # a module alone with its signature: only itself can replay this
        if self.sharing[sid] > 1:
            shapes = [tuple(t.shape) if t is not None else () for t in self._originals(module)]
        if self.flops:
            flops = self._flops_so_far() - before
            subtree = [
                r if r is not previous[id(m)] else None
                for m in tree
                for r in (self.records.get(id(m)),)
            ]
            self.records[id(module)] = (spec, flops)
        else:
            flops, subtree = 0.0, []
        self.memo[key] = (shapes, spec, flops, subtree)
        return out

    def _shortcuts_allowed(self) -> bool:
        """Whether a layer's ``_meta_forward`` may stand for its forward
        (``nn.basic.meta_output``): not under a dispatch or torch-function mode, which
        would miss the kernels (the FLOP count of summaries), nor with grad on (the
        output would require grad)."""
        return (
            not self.flops
            and not torch.is_grad_enabled()
            and not torch._C._len_torch_dispatch_stack()
            and not torch._C._is_torch_function_mode_enabled()
        )

    def _fill(self, t: Parameter, shape: tuple[int, ...]) -> None:
        """Replay a memoized module: fill a deferred tensor's shape and stand in for it
        (one that already has a stand-in of that shape, from an earlier call or pass, or
        shared with a module already run, keeps it)."""
        if tuple(t.shape) != shape:
            t.shape = shape
        elif id(t) in self.stood_in:
            return
        self.stand_in(t)


class _NeedsValuesError(RuntimeError):
    """A forward needed real values during infer_shape (raised once, at the innermost
    block; enclosing blocks let it through)."""


def _data_dependent(module: torch.nn.Module, err: BaseException) -> BaseException:
    text = str(err)
    if isinstance(err, _NeedsValuesError):
        return err
    if "meta" not in text.lower() and "data-dependent" not in text.lower():
        return err
    return _NeedsValuesError(
        f"{layer_label(module, locate(module)[1])} needs real values in its forward "
        f"(e.g. .item(), a value-dependent branch or index), so its shapes cannot be inferred "
        f"without data ({text.splitlines()[0]}). Fix: pass one real batch instead of "
        "infer_shape(...)."
    )


class Replica:
    """A private replica of a module tree, for inspecting it without touching it.

    Each module is a shallow copy with its own ``_parameters``/``_buffers``/``_modules``
    tables (and its own Block state); deferred parameters and buffers are private copies
    (:meth:`lateinit.Parameter.private_copy`), READY ones are shared (inference puts meta
    stand-ins into the replica's tables only). References between modules of the tree
    held in plain attributes are redirected to their replicas. Nothing a live module
    holds changes while the replica runs (``docs/design.md``, "Inspecting never
    mutates").
    """

    def __init__(self, root: torch.nn.Module) -> None:
        self._root = root
        self._live_ids: set[int] | None = None  # ids of the tree's modules, when needed
        self.replicas: dict[int, torch.nn.Module] = {}
        self.live_of: dict[int, torch.nn.Module] = {}  # id(replica) -> live module
        self.copies: dict[int, Parameter] = {}  # id(live deferred tensor) -> private copy
        self.pairs: list[tuple[Parameter, Parameter]] = []  # (live, copy)
        with torch._C.DisableTorchFunctionSubclass():  # copying reads skip the gate
            self.root = self._module(root)

    @property
    def live_ids(self) -> set[int]:
        """The ids of the live tree's modules."""
        if self._live_ids is None:
            self._live_ids = {id(m) for m in self._root.modules()}
        return self._live_ids

    def _tensor(self, t: Any) -> Any:
        if not isinstance(t, Parameter):
            if is_lazy(t):  # torch's Lazy* modules: a private uninitialized copy on meta
                kind = (
                    UninitializedParameter
                    if isinstance(t, torch.nn.Parameter)
                    else UninitializedBuffer
                )
                return kind(t.requires_grad, device="meta", dtype=t.dtype)
            return t
        copy = self.copies.get(id(t))
        if copy is None:
            try:
                copy = t.private_copy()
            except AttributeError:  # another thread's first pass made it READY just now
                return t
            self.copies[id(t)] = copy
            self.pairs.append((t, copy))
        return copy

    def _module(self, module: torch.nn.Module) -> torch.nn.Module:
        found = self.replicas.get(id(module))
        if found is not None:
            return found
        cls = type(module)
        clone = cls.__new__(cls)
        self.replicas[id(module)] = clone
        self.live_of[id(clone)] = module
        state = module.__dict__.copy()
        state.pop("forward", None)  # a live Block's first-call wrapper is bound to it
        if "_compiled_call_impl" in state:
            state["_compiled_call_impl"] = None  # hybridize: the compiled live module
        if "_lateinit" in state:
            state["_lateinit"] = state["_lateinit"].copy()
        tensor = self._tensor
        params, buffers = state["_parameters"], state["_buffers"]
        state["_parameters"] = {k: tensor(v) for k, v in params.items()} if params else {}
        state["_buffers"] = {k: tensor(v) for k, v in buffers.items()} if buffers else {}
        if isinstance(module, LazyModuleMixin):
            # Without torch's lazy hook, whose removal would reach the live module's hook
            # table: Inference.call infers the replica's sizes itself.
            hook = getattr(module, "_initialize_hook", None)
            state["_forward_pre_hooks"] = type(module._forward_pre_hooks)(
                (k, v) for k, v in module._forward_pre_hooks.items() if hook is None or k != hook.id
            )
        children = state["_modules"]
        state["_modules"] = {
            k: (self._module(v) if v is not None else None) for k, v in children.items()
        }
        for key in _plain_keys(state):  # e.g. a layer that reads a sibling's sizes
            value = state[key]
            if isinstance(value, torch.nn.Module) and id(value) in self.live_ids:
                state[key] = self._module(value)
        object.__setattr__(clone, "__dict__", state)  # not Module.__setattr__'s checks
        return clone

    def live_records(self, records: dict[int, Any]) -> dict[int, Any]:
        """Per-module records keyed by the live modules' ids instead of the replicas'."""
        return {
            id(self.live_of[key]): value for key, value in records.items() if key in self.live_of
        }

    def apply_shapes(self) -> None:
        """Fill the live deferred tensors' shapes (and size-dependent default initializers)
        with what the replica found, holding their locks, atomically (a conflict with a
        shape another thread filled meanwhile is a ShapeMismatchError and changes no
        shape)."""
        live = [t for t, _ in self.pairs]
        with transaction(live):
            for t, found in self.pairs:
                if not isinstance(t, Parameter):  # READY meanwhile (another thread)
                    continue
                if tuple(found.shape) != tuple(t.shape):
                    t.shape = tuple(found.shape)
                # a layer whose default initializer depends on the sizes it learned
                # (MultiHeadAttention's packed projections) set it on the copy
                if found.default_init is not t.default_init:
                    t.default_init = found.default_init


def _check_inputs(inputs: tuple[Any, ...]) -> None:
    """Refuse what cannot describe an input: nothing, ``None`` first, or bare numbers."""
    bad = not inputs or inputs[0] is None or any(isinstance(x, (bool, int, float)) for x in inputs)
    if bad:
        shown = ", ".join(repr(x) for x in inputs)
        hint = (
            f" Did you mean infer_shape({tuple(inputs)!r})?"
            if inputs and all(isinstance(x, int) and not isinstance(x, bool) for x in inputs)
            else ""
        )
        raise TypeError(
            f"infer_shape({shown}): each input is described by a tensor (any device, meta "
            "included), a shape tuple such as (None, 20), or lateinit.Spec(shape, dtype); "
            "None in a shape means any size (e.g. the batch)." + hint
        )


_STAND_IN = re.compile(r"\b(" + "|".join(str(n) for n in NONE_SIZES) + r")\b")


def _shown_none(err: BaseException) -> BaseException:
    """The error with the stand-in sizes of ``None`` dims shown as ``None`` (the internal
    sizes never appear in a message)."""
    text = str(err)
    if not _STAND_IN.search(text):
        return err
    message = _STAND_IN.sub("None", text)
    if isinstance(err, ShapeMismatchError):
        new: BaseException = err.with_message(message, err.layer or "")
    else:
        try:
            new = type(err)(message)
        except Exception:
            return err
    new.__cause__ = err.__cause__
    return new


def _sized_by_none(
    root: torch.nn.Module, inputs: tuple[Any, ...], first: Replica
) -> ShapeMismatchError | None:
    """The error for a deferred tensor whose shape depends on a ``None`` input dim, or
    ``None`` if there is none (error path only).

    Inputs with ``None`` dims run twice with two stand-in sizes; a parameter that takes a
    size from such a dim (a Dense reading its features from a ``None`` axis) makes the
    second run fail with a mismatch between the two stand-ins, which would read as
    "expects None, got None". A fresh replica run with the second stand-in alone shows
    which shapes changed with it; the first of them is named, with the fix.
    """
    second = Replica(root)
    try:
        with Inference(second.root), torch.no_grad():
            second.root(*to_meta(inputs, NONE_SIZES[1]))
    except Exception:
        pass  # the shapes filled before a later failure still tell
    paths = {id(m): name for name, m in root.named_modules()}
    owners = {
        id(t): (replica_id, name)
        for replica_id, clone in first.replicas.items()
        for name, t in [*clone._parameters.items(), *clone._buffers.items()]
    }
    for live, copy in first.pairs:
        other = second.copies.get(id(live))
        if other is None or id(copy) not in owners:
            continue
        dims = {
            i
            for i, (a, b, known) in enumerate(zip(copy.shape, other.shape, live.shape, strict=True))
            if known < 0 and a != b
        }
        if not dims:
            continue
        live_id, name = owners[id(copy)]
        module = first.live_of[id(first.replicas[live_id])]
        shown = ", ".join("None" if i in dims else str(d) for i, d in enumerate(copy.shape))
        return ShapeMismatchError(
            f"{layer_label(module, paths.get(live_id, ''))} would take its {name}'s shape "
            f"({shown}) from an input dim given as None (any size), but a parameter's shape "
            "must be fixed. Fix: give that input dim a size in the input spec (None is for "
            "dims the parameters do not depend on, such as the batch or a sequence length)",
            param=name,
            layer=paths.get(live_id, ""),
        )
    return None


def infer_shape(root: torch.nn.Module, *inputs: Any, flops: bool = False) -> Any:
    """Infer every parameter's shape of ``root`` without data; see ``Block.infer_shape``.

    The forward runs on a private :class:`Replica` of the modules, without a lock; the
    shapes found are then applied to the live deferred parameters under their locks.
    With ``flops=True`` also returns the per-module records (output spec, FLOPs) keyed by
    ``id(module)``, for summaries.
    """
    _check_inputs(inputs)
    sizes = NONE_SIZES if has_none(inputs) else NONE_SIZES[:1]
    rng = torch.random.get_rng_state()
    specs: list[Any] = []
    record: dict[int, tuple[Any, float]] = {}
    replica = Replica(root)
    try:
        ctx = Inference(replica.root, flops=flops)
        with ctx, torch.no_grad():  # one context for both runs: the stand-ins stay
            for i, size in enumerate(sizes):
                meta_inputs = to_meta(inputs, size)
                if flops and i == 0:
                    with FlopCounterMode(display=False) as counter:
                        ctx.counter = counter
                        out = replica.root(*meta_inputs)
                    ctx.counter = None
                    record = replica.live_records(ctx.records)
                else:
                    out = replica.root(*meta_inputs)
                specs.append(_to_spec(out))
    except Exception as err:
        if len(specs) == 1:  # the second run failed where the first passed
            culprit = _sized_by_none(root, inputs, replica)
            if culprit is not None:
                raise culprit from None
        shown = _shown_none(err)
        if shown is err:
            raise
        raise shown from None
    finally:
        torch.random.set_rng_state(rng)  # meta ops draw nothing; be sure of it
    replica.apply_shapes()
    result = specs[0] if len(specs) == 1 else merge_specs(specs[0], specs[1])
    return (result, record) if flops else result  # record: id(module) -> (spec, FLOPs)
