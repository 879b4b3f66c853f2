"""Deferred parameters: the DECLARED -> SHAPED -> READY lifecycle.

A :class:`Parameter` is a ``torch.nn.Parameter`` whose shape may hold unknown dims
(``-1``). Until it is READY it holds an empty placeholder tensor that carries only its
dtype and device, and every tensor use raises :class:`DeferredInitializationError`.
Materializing allocates the full tensor, fills it with the initializer under
``torch.no_grad()``, and swaps the object's class to plain ``torch.nn.Parameter``: the
object stays the same (optimizers built earlier keep working) and nothing of lateinit
remains on the hot path. Torch interop facts: ``../../shared/TORCH_NOTES.md``.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from . import init as _init
from .shapes import ShapeMismatchError, fmt_shape

__all__ = ["Parameter", "DeferredInitializationError", "deferred_buffer", "is_deferred"]

UNKNOWN = -1

# One lock serializes every first pass and every initialize(): several threads making the
# first call at once initialize each parameter exactly once.
LOCK = threading.RLock()


class DeferredInitializationError(RuntimeError):
    """A parameter was used before it was READY (its initialization is deferred)."""


def _draw_seed() -> int:
    """Draw a seed from torch's global CPU generator (one int64)."""
    return int(torch.empty((), dtype=torch.int64, device="cpu").random_())


