"""Deferred parameters: the DECLARED -> SHAPED -> READY lifecycle.

A :class:`Parameter` is a ``torch.nn.Parameter`` whose shape may hold unknown dims
(``-1``). Until it is READY it holds an empty placeholder tensor that carries only its
dtype and device, and every tensor use raises :class:`DeferredInitializationError`.
Materializing allocates the full tensor, fills it with the initializer under
``torch.no_grad()``, and swaps the object's class to plain ``torch.nn.Parameter``: the
object stays the same (optimizers built earlier keep working) and nothing of lateinit
remains on the hot path.

This module sits just above the leaf (:mod:`lateinit.shapes`) and :mod:`lateinit.init`
and imports nothing else of lateinit. Integrations that must see tensor uses of deferred
parameters (DDP/FSDP2 in :mod:`lateinit.distributed`) plug into the gate through
:func:`register_integration`. The lifecycle and the torch facts it relies on are described
in ``docs/design.md``.
"""

from __future__ import annotations

import enum
import itertools
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from . import init as _init
from .shapes import (
    UNKNOWN,
    DeferredInitializationError,
    ShapeMismatchError,
    fmt_shape,
    not_ready_fixes,
)

__all__ = [
    "Parameter",
    "ParamRecord",
    "State",
    "DeferredInitializationError",
    "GateIntegration",
    "deferred_buffer",
    "is_deferred",
    "state",
    "record_of",
    "recording_tool",
    "placeholder",
    "register_integration",
    "integration_for",
    "hold",
    "transaction",
    "assign",
    "set_data",
    "initialize_parameter",
    "initialize_deferred",
    "reinitialize",
    "device_arg",
    "as_dtype",
    "GRAD_REQS",
]

# Locks belong to parameters, not to the process: each record holds a reentrant lock, and
# a transaction takes the locks of the parameters it may change, in one global order (the
# records' creation order), so two first passes of one network serialize, unrelated
# networks never wait for each other, and no two transactions deadlock over shared
# parameters (docs/design.md, "Threads").
_ORDER = itertools.count()


_seed_cells = threading.local()


def _draw_seed() -> int:
    """Draw a seed from torch's global CPU generator (one int64), into this thread's
    reused scalar (allocating one per parameter cost as much as the draw)."""
    cell = getattr(_seed_cells, "cell", None)
    if cell is None:
        with torch.inference_mode(False):  # usable outside inference mode later
            cell = torch.empty((), dtype=torch.int64, device="cpu")
        if type(cell) is not torch.Tensor:  # e.g. a fake tensor mode: not kept
            return int(cell.random_())
        _seed_cells.cell = cell
    return int(cell.random_())


class State(str, enum.Enum):
    """A parameter's place in the lifecycle; compares equal to its name (`"READY"`).

    Every lateinit parameter goes DECLARED -> SHAPED -> READY, and only forward:

    - `DECLARED`: some dims are unknown (`-1` in its shape); no memory.
    - `SHAPED`: every dim is known (from the first batch's shapes,
      [`Block.infer_shape`][lateinit.Block.infer_shape], or a file), still no memory.
    - `READY`: created and filled by its initializer (or given values); from then on it
      is a plain `torch.nn.Parameter`.

    [`state`][lateinit.state] tells the state of any tensor.

    Examples:
        >>> import torch
        >>> import lateinit
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(4))
        >>> lateinit.state(net[0].weight)
        DECLARED
        >>> _ = net.infer_shape((1, 3))
        >>> lateinit.state(net[0].weight)
        SHAPED
        >>> _ = net(torch.ones(1, 3))
        >>> lateinit.state(net[0].weight) == lateinit.State.READY == "READY"
        True
    """

    DECLARED = "DECLARED"  #: some dims unknown (-1), no storage
    SHAPED = "SHAPED"  #: every dim known, no storage yet
    READY = "READY"  #: a plain torch tensor with values

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__
    __repr__ = __str__


class ParamRecord:
    """What a deferred parameter knows about itself (lateinit's record of it).

    ``shape`` is the logical shape (-1 for unknown dims); ``init`` its own initializer;
    ``registered`` the one set by ``initialize(init)``; ``default`` the layer's fallback;
    ``seed`` its own seed, drawn at declaration. ``name`` is its attribute name, ``path``
    its structural name in the network last called, ``owner`` the layer type and ``hint``
    the constructor argument that would have given the input size (``in_units``).
    ``device_explicit`` tells whether its device was chosen (so inputs do not move it),
    ``dtype_explicit`` whether its dtype was (``Parameter(dtype=)``, ``initialize(dtype=)``,
    ``.to(dtype)``; otherwise a loaded file's dtype is kept);
    ``buffer`` that it becomes a plain tensor, not a parameter. The record stays in a READY
    parameter's ``__dict__`` (for ``force_reinit``): :func:`record_of` finds it.
    """

    __slots__ = (
        "buffer",
        "default",
        "device_explicit",
        "dtype_explicit",
        "hint",
        "init",
        "lock",
        "name",
        "order",
        "owner",
        "path",
        "registered",
        "seed",
        "shape",
    )

    def __init__(self, shape: Sequence[int], init: Any, seed: int) -> None:
        self.shape: tuple[int, ...] = tuple(shape)
        self.init = init
        self.registered: Any = None
        self.default: Any = None
        self.seed = seed
        self.name = ""
        self.path = ""
        self.owner = ""
        self.hint = ""
        self.device_explicit = False
        self.dtype_explicit = False
        self.buffer = False
        self.lock = threading.RLock()
        self.order = next(_ORDER)

    def copy(self) -> ParamRecord:
        """An independent copy (for ``deepcopy`` and conversions), with its own lock."""
        new = ParamRecord.__new__(ParamRecord)
        new.__setstate__(self.__getstate__())
        return new

    def __getstate__(self) -> dict[str, Any]:
        return {
            slot: getattr(self, slot)
            for slot in ParamRecord.__slots__
            if slot not in ("lock", "order")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for slot in ParamRecord.__slots__:
            setattr(self, slot, state.get(slot, False))
        self.lock = threading.RLock()
        self.order = next(_ORDER)

    @property
    def effective_init(self) -> _init.Initializer:
        """The initializer materializing runs: its own, else the registered one, else the
        layer's default, else ``torch.nn.Linear``'s distribution."""
        for candidate in (self.init, self.registered, self.default):
            if candidate is not None:
                return _init.resolve(candidate)
        return _init.linear_default()

    @property
    def label(self) -> str:
        """The name to show in messages: structural path, else attribute name."""
        return self.path or self.name or "<unnamed>"


def _normalize_shape(shape: Any) -> tuple[int, ...]:
    if type(shape) is tuple:  # the common case, e.g. (units, -1): nothing to convert
        for d in shape:
            if type(d) is not int or d < UNKNOWN:
                break
        else:
            return shape
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple(UNKNOWN if d is None else int(d) for d in shape)
    except TypeError:
        raise TypeError(
            f"a parameter shape must be a sequence of ints (-1 or None for unknown), got {shape!r}"
        ) from None
    for d in dims:
        if d < UNKNOWN:
            raise ValueError(f"invalid dim {d} in parameter shape {shape!r}: use -1 for unknown")
    return dims


# ---------------------------------------------------------------------------------------
# The journal of a first pass: every change made to a parameter is recorded so that a
# failure part-way can put every parameter back where it was.


class Journal:
    """Records parameter changes made during one first pass, to roll them back."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, ...]] = []
        #: ids of the records whose locks the outermost transaction holds: a nested
        #: first pass over parameters among them needs no transaction of its own
        self.held: frozenset[int] = frozenset()

    def record_shape(self, param: Parameter, old: tuple[int, ...]) -> None:
        self._undo.append(("shape", param, old))

    def record_storage(self, param: torch.Tensor, old_data: torch.Tensor, old_cls: type) -> None:
        self._undo.append(("storage", param, old_data, old_cls))

    def record_undo(self, undo: Callable[[], None]) -> None:
        """Record a change that ``undo()`` reverts (e.g. a sharded parameter's swap)."""
        self._undo.append(("call", undo))

    def rollback(self) -> None:
        """Undo every recorded change, newest first; never stops part-way."""
        for entry in reversed(self._undo):
            if entry[0] == "shape":
                _, param, old = entry
                param._record.shape = old
            elif entry[0] == "call":
                entry[1]()
            else:
                _, param, old_data, old_cls = entry
                _restore_storage(param, old_data, old_cls)
        self._undo.clear()


_journal = threading.local()


def active_journal() -> Journal | None:
    return getattr(_journal, "value", None)


def set_journal(journal: Journal | None) -> None:
    _journal.value = journal


class hold:
    """Hold the locks of these tensors' records (lateinit parameters, deferred or READY;
    other tensors have none), taken in the records' global order and released in
    reverse. Reentrant: a thread may hold a lock again.

    A class rather than a generator context manager: every first pass enters one per
    block, so it is kept lean (docs/design.md, "Speed")."""

    __slots__ = ("_locks", "_records", "_taken")

    def __init__(self, tensors: Iterable[Any]) -> None:
        records = []
        last = -1
        ordered = True  # a tree's records usually come in creation order already
        for t in tensors:
            rec = record_of(t)
            if rec is not None:
                records.append(rec)
                if rec.order <= last:
                    ordered = False
                last = rec.order
        if not ordered:  # out of order, or one record twice (a shared parameter)
            records = sorted(dict.fromkeys(records), key=_order_of)
        self._records = records
        self._locks = [rec.lock for rec in records]
        self._taken = 0

    def __enter__(self) -> None:
        taken = 0
        try:
            for lock in self._locks:
                lock.acquire()
                taken += 1
        finally:
            self._taken = taken

    def __exit__(self, *exc: Any) -> None:
        if self._taken:
            for lock in reversed(self._locks[: self._taken]):
                lock.release()
            self._taken = 0


def _order_of(rec: ParamRecord) -> int:
    return rec.order


class transaction:
    """Run a block of parameter changes atomically: holding the locks of the tensors in
    ``scope`` (see :class:`hold`), journaled, and rolled back (with torch's RNG state, if
    ``restore_rng``) if it raises. Nested inside another transaction of this thread it
    joins that one (still taking its own scope's locks). Yields True for the outermost."""

    __slots__ = ("_hold", "_journal", "_restore_rng", "_rng")

    def __init__(self, scope: Iterable[Any] = (), *, restore_rng: bool = False) -> None:
        self._hold = hold(scope)
        self._restore_rng = restore_rng
        self._journal: Journal | None = None
        self._rng: Any = None

    def __enter__(self) -> bool:
        self._hold.__enter__()
        if getattr(_journal, "value", None) is not None:
            return False
        self._journal = Journal()
        self._journal.held = frozenset(map(id, self._hold._records))
        try:
            self._rng = _save_rng() if self._restore_rng else None
        except BaseException:
            self._hold.__exit__(None, None, None)
            raise
        _journal.value = self._journal
        return True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        journal = self._journal
        try:
            if journal is not None:
                try:
                    if exc_type is not None:
                        journal.rollback()
                        if self._rng is not None:
                            _restore_rng(self._rng)
                finally:
                    _journal.value = None
        finally:
            self._hold.__exit__(None, None, None)


def _save_rng() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.random.get_rng_state(), cuda


def _restore_rng(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    cpu, cuda = state
    torch.random.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def set_storage(param: torch.Tensor, data: torch.Tensor, cls: type) -> None:
    """Point ``param`` at ``data`` and make it an instance of ``cls``, in place (the Python
    object stays the same). Not journaled: see :func:`commit_storage`."""
    with torch._C.DisableTorchFunctionSubclass():
        if torch._has_compatible_shallow_copy_type(param, data):
            param.data = data
        else:  # e.g. cpu <-> meta: swap the whole tensor, keeping the Python object
            holder = torch.Tensor._make_subclass(torch.nn.Parameter, data, param.requires_grad)
            holder.__dict__.update(param.__dict__)
            torch.utils.swap_tensors(param, holder)
    if type(param) is not cls:
        param.__class__ = cls


def _restore_storage(param: torch.Tensor, old_data: torch.Tensor, old_cls: type) -> None:
    """Put back ``param``'s previous storage and class during a rollback.

    Going back across device types (meta <-> cpu) needs ``swap_tensors``, which torch
    refuses while the failed pass's autograd graph still holds the parameter. A deferred
    placeholder holds no data, so an empty one on the current device type is as good: the
    parameter is deferred again, with the same dtype, and (its device not having been set
    explicitly) will move to the device of the next input.
    """
    try:
        set_storage(param, old_data, old_cls)
    except RuntimeError:
        if old_cls is torch.nn.Parameter or old_cls is torch.Tensor:
            raise
        with torch._C.DisableTorchFunctionSubclass():
            current = param.data
        set_storage(param, torch.empty(0, dtype=old_data.dtype, device=current.device), old_cls)


def placeholder(param: torch.Tensor) -> torch.Tensor:
    """The tensor behind ``param`` as a plain tensor, past the gate: for a deferred
    parameter its empty placeholder (which carries the dtype and device it will be
    created with)."""
    with torch._C.DisableTorchFunctionSubclass():
        return param.data


# Tensor methods that work before READY. Conversions return a deferred copy; queries
# answer from the placeholder (dtype, device) or from the logical shape.
_CONVERSIONS = {"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "type", "detach"}
_QUERIES = {
    "is_floating_point",
    "is_complex",
    "get_device",
    "__hash__",
    "_has_compatible_shallow_copy_type",
    "requires_grad_",
    "size",
    "dim",
    "numel",
    "__format__",
    "__reduce_ex__",
    "__eq__",
    "__ne__",
}
_OK_ATTRS = {
    "dtype",
    "device",
    "requires_grad",
    "grad",
    "is_leaf",
    "grad_fn",
    "retains_grad",
    "layout",
    "is_cuda",
    "is_meta",
    "is_cpu",
    "is_sparse",
    "is_quantized",
    "is_mkldnn",
    "is_nested",
    "_is_view",
    "ndim",
    "shape",
    "_base",
    "is_xpu",
    "is_mps",
    "names",
    "name",  # torch's (read-only, None): Gluon's p.name is collect_params()'s key
    "_backward_hooks",
    "_post_accumulate_grad_hooks",
}


class Parameter(torch.nn.Parameter):
    """A parameter whose shape may be unknown until the first batch.

    What a layer declares in its constructor (`Parameter((units, -1))`) when an input
    size is not known. It goes through the lifecycle DECLARED (some dims `-1`, no
    memory) -> SHAPED (every dim known, no memory) -> READY: the layer's
    [`infer_param_shapes`][lateinit.Block.infer_param_shapes] fills the unknown dims
    from the first input (`p.shape = full_shape`; known dims must agree), then the
    parameter is created on its device, filled by its initializer from its own seed
    (drawn at declaration, so values do not depend on when parameters are created). The
    object stays the same throughout: once READY it is a plain `torch.nn.Parameter`
    (no longer an instance of this class), so a READY network runs plain torch. Until
    then any computation with it raises
    [`DeferredInitializationError`][lateinit.DeferredInitializationError].

    Call it as `Parameter(shape, init=None, *, dtype=None, device=None,
    requires_grad=True)`, or with Gluon's signature, `Parameter(name, grad_req="write",
    shape=..., dtype=None, lr_mult=1.0, wd_mult=1.0, init=None, ...)` (a `str` first;
    a `0` dim in a Gluon shape is unknown too). Its Python signature is therefore
    `(*args, **kwargs)`; the arguments are listed under "Other Parameters".

    Args:
        *args: `shape`, then `init` (lateinit's form); or Gluon's `name`, then
            `grad_req`, `shape`...
        **kwargs: any of them by name, and the keyword-only ones below.

    Other Parameters:
        shape (Sequence[int]): the full shape, with `-1` (or `None`) for each unknown
            dim.
        init (Initializer | str | Callable | None): its own initializer (an
            [`Initializer`][lateinit.init.Initializer], a name such as `"zeros"`, or a
            `torch.nn.init` function); when `None`, the one registered by
            [`Block.initialize(init)`][lateinit.Block.initialize] or the layer's default
            is used.
        dtype (torch.dtype | None): dtype of the values once created (default: torch's
            default dtype).
        device (torch.device | str | None): device on which the values will be created
            (default: the device of the first input, or the one given to
            `initialize`/`.to`).
        requires_grad (bool): as in torch.
        default_init (Initializer | str | Callable | None): for layer authors: the
            layer's fallback initializer (see `default_init`).
        in_size_arg (str): for layer authors: the constructor argument that would give
            the unknown size (`"in_units"`), named in error messages.

    Examples:
        >>> import torch
        >>> import lateinit
        >>> p = lateinit.Parameter((4, -1), init="ones")
        >>> p
        Parameter(shape=(4, -1), dtype=float32, device=cpu, state=DECLARED)
        >>> p * 2
        Traceback (most recent call last):
        ...
        lateinit.shapes.DeferredInitializationError: Parameter '<unnamed>' with shape (4, -1) ...
        >>> p.shape = (4, 3)  # what a layer's infer_param_shapes does
        >>> p.state
        SHAPED
        >>> p.initialize()  # created now that the shape is known
        >>> lateinit.state(p), type(p) is torch.nn.Parameter, p.sum().item()
        (READY, True, 12.0)
    """

    _record: ParamRecord

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A deferred parameter is told by its exact type on the hot paths (type(p) is
        # Parameter), and becomes a plain torch.nn.Parameter once READY: a subclass
        # would be neither, so it is refused here rather than misbehave later.
        raise TypeError(
            f"lateinit.Parameter cannot be subclassed ({cls.__name__}): a deferred "
            "parameter becomes a plain torch.nn.Parameter once it is READY. Fix: declare "
            "it with lateinit.Parameter(shape, init) and keep extra state on the layer"
        )

    def __new__(cls, *args: Any, **kwargs: Any) -> Parameter:
        # Gluon's signature, Parameter(name, grad_req=, shape=, ...), is told apart from
        # lateinit's, Parameter(shape, init), by the first argument: a str is a name.
        if (args and isinstance(args[0], str)) or (not args and "name" in kwargs):
            return cls._gluon(*args, **kwargs)
        return cls._declare(*args, **kwargs)

    @classmethod
    def _gluon(
        cls,
        name: str,
        grad_req: str = "write",
        shape: Sequence[int] | int | None = None,
        dtype: Any = None,
        lr_mult: float = 1.0,
        wd_mult: float = 1.0,
        init: Any = None,
        allow_deferred_init: bool = False,
        differentiable: bool = True,
        stype: str = "default",
        grad_stype: str = "default",
        *,
        device: torch.device | str | None = None,
        ctx: Any = None,
        default_init: Any = None,
        in_size_arg: str = "",
    ) -> Parameter:
        """Gluon's ``Parameter(name, grad_req="write", shape=None, dtype=, lr_mult=1.0,
        wd_mult=1.0, init=None, allow_deferred_init=False, differentiable=True)``; a 0 (or
        -1) dim in ``shape`` is unknown. Every lateinit parameter may be deferred, so
        ``allow_deferred_init`` changes nothing."""
        if not isinstance(name, str):
            raise TypeError(f"Parameter: name must be a str, got {name!r}")
        if shape is None:
            raise TypeError(
                f"Parameter({name!r}): give shape=, with 0 for each unknown dim (lateinit "
                "needs the number of dims when the parameter is declared)"
            )
        if stype != "default" or grad_stype != "default":
            raise ValueError(f"Parameter({name!r}): sparse storage types are not supported")
        if grad_req not in GRAD_REQS:
            raise ValueError(
                f"Parameter({name!r}): grad_req must be one of {GRAD_REQS}, got {grad_req!r}"
            )
        if not differentiable:
            grad_req = "null"
        self = cls._declare(
            gluon_shape(shape),
            init,
            dtype=as_dtype(dtype),
            device=device_arg(device, ctx),
            requires_grad=grad_req != "null",
            default_init=default_init,
            in_size_arg=in_size_arg,
        )
        self._record.name = name
        self.__dict__.update(grad_req=grad_req, lr_mult=lr_mult, wd_mult=wd_mult)
        return self

    @classmethod
    def _declare(
        cls,
        shape: Sequence[int] | int,
        init: Any = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        requires_grad: bool = True,
        default_init: Any = None,
        in_size_arg: str = "",
        **state: Any,
    ) -> Parameter:
        """lateinit's ``Parameter(shape, init=None, *, dtype=, device=, requires_grad=)``."""
        if state:  # type(p)(p.to(device), **p.__dict__): accelerate's init_empty_weights
            return cls._rebuilt(shape, state, requires_grad)
        dims = _normalize_shape(shape)
        # resolved now: a bad initializer fails here, not at the first batch, and the
        # first batch does not resolve names again
        own = _init.resolve(init) if init is not None else None
        default = _init.resolve(default_init) if default_init is not None else None
        empty = torch.empty(0, dtype=dtype or torch.get_default_dtype(), device=device)
        self = torch.Tensor._make_subclass(cls, empty, requires_grad)
        self._record = ParamRecord(dims, own, _draw_seed())
        self._record.device_explicit = device is not None
        self._record.dtype_explicit = dtype is not None
        self._record.default = default
        self._record.hint = in_size_arg
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # torch.nn.Parameter has none
        pass

    @classmethod
    def _rebuilt(cls, tensor: Any, state: dict[str, Any], requires_grad: bool) -> Parameter:
        """A deferred parameter re-created by a tool that copies parameters as
        ``type(p)(p.to(device), **p.__dict__)`` (accelerate's ``init_empty_weights``):
        the same record (sizes, initializer, seed), the converted placeholder."""
        record = state.pop("_record", None)
        state.pop("is_deferred", None)
        gluon = {k: state.pop(k) for k in _GLUON_ATTRS if k in state}
        if not isinstance(record, ParamRecord) or state or not isinstance(tensor, torch.Tensor):
            names = ", ".join(sorted(state)) or "_record"
            raise TypeError(
                f"Parameter() got unexpected keyword arguments ({names}); it takes "
                "Parameter(shape, init=None, *, dtype=, device=, requires_grad=, "
                "default_init=, in_size_arg=)"
            )
        source = placeholder(tensor)
        empty = torch.empty(0, dtype=source.dtype, device=source.device)
        new = cls.from_record(record, empty, requires_grad)
        new.__dict__.update(gluon)
        return new

    @classmethod
    def from_record(
        cls, record: ParamRecord, empty: torch.Tensor, requires_grad: bool
    ) -> Parameter:
        """Internal: a deferred parameter with this record and this (empty) placeholder.

        Plumbing for lateinit's own copies (`deepcopy`, pickling, tools that rebuild
        parameters as `type(p)(p.to(device), **p.__dict__)`); not meant for user code,
        which declares parameters with `Parameter(shape, init)`. The record is used as
        it is, not copied: the new parameter and any other holder of `record` share its
        shape, initializer and seed (use `private_copy` for an independent copy).

        Args:
            record: lateinit's record of a parameter (`Parameter.record`).
            empty: an empty tensor (`numel() == 0`) whose dtype and device are where the
                values will be created.
            requires_grad: as in torch.

        Returns:
            A new deferred parameter (DECLARED or SHAPED, as `record.shape` says).

        Examples:
            >>> import torch
            >>> import lateinit
            >>> p = lateinit.Parameter((2, -1))
            >>> q = lateinit.Parameter.from_record(p.record, torch.empty(0), True)
            >>> q.record is p.record, q.shape
            (True, torch.Size([2, -1]))
        """
        self = torch.Tensor._make_subclass(cls, empty, requires_grad)
        self._record = record
        return self

    # -- lifecycle -------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:  # type: ignore[override]
        """The logical shape, ``-1`` for each unknown dim."""
        return torch.Size(self._record.shape)

    @shape.setter
    def shape(self, full_shape: Sequence[int]) -> None:
        """Fill unknown dims. Known dims must agree: a conflict is a ShapeMismatchError."""
        new = _normalize_shape(full_shape)
        old = self._record.shape
        if len(new) != len(old):
            raise ShapeMismatchError(
                f"parameter {self._record.label!r} has {len(old)} dims {fmt_shape(old)}, "
                f"but the input implies {len(new)} dims {fmt_shape(new)}",
                param=self._record.label,
                expected=old,
                got=new,
            )
        merged = []
        for dim, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != UNKNOWN and b != UNKNOWN and a != b:
                raise ShapeMismatchError(
                    f"parameter {self._record.label!r} has shape {fmt_shape(old)}, but the input "
                    f"implies {fmt_shape(new)} (dim {dim}: {a} vs {b})",
                    param=self._record.label,
                    expected=old,
                    got=new,
                    dim=dim,
                )
            merged.append(a if a != UNKNOWN else b)
        merged_t = tuple(merged)
        if merged_t != old:
            journal = active_journal()
            if journal is not None:
                journal.record_shape(self, old)
            self._record.shape = merged_t

    @property
    def is_deferred(self) -> bool:
        """True until the parameter is READY (then it is a plain `torch.nn.Parameter`, and
        [`lateinit.is_deferred`][lateinit.is_deferred] answers for any tensor)."""
        return True

    @property
    def is_shaped(self) -> bool:
        """True when every dim is known (SHAPED): it can be created."""
        return UNKNOWN not in self._record.shape

    @property
    def state(self) -> State:
        """`DECLARED` (some dims unknown) or `SHAPED` (all known, no storage); see
        [`lateinit.state`][lateinit.state] for any tensor (a READY one included)."""
        return State.SHAPED if self.is_shaped else State.DECLARED

    @property
    def record(self) -> ParamRecord:
        """lateinit's record of this parameter (a `ParamRecord`): its logical shape, its
        initializers, its seed and its names. Internal; it stays with the parameter once
        READY (for `force_reinit`)."""
        return self._record

    @property
    def label(self) -> str:
        """The parameter's name for messages (structural path, else attribute name)."""
        return self._record.label

    @property
    def default_init(self) -> Any:
        """The layer's fallback initializer (used when neither the parameter's own nor
        one registered by ``initialize(init)`` is set); a layer whose default depends on
        sizes it learns later (``MultiHeadAttention``) sets it again then."""
        return self._record.default

    @default_init.setter
    def default_init(self, value: Any) -> None:
        self._record.default = None if value is None else _init.resolve(value)

    @property
    def initializer(self) -> _init.Initializer:
        """The initializer that creating the values will run: its own, else the one
        registered by `initialize(init)`, else the layer's default, else
        [`init.linear_default()`][lateinit.init.linear_default]. Setting it sets the
        parameter's own (a name or callable is resolved)."""
        return self._record.effective_init

    @initializer.setter
    def initializer(self, value: Any) -> None:
        self._record.init = None if value is None else _init.resolve(value)

    # -- Gluon's attributes and methods (docs/design.md, "Gluon's API") ------------------
    # Stored in the object's __dict__, they stay plain attributes once the parameter is
    # READY (the same object, then a plain torch.nn.Parameter).
    @property
    def grad_req(self) -> str:
        """Gluon's ``"write"``, ``"add"`` or ``"null"`` (no gradient:
        ``requires_grad=False``). Once READY this is a plain attribute: use
        ``requires_grad_()`` (or ``ParameterDict.setattr("grad_req", ...)``) there."""
        return self.__dict__.get("grad_req", "write" if self.requires_grad else "null")

    @grad_req.setter
    def grad_req(self, value: str) -> None:
        if value not in GRAD_REQS:
            raise ValueError(f"grad_req must be one of {GRAD_REQS}, got {value!r}")
        self.__dict__["grad_req"] = value
        self.requires_grad_(value != "null")

    @property
    def lr_mult(self) -> float:
        """Gluon's learning-rate multiplier (1.0 unless set)."""
        return self.__dict__.get("lr_mult", 1.0)

    @lr_mult.setter
    def lr_mult(self, value: float) -> None:
        self.__dict__["lr_mult"] = value

    @property
    def wd_mult(self) -> float:
        """Gluon's weight-decay multiplier (1.0 unless set)."""
        return self.__dict__.get("wd_mult", 1.0)

    @wd_mult.setter
    def wd_mult(self, value: float) -> None:
        self.__dict__["wd_mult"] = value

    def initialize(
        self,
        init: Any = None,
        device: torch.device | str | None = None,
        default_init: Any = None,
        force_reinit: bool = False,
        *,
        ctx: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Gluon's `Parameter.initialize`: register `init` and create the values if the
        shape is known.

        A DECLARED parameter keeps `init` and is created with it once its shape is
        known; a SHAPED one is created now (READY). Its own initializer (`init=` at
        declaration) still wins, as in Gluon. This method exists only while the
        parameter is deferred: once READY it is a plain `torch.nn.Parameter` (re-draw a
        whole network with `Block.initialize(force_reinit=True)`).

        Args:
            init: the initializer to register (an
                [`Initializer`][lateinit.init.Initializer], a name, or a callable).
            device: where the values are created.
            default_init: a fallback initializer, used if the parameter has no default
                yet.
            force_reinit: accepted for Gluon's signature; a deferred parameter has no
                values to re-draw.
            ctx: Gluon's name for `device`.
            dtype: the dtype of the values.

        Examples:
            >>> import torch
            >>> import lateinit
            >>> from lateinit import init
            >>> p = lateinit.Parameter((2, 3))  # SHAPED
            >>> p.initialize(init.Constant(0.5))
            >>> lateinit.state(p), p.tolist()
            (READY, [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
            >>> q = lateinit.Parameter((2, -1))  # DECLARED: init waits for the shape
            >>> q.initialize(init.One())
            >>> q.state, q.initializer
            (DECLARED, One())
        """
        if default_init is not None and self._record.default is None:
            self.default_init = default_init
        initialize_parameter(
            self, init, device=device_arg(device, ctx), dtype=dtype, force_reinit=force_reinit
        )

    def set_data(self, value: Any) -> None:
        """Gluon's `set_data` while deferred: READY with a copy of `value`.

        The copy is in the parameter's dtype and on its device; known dims must agree
        with `value`'s shape (a [`ShapeMismatchError`][lateinit.ShapeMismatchError]
        otherwise) and unknown ones are taken from it. No initializer runs. Once READY
        the parameter is a plain torch tensor: use
        `with torch.no_grad(): p.copy_(value)`.

        Args:
            value: a tensor, array or nested list.

        Examples:
            >>> import torch
            >>> import lateinit
            >>> p = lateinit.Parameter((2, -1))
            >>> p.set_data(torch.ones(2, 3, dtype=torch.float64))
            >>> lateinit.state(p), p.dtype, tuple(p.shape)
            (READY, torch.float32, (2, 3))
        """
        set_data(self, value)

    def list_ctx(self) -> list[torch.device]:
        """Gluon's `list_ctx`: the device the values will be created on.

        Returns:
            A list of one device.

        Examples:
            >>> import lateinit
            >>> lateinit.Parameter((2, -1)).list_ctx()
            [device(type='cpu')]
        """
        return [self.device]

    def reset_ctx(self, ctx: Any) -> None:
        """Gluon's `reset_ctx` while deferred: create the values on `ctx` instead.

        The device is then explicit: the first batch's device no longer moves it.

        Args:
            ctx: a device (`"cuda:0"`, a `torch.device`).

        Examples:
            >>> import lateinit
            >>> p = lateinit.Parameter((2, -1))
            >>> p.reset_ctx("meta")
            >>> p.list_ctx()
            [device(type='meta')]
        """
        with transaction([self]):
            move_placeholder(self, device_arg(ctx, None), None)
            self._record.device_explicit = True

    def cast(self, dtype: Any) -> None:
        """Gluon's `cast` while deferred: create the values in `dtype` instead.

        Args:
            dtype: a torch dtype or a name such as `"float16"`.

        Examples:
            >>> import lateinit
            >>> p = lateinit.Parameter((2, -1))
            >>> p.cast("float16")
            >>> p
            Parameter(shape=(2, -1), dtype=float16, device=cpu, state=DECLARED)
        """
        with transaction([self]):
            move_placeholder(self, None, as_dtype(dtype))

    def __repr__(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return (
            f"Parameter(shape={fmt_shape(self._record.shape)}, dtype={dtype}, "
            f"device={self.device}, state={self.state})"
        )

    __str__ = __repr__

    # -- copies ----------------------------------------------------------------------
    def _deferred_copy(self, empty: torch.Tensor | None = None) -> Parameter:
        new = Parameter.from_record(
            self._record.copy(),
            placeholder(self).clone() if empty is None else empty,
            self.requires_grad,
        )
        new.__dict__.update(_gluon_attrs(self))
        return new

    def private_copy(self) -> Parameter:
        """Internal: a deferred copy with its own record and a meta placeholder.

        Filling the copy's shape changes nothing anyone else holds: data-free inference
        ([`Block.infer_shape`][lateinit.Block.infer_shape]) runs layers on such copies.
        Not meant for user code; the copy is never created (its device is `meta`).

        Returns:
            A new deferred parameter with a copy of this one's record (same shape,
            initializers and seed) on the `meta` device.

        Examples:
            >>> import lateinit
            >>> p = lateinit.Parameter((4, -1))
            >>> q = p.private_copy()
            >>> q.shape = (4, 3)
            >>> p.shape, q.shape, q.device
            (torch.Size([4, -1]), torch.Size([4, 3]), device(type='meta'))
        """
        empty = torch.empty(0, dtype=placeholder(self).dtype, device="meta")
        return self._deferred_copy(empty)

    def __deepcopy__(self, memo: dict[int, Any]) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        new = self._deferred_copy()
        memo[id(self)] = new
        return new

    def __reduce_ex__(self, protocol: Any) -> Any:
        raw = placeholder(self)
        return (
            _rebuild,
            (
                self._record.__getstate__(),
                raw.dtype,
                str(raw.device),
                self.requires_grad,
                _gluon_attrs(self),
            ),
        )

    # -- torch function gate -----------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[override]
        try:
            plain = func in _PLAIN_GETTERS  # e.g. p.is_leaf, read by every optimizer
        except TypeError:  # an unhashable callable handed over by user code
            plain = False
        if plain:
            return torch._C._disabled_torch_function_impl(func, (), args, kwargs or {})
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "__get__":
            attr = getattr(getattr(func, "__self__", None), "__name__", "")
            if attr == "ndim":
                return len(args[0]._record.shape)
            if attr in _OK_ATTRS:
                if _INTEGRATIONS and attr in _WATCHED_ATTRS and _process_group_exists():
                    found = _integration_caller()
                    if found is not None:  # e.g. torch's DDP: see register_integration
                        found[0].on_read(args[0], found[1])
                return _disabled(func, args, kwargs)
            raise use_error(args[0], f".{attr}")
        if name == "__set__":
            attr = getattr(getattr(func, "__self__", None), "__name__", "")
            value = args[1] if len(args) > 1 else None
            if (
                attr == "data"
                and isinstance(args[0], Parameter)
                and isinstance(value, torch.Tensor)
                and not isinstance(value, Parameter)
            ):  # p.data = values: the parameter becomes READY with them (docs/design.md)
                assign(args[0], value)
                return None
            return _disabled(func, args, kwargs)
        if name == "__delete__":
            return _disabled(func, args, kwargs)
        self = _first_deferred((*args, *kwargs.values()))
        if self is None:  # e.g. an op on plain tensors that only mentions our type
            return _disabled(func, args, kwargs)
        if name in _CONVERSIONS and args and args[0] is self:
            return _convert(self, name, args[1:], kwargs)
        if name in _QUERIES and args and args[0] is self:
            return _query(self, name, func, args, kwargs)
        found = _integration_caller() if _INTEGRATIONS else None
        if found is not None:  # e.g. torch's FSDP2: see register_integration
            return found[0].on_use(self, found[1], func, args, kwargs)
        raise use_error(self, op_name(func))


# ---------------------------------------------------------------------------------------
# The registration point for integrations (docs/design.md, "Integrations").


@dataclass(frozen=True)
class GateIntegration:
    """Code outside lateinit that must be let through the gate of deferred parameters.

    Args:
        prefixes: module-name prefixes of the callers it handles
            (``("torch.nn.parallel.", "torch.distributed.")``).
        on_read: ``on_read(param, caller)`` runs when such a caller reads a deferred
            parameter's ``device`` or ``requires_grad`` in a process with a process group
            (wrappers read these first); it may raise (a clear error) or return.
        on_use: ``on_use(param, caller, func, args, kwargs)`` runs instead of raising
            :class:`DeferredInitializationError` when such a caller uses a deferred
            parameter in any other way; it returns the op's result or raises.
        owns: whether a module's parameter is one the integration made (a sharded
            DTensor); ``Block.initialize`` then calls ``initialize``.
        initialize: ``initialize(name, param, record, init, device, dtype,
            force_reinit)``: ``Block.initialize`` for a parameter it owns.
    """

    prefixes: tuple[str, ...]
    on_read: Callable[[Parameter, str], None]
    on_use: Callable[[Parameter, str, Any, Sequence[Any], dict[str, Any]], Any]
    owns: Callable[[torch.Tensor], bool] = lambda t: False
    initialize: Callable[..., None] | None = None


_INTEGRATIONS: list[GateIntegration] = []


def integration_for(tensor: torch.Tensor) -> GateIntegration | None:
    """The registered integration that owns this parameter (e.g. a DTensor that FSDP2
    sharded), if any; ``Block.initialize`` lets it create the values."""
    for integration in _INTEGRATIONS:
        if integration.owns(tensor):
            return integration
    return None


def register_integration(integration: GateIntegration) -> None:
    """Let ``integration``'s callers through the gate (once; registering twice is a no-op).

    :mod:`lateinit.distributed` registers torch's DDP/FSDP2 when it is imported, so the
    bottom of the package never imports the top. With nothing registered the gate looks
    at no caller.
    """
    if integration not in _INTEGRATIONS:
        _INTEGRATIONS.append(integration)


# Wrappers read a parameter's ``device``/``requires_grad`` first (DDP at construction,
# FSDP2's fully_shard when it moves states), and FSDP2 then computes on it. Only on those
# reads, and only in a process with a process group (DDP and FSDP need one), and before
# raising, does the gate look at who is calling: infer_shape reads these attributes
# hundreds of times.
_WATCHED_ATTRS = frozenset({"device", "requires_grad"})
# The getters of _OK_ATTRS that no integration watches, as the gate receives them
# (``TensorBase.<attr>.__get__``; equal, and equally hashed, on every access).
_PLAIN_GETTERS = frozenset(
    getattr(torch._C.TensorBase, attr).__get__
    for attr in sorted(_OK_ATTRS - _WATCHED_ATTRS - {"ndim", "shape"})
    if type(getattr(torch._C.TensorBase, attr, None)).__name__ == "getset_descriptor"
)
_PASS_THROUGH = frozenset({"torch.overrides", "torch._tensor", "torch.functional", __name__})


def _process_group_exists() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def _integration_caller() -> tuple[GateIntegration, str] | None:
    """The registered integration whose code is using a deferred parameter, and the
    caller's module name; ``None`` for any other caller."""
    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            break
        name = frame.f_globals.get("__name__", "")
        if name not in _PASS_THROUGH:
            for integration in _INTEGRATIONS:
                if name.startswith(integration.prefixes):
                    return integration, name
            return None
        frame = frame.f_back
    return None


def _disabled(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    return torch._C._disabled_torch_function_impl(func, (), args, kwargs)


def _first_deferred(args: Iterable[Any]) -> Parameter | None:
    """The first deferred parameter among the arguments (nested lists/tuples included)."""
    for a in args:
        if isinstance(a, Parameter):
            return a
        if isinstance(a, (list, tuple)):
            found = _first_deferred(a)
            if found is not None:
                return found
    return None


def op_name(func: Any) -> str:
    """A torch function's name for messages (``torch.nn.functional.linear``)."""
    name = getattr(func, "__name__", repr(func))
    module = getattr(func, "__module__", "") or ""
    if module.startswith("torch") and not module.startswith("torch._C"):
        return f"{module}.{name}"
    return name


def _empty_like_placeholder(
    raw: torch.Tensor, device: torch.device | str | None, dtype: torch.dtype | None
) -> torch.Tensor:
    """A new empty placeholder: placeholders hold no data, so nothing is copied (which
    also lets a placeholder leave the meta device)."""
    return torch.empty(0, dtype=dtype or raw.dtype, device=device or raw.device)


_DTYPE_METHODS = {
    "half": torch.float16,
    "float": torch.float32,
    "double": torch.float64,
    "bfloat16": torch.bfloat16,
}


def _convert(self: Parameter, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Parameter:
    """``.to()``, ``.cuda()``, ``.half()``... on a deferred parameter: a deferred copy whose
    placeholder has the new device/dtype; ``detach()``: a deferred copy."""
    raw = placeholder(self)
    if name == "detach":
        return self._deferred_copy(raw)
    device: torch.device | str | None = None
    dtype: torch.dtype | None = None
    if name == "to":
        device, dtype = torch._C._nn._parse_to(*args, **kwargs)[:2]
    elif name == "cuda":
        index = args[0] if args else kwargs.get("device")
        device = torch.device("cuda", index) if isinstance(index, int) else (index or "cuda")
    elif name == "cpu":
        device = "cpu"
    elif name == "type":
        converted = torch.empty(0, dtype=raw.dtype).type(*args, **kwargs)
        dtype, device = converted.dtype, ("cuda" if converted.is_cuda else None)
    else:
        dtype = _DTYPE_METHODS[name]
    new = self._deferred_copy(_empty_like_placeholder(raw, device, dtype))
    new.requires_grad_(self.requires_grad)
    new._record.device_explicit = self._record.device_explicit or device is not None
    new._record.dtype_explicit = self._record.dtype_explicit or dtype is not None
    return new


def _query(
    self: Parameter, name: str, func: Any, args: Sequence[Any], kwargs: dict[str, Any]
) -> Any:
    shape = self._record.shape
    if name == "size":
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        return torch.Size(shape) if dim is None else shape[dim]
    if name == "dim":
        return len(shape)
    if name == "numel":
        if UNKNOWN in shape:
            raise use_error(self, "numel()")
        n = 1
        for d in shape:
            n *= d
        return n
    if name == "requires_grad_":
        flag = args[1] if len(args) > 1 else kwargs.get("requires_grad", True)
        with torch._C.DisableTorchFunctionSubclass():
            self.requires_grad = flag
        return self
    if name == "__format__":
        return repr(self)
    if name in ("__eq__", "__ne__"):
        other = args[1]
        same = other is self
        return same if name == "__eq__" else not same
    if name == "__reduce_ex__":
        return self.__reduce_ex__(args[1])
    return _disabled(func, args, kwargs)


def use_error(param: Parameter, what: str) -> DeferredInitializationError:
    """The error for using a deferred parameter (``what``: the use, e.g. ``.data``)."""
    rec = param._record
    owner = f" of {rec.owner}" if rec.owner else ""
    if UNKNOWN in rec.shape:
        why = "its input size is not known yet; -1 marks an unknown dim"
    else:
        why = "its shape is known but it has not been created yet"
    tool = recording_tool() or ("torch.export" if _export_on_stack() else "")
    if tool:  # torch.export / jit.trace read every parameter before tracing anything
        return DeferredInitializationError(
            f"{tool} needs every parameter, but {rec.label!r}{owner} with shape "
            f"{fmt_shape(rec.shape)} does not exist yet ({why}). Fix: call "
            "net.infer_shape(...) with the input shape and then net.initialize() (or pass "
            f"one batch through the network) before {tool}."
        )
    fixes = not_ready_fixes(rec.hint or "in_units / in_channels")
    return DeferredInitializationError(
        f"Parameter {rec.label!r}{owner} with shape {fmt_shape(rec.shape)} is not "
        f"initialized: its initialization was deferred ({why}), so {what} cannot be used "
        f"yet. Fix: {fixes}."
    )


def recording_tool() -> str:
    """``"torch.jit.trace"`` or ``"torch.export"`` while one of them is recording a
    trace (``torch.compiler.is_exporting``, torch >= 2.5), else ``""``. Cheap: Block's
    first call asks it."""
    # torch.jit.is_tracing(), not torch._C._is_tracing(): dynamo knows the former
    if torch.jit.is_tracing():
        return "torch.jit.trace"
    return "torch.export" if _is_exporting is not None and _is_exporting() else ""


_is_exporting = getattr(torch.compiler, "is_exporting", None)


def _export_on_stack() -> bool:
    """Whether ``torch.export`` is on the call stack (error path only): non-strict export
    fakes the parameters before it sets ``is_exporting()``."""
    frame = sys._getframe(1)
    marker = f"{os.sep}torch{os.sep}export{os.sep}"
    while frame is not None:
        if marker in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _rebuild(
    state: dict[str, Any],
    dtype: torch.dtype,
    device: str,
    requires_grad: bool,
    gluon: dict[str, Any] | None = None,
) -> Parameter:
    rec = ParamRecord.__new__(ParamRecord)
    rec.__setstate__(state)
    new = Parameter.from_record(rec, torch.empty(0, dtype=dtype, device=device), requires_grad)
    new.__dict__.update(gluon or {})
    return new


def deferred_buffer(
    shape: Sequence[int] | int,
    init: Any = "zeros",
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Parameter:
    """A buffer (e.g. BatchNorm's running mean) with unknown dims, for ``register_buffer``.

    It follows the parameter lifecycle and becomes a plain ``torch.Tensor`` (no grad)
    when materialized.

    Example:
        >>> import lateinit
        >>> from lateinit.parameter import deferred_buffer
        >>> class Stats(lateinit.nn.Block):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.register_buffer("mean", deferred_buffer((-1,)))
        ...     def infer_param_shapes(self, x):
        ...         self.mean.shape = (x.shape[-1],)
        ...     def forward(self, x):
        ...         return x - self.mean
        >>> import torch
        >>> m = Stats(); _ = m(torch.ones(2, 3)); type(m.mean), tuple(m.mean.shape)
        (<class 'torch.Tensor'>, (3,))
    """
    buf = Parameter(shape, init, dtype=dtype, device=device, requires_grad=False)
    buf._record.buffer = True  # materializes as a plain tensor
    return buf


#: Gluon's gradient requests: overwrite, accumulate, none.
GRAD_REQS = ("write", "add", "null")
_GLUON_ATTRS = ("grad_req", "lr_mult", "wd_mult")


def _gluon_attrs(param: torch.Tensor) -> dict[str, Any]:
    return {k: param.__dict__[k] for k in _GLUON_ATTRS if k in param.__dict__}


def gluon_shape(shape: Sequence[int] | int) -> tuple[int, ...]:
    """A shape in Gluon's spelling, where 0 (or -1) is an unknown dim, in lateinit's (-1).

    Example:
        >>> gluon_shape((0, 100)), gluon_shape(5)
        ((-1, 100), (5,))
    """
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    return tuple(UNKNOWN if d in (0, None) else d for d in dims)


def as_dtype(dtype: Any) -> torch.dtype | None:
    """A dtype given as torch's, a name (``"float16"``, Gluon's spelling) or a numpy dtype.

    Example:
        >>> as_dtype("float16"), as_dtype(torch.bfloat16), as_dtype(None)
        (torch.float16, torch.bfloat16, None)
    """
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = getattr(dtype, "__name__", None) or getattr(dtype, "name", None) or str(dtype)
    found = getattr(torch, str(name).rpartition(".")[2], None)
    if isinstance(found, torch.dtype):
        return found
    raise TypeError(f"unknown dtype {dtype!r}; give a torch.dtype or a name such as 'float32'")


def device_arg(device: Any, ctx: Any) -> torch.device | None:
    """The device from ``device=`` or Gluon's ``ctx=`` (one device, or a list of one:
    lateinit parameters live on one device; use DDP/FSDP2 for several)."""
    if device is not None and ctx is not None:
        raise TypeError("give device= or Gluon's ctx=, not both (ctx= is device=)")
    value = ctx if device is None else device
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(
                f"a parameter lives on one device, got {len(value)} contexts {value!r}; for "
                "data parallelism use torch's DistributedDataParallel (lateinit.distributed)"
            )
        value = value[0]
    return None if value is None else torch.device(value)


def assign(param: Parameter, value: torch.Tensor) -> None:
    """``param.data = value`` on a deferred parameter: it becomes READY with ``value`` as
    its data, as torch's ``.data =`` does (it shares ``value``'s memory, dtype and
    device). Its known dims must agree with ``value``'s shape (a
    ``ShapeMismatchError`` otherwise); unknown dims are taken from it. Journaled: inside
    a failing first pass it is undone."""
    with transaction([param]):
        _fill_shape(param, tuple(value.shape))
        commit_storage(param, value.detach())


def set_data(param: torch.Tensor, value: Any) -> None:
    """Gluon's ``p.set_data(value)`` for a parameter in any state: a copy of ``value`` in
    the parameter's dtype and on its device. A deferred parameter becomes READY with it
    (known dims must agree, unknown ones are taken from ``value``); a READY one is
    overwritten in place under ``no_grad`` (torch: ``with torch.no_grad(): p.copy_(v)``).

    Example:
        >>> import torch, lateinit
        >>> p = lateinit.Parameter("weight", shape=(2, 0))
        >>> set_data(p, torch.ones(2, 3, dtype=torch.float64))
        >>> lateinit.state(p), p.dtype, tuple(p.shape)
        (READY, torch.float32, (2, 3))
    """
    if not isinstance(param, Parameter):
        with torch.no_grad():
            param.copy_(torch.as_tensor(value))
        return
    raw = placeholder(param)
    value = torch.as_tensor(value)
    with transaction([param]):
        _fill_shape(param, tuple(value.shape))
        data = torch.empty(tuple(value.shape), dtype=raw.dtype, device=raw.device)
        with torch.no_grad():
            data.copy_(value)
        commit_storage(param, data)


def _fill_shape(param: Parameter, shape: tuple[int, ...]) -> None:
    """Fill ``param``'s unknown dims from the shape of values given to it."""
    try:
        param.shape = shape
    except ShapeMismatchError as err:
        raise ShapeMismatchError(
            f"cannot give parameter {param._record.label!r} values of shape {fmt_shape(shape)}:"
            f" {err}. Fix: give values whose sizes agree with its known dims (-1 = any).",
            param=param._record.label,
            expected=param._record.shape,
            got=shape,
        ) from None


def initialize_parameter(
    param: torch.Tensor,
    init: Any = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    force_reinit: bool = False,
    name: str = "",
) -> None:
    """Gluon's ``Parameter.initialize`` for one parameter in any state.

    A deferred parameter: ``init`` is registered (its own initializer still wins, as in
    Gluon), ``device``/``dtype`` set where it is created, and it is created now if its
    shape is known. A READY one is left alone with a ``UserWarning`` unless
    ``force_reinit`` (then drawn again from a fresh seed, in place of its values).
    """
    resolved = _init.resolve(init) if init is not None else None
    device = torch.device(device) if device is not None else None
    with transaction([param]):
        if isinstance(param, Parameter):
            initialize_deferred(param, resolved, device, dtype)
        else:
            label = name or "<parameter>"
            reinitialize(label, param, record_of(param), resolved, device, dtype, force_reinit)


def initialize_deferred(
    param: Parameter,
    init: _init.Initializer | None,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> None:
    """``initialize()`` for a deferred parameter: register ``init`` (its own initializer
    still wins), set where and in which dtype it is created, and create it now if its
    shape is known (journaled, as every change in a transaction)."""
    rec = param._record
    if init is not None:
        rec.registered = init
    if device is not None or dtype is not None:
        move_placeholder(param, device, dtype)
        rec.device_explicit = rec.device_explicit or device is not None
    if param.is_shaped:
        materialize(param)


def reinitialize(
    name: str,
    param: torch.Tensor,
    rec: ParamRecord | None,
    init: _init.Initializer | None,
    device: torch.device | None,
    dtype: torch.dtype | None,
    force: bool,
) -> None:
    """``initialize()`` for a tensor that already has values (see :func:`reinit_plan`):
    left alone, or drawn again from a fresh seed into new memory on ``device`` (default:
    its own), journaled. A buffer stays a plain tensor."""
    plan = reinit_plan(name, param, rec, init, dtype, force)
    if plan is None:
        return
    rec, target_dtype = plan
    data = initialized(rec, param.shape, target_dtype, device or param.device, name)
    cls = torch.nn.Parameter if isinstance(param, torch.nn.Parameter) else torch.Tensor
    journal = active_journal()
    if journal is not None:
        journal.record_storage(param, param.data, cls)
    set_storage(param, data, cls)


def state(tensor: Any) -> State:
    """The lifecycle state of any tensor: ``DECLARED`` or ``SHAPED`` for a deferred
    parameter or buffer, ``READY`` for every other tensor (a READY parameter included).

    Args:
        tensor: any tensor (or other object: not a deferred parameter, so `READY`).

    Returns:
        A [`State`][lateinit.State].

    Examples:
        >>> import torch
        >>> import lateinit
        >>> p = lateinit.Parameter((3, -1))
        >>> lateinit.state(p), lateinit.state(torch.ones(2))
        (DECLARED, READY)
        >>> p.shape = (3, 4); lateinit.state(p) == "SHAPED"
        True
    """
    if isinstance(tensor, Parameter):
        return tensor.state
    return State.READY


def record_of(tensor: Any) -> ParamRecord | None:
    """lateinit's record of a parameter it declared (deferred, or READY since), else
    ``None`` (e.g. a plain torch module's parameter)."""
    return getattr(tensor, "__dict__", _NO_DICT).get("_record")


_NO_DICT: dict[str, Any] = {}


def is_deferred(tensor: Any) -> bool:
    """True for a parameter that is not READY (DECLARED or SHAPED); False for any other
    tensor, a READY parameter included.

    Args:
        tensor: any tensor (or other object).

    Examples:
        >>> import torch
        >>> import lateinit
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(4))
        >>> lateinit.is_deferred(net[0].weight), lateinit.is_deferred(torch.ones(2))
        (True, False)
        >>> _ = net(torch.ones(1, 3))
        >>> lateinit.is_deferred(net[0].weight)
        False
    """
    return isinstance(tensor, Parameter)


def materialize(param: Parameter) -> None:
    """Allocate a SHAPED parameter and fill it with its initializer, keeping its identity.

    Values are created directly on the placeholder's device, in its dtype.
    """
    rec = param._record
    if UNKNOWN in rec.shape:
        raise use_error(param, "materialize()")
    raw = placeholder(param)
    commit_storage(param, initialized(rec, rec.shape, raw.dtype, raw.device, rec.path or rec.name))


def initialized(
    rec: ParamRecord, shape: Sequence[int], dtype: torch.dtype, device: torch.device, name: str
) -> torch.Tensor:
    """A new tensor filled by ``rec``'s initializer from a generator seeded with the
    parameter's own seed (drawn at declaration), so values do not depend on when or in
    which order parameters are created. Nothing is drawn on the meta device."""
    data = torch.empty(shape, dtype=dtype, device=device)
    if type(device) is not torch.device:
        device = data.device
    if device.type != "meta":
        init = rec.effective_init
        generator = None
        if init.draws:  # a constant fill needs no seeded generator
            generator = _generator(device)
            generator.manual_seed(rec.seed)
        init(data, generator=generator, name=name)  # runs under no_grad itself
    return data


_generators = threading.local()


def _generator(device: torch.device) -> torch.Generator:
    """This thread's generator for ``device`` (re-seeded for every parameter: creating
    one per parameter cost more than seeding)."""
    cache = getattr(_generators, "by_device", None)
    if cache is None:
        cache = _generators.by_device = {}
    generator = cache.get(device)
    if generator is None:
        generator = cache[device] = torch.Generator(device=device)
    return generator


def reinit_plan(
    name: str,
    p: torch.Tensor,
    rec: ParamRecord | None,
    init: Any,
    dtype: torch.dtype | None,
    force: bool,
    fresh_seed: bool = True,
) -> tuple[ParamRecord, torch.dtype] | None:
    """What ``initialize()`` does with a parameter that already has values: ``None`` to
    leave it alone (with a ``UserWarning`` when lateinit created it; a plain torch
    module's parameter silently), else the record (seed, initializer) and dtype to create
    it again with. Re-initializing draws a fresh seed from torch's global generator
    (``torch.manual_seed(s); net.initialize(force_reinit=True)`` depends on ``s``, as
    random restarts need); ``fresh_seed=False`` keeps the declaration seed (an FSDP2
    shard created for the first time gets the single-device values)."""
    if not force:
        if rec is not None:
            warnings.warn(
                f"Parameter {name!r} is already initialized; initialize() leaves it as it "
                "is. Use initialize(..., force_reinit=True) to re-initialize it.",
                UserWarning,
                stacklevel=4,  # the caller of initialize()
            )
        return None
    if rec is None:
        rec = ParamRecord(tuple(p.shape), None, _draw_seed())
    if init is not None:
        rec.registered = init
    if fresh_seed:
        rec = rec.copy()  # the parameter's own record keeps its declaration seed
        rec.seed = _draw_seed()
    return rec, (dtype if (dtype is not None and p.is_floating_point()) else p.dtype)


def commit_storage(param: Parameter, data: torch.Tensor) -> None:
    """Make ``param`` READY with ``data`` as its values (journaled for rollback)."""
    journal = getattr(_journal, "value", None)
    rec = param._record
    if journal is not None:
        journal.record_storage(param, placeholder(param), Parameter)
    set_storage(param, data, torch.Tensor if rec.buffer else torch.nn.Parameter)
    # A READY parameter is a plain torch.nn.Parameter (a buffer a plain tensor); the
    # metadata stays in its __dict__ (for force_reinit) and `is_deferred` now reads False.
    d = param.__dict__
    d["is_deferred"] = False
    # Gluon's attributes stay readable as plain attributes (docs/design.md, "Gluon's API")
    if not rec.buffer:
        if "grad_req" not in d:
            d["grad_req"] = "write" if param.requires_grad else "null"
        if "lr_mult" not in d:
            d["lr_mult"] = 1.0
        if "wd_mult" not in d:
            d["wd_mult"] = 1.0


def move_placeholder(
    param: Parameter, device: torch.device | None, dtype: torch.dtype | None
) -> None:
    """Change where (and in which dtype) a deferred parameter will be created; a dtype
    given here counts as chosen (``dtype_explicit``: a loaded file does not change it)."""
    raw = placeholder(param)
    dtype = dtype if raw.is_floating_point() else None
    if dtype is not None:
        param._record.dtype_explicit = True
    if (device is None or torch.device(device) == raw.device) and dtype in (None, raw.dtype):
        return
    new = _empty_like_placeholder(raw, device, dtype)
    journal = active_journal()
    if journal is not None:
        journal.record_storage(param, raw, Parameter)
    set_storage(param, new, Parameter)