class _Meta:
    """What a deferred parameter knows about itself.

    ``init`` is its own initializer; ``registered`` the one set by ``initialize(init)``;
    ``default`` the layer's fallback. ``hint`` names the constructor argument that would
    have given the input size (``in_units``) and ``owner`` the layer type.
    """

    __slots__ = (
        "buffer",
        "default",
        "device_explicit",
        "hint",
        "init",
        "name",
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
        self.buffer = False

    def copy(self) -> _Meta:
        new = _Meta.__new__(_Meta)
        for slot in _Meta.__slots__:
            setattr(new, slot, getattr(self, slot))
        return new

    def __getstate__(self) -> dict[str, Any]:
        return {slot: getattr(self, slot) for slot in _Meta.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for slot in _Meta.__slots__:
            setattr(self, slot, state.get(slot, False))

    @property
    def effective_init(self) -> _init.Initializer:
        for candidate in (self.init, self.registered, self.default):
            if candidate is not None:
                return _init.resolve(candidate)
        return _init.Xavier("uniform", "in", 1.0)

    @property
    def label(self) -> str:
        return self.path or self.name or "<unnamed>"


def _normalize_shape(shape: Any) -> tuple[int, ...]:
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
                param._li.shape = old
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


@contextmanager
def transaction(*, restore_rng: bool = False) -> Iterator[bool]:
    """Run a block of parameter changes atomically: under the first-pass lock, journaled,
    and rolled back (with torch's RNG state, if ``restore_rng``) if it raises. Nested
    inside another transaction it joins that one. Yields True for the outermost one."""
    with LOCK:
        if active_journal() is not None:
            yield False
            return
        journal = Journal()
        rng = _save_rng() if restore_rng else None
        set_journal(journal)
        try:
            yield True
        except BaseException:
            journal.rollback()
            if rng is not None:
                _restore_rng(rng)
            raise
        finally:
            set_journal(None)


def _save_rng() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.random.get_rng_state(), cuda


def _restore_rng(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    cpu, cuda = state
    torch.random.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _set_storage(param: torch.Tensor, data: torch.Tensor, cls: type) -> None:
    """Point ``param`` at ``data`` and make it an instance of ``cls``, in place."""
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
        _set_storage(param, old_data, old_cls)
    except RuntimeError:
        if old_cls is torch.nn.Parameter or old_cls is torch.Tensor:
            raise
        with torch._C.DisableTorchFunctionSubclass():
            current = param.data
        _set_storage(param, torch.empty(0, dtype=old_data.dtype, device=current.device), old_cls)


def _raw(param: torch.Tensor) -> torch.Tensor:
    """The placeholder tensor of a deferred parameter, as a plain tensor."""
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
    "_backward_hooks",
    "_post_accumulate_grad_hooks",
}


class Parameter(torch.nn.Parameter):
    """A parameter whose shape may be unknown until the first batch.

    Args:
        shape: the full shape, with ``-1`` (or ``None``) for each unknown dim.
        init: its own initializer (an :class:`lateinit.init.Initializer`, a name such as
            ``"zeros"``, or a ``torch.nn.init`` function); when ``None``, the one
            registered by ``Block.initialize(init)`` or the layer's default is used.
        dtype: dtype of the values once created (default: torch's default dtype).
        device: device on which the values will be created (default: the device of the
            first input, or the one given to ``initialize``/``.to``).
        requires_grad: as in torch.

    Example:
        >>> import lateinit
        >>> p = lateinit.Parameter((4, -1), init="ones")
        >>> p.shape
        torch.Size([4, -1])
        >>> p.shape = (4, 3)  # what a layer's infer_param_shapes does
        >>> lateinit.parameter.materialize(p)
        >>> lateinit.is_deferred(p), p.sum().item()
        (False, 12.0)
    """

    _li: _Meta

    def __new__(
        cls,
        shape: Sequence[int] | int,
        init: Any = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        requires_grad: bool = True,
    ) -> Parameter:
        dims = _normalize_shape(shape)
        if init is not None:
            _init.resolve(init)  # fail now on a bad initializer, not at the first batch
        placeholder = torch.empty(0, dtype=dtype or torch.get_default_dtype(), device=device)
        self = torch.Tensor._make_subclass(cls, placeholder, requires_grad)
        self._li = _Meta(dims, init, _draw_seed())
        self._li.device_explicit = device is not None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # torch.nn.Parameter has none
        pass

    @classmethod
    def _from_meta(cls, meta: _Meta, placeholder: torch.Tensor, requires_grad: bool) -> Parameter:
        self = torch.Tensor._make_subclass(cls, placeholder, requires_grad)
        self._li = meta
        return self

    # -- lifecycle -------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:  # type: ignore[override]
        """The logical shape, ``-1`` for each unknown dim."""
        return torch.Size(self._li.shape)

    @shape.setter
    def shape(self, full_shape: Sequence[int]) -> None:
        """Fill unknown dims. Known dims must agree: a conflict is a ShapeMismatchError."""
        new = _normalize_shape(full_shape)
        old = self._li.shape
        if len(new) != len(old):
            raise ShapeMismatchError(
                f"parameter {self._li.label!r} has {len(old)} dims {fmt_shape(old)}, "
                f"but the input implies {len(new)} dims {fmt_shape(new)}",
                param=self._li.label,
                expected=old,
                got=new,
            )
        merged = []
        for dim, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != UNKNOWN and b != UNKNOWN and a != b:
                raise ShapeMismatchError(
                    f"parameter {self._li.label!r} has shape {fmt_shape(old)}, but the input "
                    f"implies {fmt_shape(new)} (dim {dim}: {a} vs {b})",
                    param=self._li.label,
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
            self._li.shape = merged_t

    @property
    def is_deferred(self) -> bool:
        """True until the parameter is READY (then it is a plain torch.nn.Parameter)."""
        return True

    @property
    def is_shaped(self) -> bool:
        """True when every dim is known (SHAPED): it can be materialized."""
        return UNKNOWN not in self._li.shape

    @property
    def state(self) -> str:
        """``"DECLARED"`` (some dims unknown) or ``"SHAPED"`` (all known, no storage)."""
        return "SHAPED" if self.is_shaped else "DECLARED"

    @property
    def initializer(self) -> _init.Initializer:
        """The initializer that materializing will run."""
        return self._li.effective_init

    @initializer.setter
    def initializer(self, value: Any) -> None:
        self._li.init = None if value is None else _init.resolve(value)

    def __repr__(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return (
            f"Parameter(shape={fmt_shape(self._li.shape)}, dtype={dtype}, "
            f"device={self.device}, state={self.state})"
        )

    __str__ = __repr__

    # -- copies ----------------------------------------------------------------------
    def _deferred_copy(self, placeholder: torch.Tensor | None = None) -> Parameter:
        new = Parameter._from_meta(
            self._li.copy(),
            _raw(self).clone() if placeholder is None else placeholder,
            self.requires_grad,
        )
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        new = self._deferred_copy()
        memo[id(self)] = new
        return new

    def __reduce_ex__(self, protocol: Any) -> Any:
        raw = _raw(self)
        return (
            _rebuild,
            (self._li.__getstate__(), raw.dtype, str(raw.device), self.requires_grad),
        )

    # -- torch function gate -----------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "__get__":
            attr = getattr(getattr(func, "__self__", None), "__name__", "")
            if attr == "ndim":
                return len(args[0]._li.shape)
            if attr in _OK_ATTRS:
                watched = attr in _WATCHED_ATTRS and _process_group_exists()
                caller = _parallel_caller() if watched else ""
                if caller:  # torch's DDP / FSDP code: see lateinit.distributed
                    from .distributed import check_parallel_read

                    check_parallel_read(args[0], caller)
                return _disabled(func, args, kwargs)
            raise _use_error(args[0], f".{attr}")
        if name in ("__set__", "__delete__"):
            return _disabled(func, args, kwargs)
        self = _first_deferred((*args, *kwargs.values()))
        if self is None:  # e.g. an op on plain tensors that only mentions our type
            return _disabled(func, args, kwargs)
        if name in _CONVERSIONS and args and args[0] is self:
            return _convert(self, name, args[1:], kwargs)
        if name in _QUERIES and args and args[0] is self:
            return _query(self, name, func, args, kwargs)
        caller = _parallel_caller()
        if caller:  # torch's DDP / FSDP code: see lateinit.distributed
            from .distributed import parallel_use

            return parallel_use(self, caller, func, args, kwargs)
        raise _use_error(self, _op_name(func))


# Parallel wrappers read a parameter's ``device``/``requires_grad`` first (DDP at
# construction, FSDP2's fully_shard when it moves states), and FSDP2 then computes on it.
# Only on those reads, and only in a process with a process group (DDP and FSDP need
# one), and before raising, does the gate look at who is calling: infer_shape reads
# these attributes hundreds of times.
_WATCHED_ATTRS = frozenset({"device", "requires_grad"})
_PARALLEL_PREFIXES = ("torch.nn.parallel.", "torch.distributed.")
_PASS_THROUGH = frozenset({"torch.overrides", "torch._tensor", "torch.functional", __name__})


def _process_group_exists() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def _parallel_caller() -> str:
    """The module name of the code using a deferred parameter when it is one of torch's
    parallel wrappers (``torch.nn.parallel.*``, ``torch.distributed.*``), else ``""``."""
    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            break
        name = frame.f_globals.get("__name__", "")
        if name not in _PASS_THROUGH:
            return name if name.startswith(_PARALLEL_PREFIXES) else ""
        frame = frame.f_back
    return ""


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


def _op_name(func: Any) -> str:
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
    raw = _raw(self)
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
    new._li.device_explicit = self._li.device_explicit or device is not None
    return new


def _query(
    self: Parameter, name: str, func: Any, args: Sequence[Any], kwargs: dict[str, Any]
) -> Any:
    shape = self._li.shape
    if name == "size":
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        return torch.Size(shape) if dim is None else shape[dim]
    if name == "dim":
        return len(shape)
    if name == "numel":
        if UNKNOWN in shape:
            raise _use_error(self, "numel()")
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


def _use_error(param: Parameter, what: str) -> DeferredInitializationError:
    meta = param._li
    owner = f" of {meta.owner}" if meta.owner else ""
    hint = meta.hint or "in_units / in_channels"
    unknown = (
        "its input size is not known yet"
        if UNKNOWN in meta.shape
        else ("its shape is known but it has not been created yet")
    )
    return DeferredInitializationError(
        f"Parameter {meta.label!r}{owner} with shape {fmt_shape(meta.shape)} is not "
        f"initialized: its initialization was deferred ({unknown}; -1 marks an unknown "
        f"dim), so {what} cannot be used yet. Fix: pass one batch through the network "
        f"first (net(x)), or call net.infer_shape(...) with the input shape and then "
        f"net.initialize(), or give the input size when building the layer ({hint}=...)."
    )


def _rebuild(
    state: dict[str, Any], dtype: torch.dtype, device: str, requires_grad: bool
) -> Parameter:
    meta = _Meta.__new__(_Meta)
    meta.__setstate__(state)
    return Parameter._from_meta(meta, torch.empty(0, dtype=dtype, device=device), requires_grad)


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
    buf._li.buffer = True
    return buf


def is_deferred(tensor: Any) -> bool:
    """True for a parameter that is not READY (DECLARED or SHAPED); False for any other
    tensor, a READY parameter included.

    Example:
        >>> import torch, lateinit
        >>> lateinit.is_deferred(lateinit.Parameter((3, -1))), lateinit.is_deferred(torch.ones(2))
        (True, False)
    """
    return isinstance(tensor, Parameter)


def materialize(param: Parameter) -> None:
    """Allocate a SHAPED parameter and fill it with its initializer, keeping its identity.

    Values are created directly on the placeholder's device, in its dtype.
    """
    meta = param._li
    if UNKNOWN in meta.shape:
        raise _use_error(param, "materialize()")
    raw = _raw(param)
    commit_storage(
        param, initialized(meta, meta.shape, raw.dtype, raw.device, meta.path or meta.name)
    )


def initialized(
    meta: _Meta, shape: Sequence[int], dtype: torch.dtype, device: torch.device, name: str
) -> torch.Tensor:
    """A new tensor filled by ``meta``'s initializer from a generator seeded with the
    parameter's own seed (drawn at declaration), so values do not depend on when or in
    which order parameters are created. Nothing is drawn on the meta device."""
    with torch.no_grad():
        data = torch.empty(tuple(shape), dtype=dtype, device=device)
        if data.device.type != "meta":
            generator = torch.Generator(device=data.device)
            generator.manual_seed(meta.seed)
            meta.effective_init(data, generator=generator, name=name)
    return data


def reinit_plan(
    name: str,
    p: torch.Tensor,
    meta: _Meta | None,
    init: Any,
    dtype: torch.dtype | None,
    force: bool,
) -> tuple[_Meta, torch.dtype] | None:
    """What ``initialize()`` does with a parameter that already has values: ``None`` to
    leave it alone (with a ``UserWarning`` when lateinit created it; a plain torch
    module's parameter silently), else the metadata (seed, initializer) and dtype to
    create it again with."""
    if not force:
        if meta is not None:
            warnings.warn(
                f"Parameter {name!r} is already initialized; initialize() leaves it as it "
                "is. Use initialize(..., force_reinit=True) to re-initialize it.",
                UserWarning,
                stacklevel=4,  # the caller of initialize()
            )
        return None
    if meta is None:
        meta = _Meta(tuple(p.shape), None, _draw_seed())
    if init is not None:
        meta.registered = init
    return meta, (dtype if (dtype is not None and p.is_floating_point()) else p.dtype)


def commit_storage(param: Parameter, data: torch.Tensor) -> None:
    """Make ``param`` READY with ``data`` as its values (journaled for rollback)."""
    journal = active_journal()
    if journal is not None:
        journal.record_storage(param, _raw(param), Parameter)
    _set_storage(param, data, torch.Tensor if param._li.buffer else torch.nn.Parameter)
    # A READY parameter is a plain torch.nn.Parameter (a buffer a plain tensor); the
    # metadata stays in its __dict__ (for force_reinit) and `is_deferred` now reads False.
    param.__dict__["is_deferred"] = False


def move_placeholder(
    param: Parameter, device: torch.device | None, dtype: torch.dtype | None
) -> None:
    """Change where (and in which dtype) a deferred parameter will be created."""
    raw = _raw(param)
    dtype = dtype if raw.is_floating_point() else None
    if (device is None or torch.device(device) == raw.device) and dtype in (None, raw.dtype):
        return
    new = _empty_like_placeholder(raw, device, dtype)
    journal = active_journal()
    if journal is not None:
        journal.record_storage(param, raw, Parameter)
    _set_storage(param, new, Parameter)
