"""Block: the base of every layer and container.

A Block is a ``torch.nn.Module`` whose parameters may be deferred. Until every parameter
under it is READY, a Block carries a per-instance ``forward`` (``_first_call``) that
infers its own parameters' shapes from the inputs (``infer_param_shapes``), creates them,
and runs the real ``forward``; the outermost such call is one atomic *first pass*: if it
fails, every parameter it shaped or created goes back to where it was and torch's RNG
state is restored. Once the Block's whole subtree is READY the per-instance ``forward``
is deleted, so a READY network runs the class ``forward`` with nothing added.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.modules.module as _module_globals

from . import init as _init
from .compiled import check_compile_options, copied_options, hybrid_call, quiet_fake_tensor_errors
from .explain import (
    dtype_error,
    explain,
    hook_replica,
    locate,
    missing_hook_error,
    named_mismatch,
)
from .paramdict import BlockParams, ParameterDict
from .parameter import (
    Parameter,
    ParamRecord,
    active_journal,
    as_dtype,
    commit_storage,
    hold,
    initialize_deferred,
    integration_for,
    materialize,
    move_placeholder,
    placeholder,
    record_of,
    recording_tool,
    reinitialize,
    set_storage,
    transaction,
)
from .parameter import _journal as _journal_slot
from .progress import Progress
from .shapes import (
    UNKNOWN,
    DeferredInitializationError,
    ShapeMismatchError,
    fmt_list,
    fmt_shape,
    iter_tensors,
)
from .symbolic import shapes_from_forward

__all__ = [
    "Block",
    "ParameterDict",
    "BlockParams",
    "BlockState",
    "gluon_alias",
    "gluon_key_map",
    "block_state",
]


class BlockState:
    """A Block's own lateinit state, in one record (``block._lateinit``).

    ``records``: the records of its own deferred parameters by attribute name (kept after
    they are READY, for ``force_reinit`` and FSDP2 shards); ``uses``: how many parents hold
    it (a block used twice); ``fixed_by``: the path of the use whose input fixed its sizes;
    ``hybrid``: the ``torch.compile`` options given to ``hybridize``, or ``None``.
    """

    __slots__ = ("fixed_by", "hybrid", "records", "uses")

    def __init__(self) -> None:
        self.records: dict[str, ParamRecord] = {}
        self.uses = 0
        self.fixed_by: str | None = None
        self.hybrid: dict[str, Any] | None = None

    def copy(self) -> BlockState:
        """A shallow copy (a private replica's own state)."""
        new = BlockState.__new__(BlockState)
        new.records, new.uses, new.fixed_by, new.hybrid = (
            self.records,
            self.uses,
            self.fixed_by,
            self.hybrid,
        )
        return new

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k in self.__slots__:
            setattr(self, k, state[k])


def gluon_alias(canonical: str) -> property:
    """A Gluon name for a parameter or buffer that has torch's name: on a layer class,
    ``gamma = gluon_alias("weight")`` makes ``bn.gamma`` the same object as ``bn.weight``
    (Block does this for every entry of a class's ``_gluon_names``)."""

    def get(self: Any) -> Any:
        return getattr(self, canonical)

    def set_(self: Any, value: Any) -> None:
        setattr(self, canonical, value)

    return property(get, set_, doc=f"Gluon's name for ``{canonical}`` (the same object).")


def gluon_key_map(module: torch.nn.Module) -> dict[str, str]:
    """Gluon's structural names of the tensors under ``module`` -> torch's
    (``"1.gamma"`` -> ``"1.weight"``), for lookups and for loading files and state dicts
    written with Gluon's names."""
    out: dict[str, str] = {}
    for prefix, m in module.named_modules():
        if isinstance(m, Block):
            for alias, canonical in m.gluon_names().items():
                dot = f"{prefix}." if prefix else ""
                out[dot + alias] = dot + canonical
    return out


_NO_ENTRIES: dict[str, Any] = {}
# torch's own, to tell when a tool has patched them (Block.__setattr__'s fast paths)
_TORCH_REGISTER_PARAMETER = torch.nn.Module.register_parameter
_TORCH_SETATTR = torch.nn.Module.__setattr__


def block_state(module: torch.nn.Module) -> BlockState | None:
    """The lateinit state of a Block (``None`` for any other module)."""
    return module.__dict__.get("_lateinit")


def _named_tensors(
    module: torch.nn.Module,
) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[str, torch.Tensor]]]:
    """Every parameter and every buffer under ``module`` by structural name (shared ones
    once, under their first name), in one walk of the tree (the first pass, initialize
    and disarming each walk it once, not once per question). The order and names are
    ``named_parameters()``'s and ``named_buffers()``'s (a module reached twice is
    walked once)."""
    params: list[tuple[str, torch.Tensor]] = []
    buffers: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = set()
    modules: set[int] = set()

    def walk(m: torch.nn.Module, prefix: str) -> None:
        modules.add(id(m))
        for table, out in ((m._parameters, params), (m._buffers, buffers)):
            for name, t in table.items():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    out.append((prefix + name, t))
        for name, child in m._modules.items():
            if child is not None and id(child) not in modules:
                walk(child, f"{prefix}{name}.")

    walk(module, "")
    return params, buffers


def _all_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    params, buffers = _named_tensors(module)
    return [t for _, t in (*params, *buffers)]


def _ready_tables(module: torch.nn.Module) -> bool:
    """Whether a module's own parameters and buffers are READY and every parameter is a
    ``torch.nn.Parameter``: a plain tensor in a parameter's place means a call such as
    ``torch.func.functional_call`` has swapped it in for the duration of the call, and
    the block must stay armed for its own parameters."""
    for p in module._parameters.values():
        if p is None or type(p) is torch.nn.Parameter:
            continue
        if type(p) is Parameter or not isinstance(p, torch.nn.Parameter):
            return False
    return not any(type(b) is Parameter for b in module._buffers.values())


def _nbytes(t: torch.Tensor) -> int:
    """The bytes a (deferred or READY) tensor's values take."""
    if type(t) is not Parameter:  # READY: its own answer, no gate in the way
        return t.numel() * t.element_size()
    n = 1
    for d in t.shape:
        n *= max(d, 0)
    return n * placeholder(t).element_size()


def _same_float_dtype(tensors: list[torch.Tensor], own: list[tuple[str, Any]]) -> bool:
    """Whether the first floating input has the dtype of the layer's first floating own
    parameter (the common case, answered without building an error). The parameters'
    dtypes are read off their placeholders, past the gate."""
    first = next((t.dtype for t in tensors if t.is_floating_point()), None)
    if first is None:
        return True
    for _, p in own:
        dtype = placeholder(p).dtype
        if dtype.is_floating_point:
            return first == dtype
    return True


def _deferred_under(module: torch.nn.Module) -> list[tuple[str, Parameter]]:
    """Every deferred parameter, then every deferred buffer, under ``module`` by
    structural name (shared ones once), in one walk of the tree."""
    params, buffers = _named_tensors(module)
    return [(n, t) for n, t in (*params, *buffers) if type(t) is Parameter]


class Block(torch.nn.Module):
    """Base class of every lateinit layer and container; a `torch.nn.Module`.

    A Block's parameters may be deferred: declared without their input sizes, they go
    DECLARED (some dims unknown, `-1`) -> SHAPED (every dim known) -> READY (created and
    filled by their initializer). The first call fills the unknown dims layer by layer
    from the inputs' shapes, creates the parameters on the input's device and runs the
    forward, as one atomic first pass: if it fails, every parameter goes back to where it
    was. [`infer_shape`][lateinit.Block.infer_shape] does the same without data (and
    allocates nothing), [`initialize`][lateinit.Block.initialize] registers an
    initializer or creates what is SHAPED, and
    [`load_parameters`][lateinit.Block.load_parameters] fills everything from a file.
    Once everything under it is READY, a Block runs plain torch, with nothing added to
    its calls.

    A subclass declares parameters with unknown dims
    (`lateinit.Parameter((units, -1))`) and fills them in
    [`infer_param_shapes`][lateinit.Block.infer_param_shapes] from the input shapes. A
    Block built only from child layers needs no extra code.

    Args:
        params: Gluon 1.x's sharing argument: parameters to share by structural name
            (`other.collect_params()`); every layer's constructor accepts it (see
            [`share_parameters`][lateinit.Block.share_parameters]).
        prefix: Gluon 1.x's name prefix, ignored (names are structural: the attribute
            names).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> class MLP(nn.Block):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = nn.Dense(64, activation="relu")
        ...         self.out = nn.Dense(10)
        ...     def forward(self, x):
        ...         return self.out(self.hidden(x))
        >>> net = MLP()
        >>> net.hidden.weight.shape  # DECLARED: the input size is not known yet
        torch.Size([64, -1])
        >>> net(torch.rand(2, 5)).shape
        torch.Size([2, 10])
        >>> tuple(net.hidden.weight.shape)
        (64, 5)
    """

    #: The constructor argument that gives this layer's input size (for messages).
    _in_size_arg: ClassVar[str] = ""
    #: Gluon's names of this layer's parameters and buffers -> torch's names (the
    #: attribute, ``state_dict`` and file names). Each becomes an alias attribute.
    _gluon_names: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for alias, canonical in cls.__dict__.get("_gluon_names", {}).items():
            setattr(cls, alias, gluon_alias(canonical))
        init = cls.__dict__.get("__init__")
        if init is not None and not hasattr(init, "__lateinit_sharing__"):
            cls.__init__ = _sharing_init(init)  # type: ignore[method-assign]

    def __init__(self, *, params: Mapping[str, Any] | None = None, prefix: Any = None) -> None:
        # params: Gluon 1.x's sharing argument, the parameters to share by name
        # (other.collect_params()); every layer's constructor accepts it (see
        # _sharing_init). prefix: Gluon 1.x's name prefix, ignored (names are structural).
        # (Documented in the class docstring, which the reference merges with __init__.)
        # torch.nn.Module's constructor only: a layer that is also its torch twin
        # (Dense is a torch.nn.Linear) sets the twin's attributes itself, without the
        # twin's constructor (which would allocate parameters of a known size).
        torch.nn.Module.__init__(self)
        self.__dict__["_lateinit"] = BlockState()
        if params is not None:
            self.__dict__.setdefault("_lateinit_shared", params)
        self._arm()

    @contextlib.contextmanager
    def name_scope(self) -> Iterator[None]:
        """Gluon 1.x's `with self.name_scope():` around child creation.

        Names here are structural (the attribute names), so it does nothing; it lets
        Gluon code run unchanged.

        Examples:
            >>> from lateinit import nn
            >>> class Net(nn.Block):
            ...     def __init__(self):
            ...         super().__init__()
            ...         with self.name_scope():
            ...             self.dense = nn.Dense(2)
            ...     def forward(self, x):
            ...         return self.dense(x)
            >>> list(Net().collect_params())
            ['dense.weight', 'dense.bias']
        """
        yield

    @property
    def params(self) -> BlockParams:
        """Gluon 1.x's `block.params`: this block's own parameters by name.

        A `BlockParams` (a [`ParameterDict`][lateinit.ParameterDict]) whose
        `get(name, shape=...)` creates (or returns) a parameter registered on the block
        (a `0` dim is unknown) and `get_constant(name, value)` a constant. (A child,
        parameter or attribute named `params` takes precedence.)"""
        for table in ("_modules", "_parameters", "_buffers"):
            found = self.__dict__.get(table, {}).get("params")
            if found is not None:
                return found
        if "params" in self.__dict__:
            return self.__dict__["params"]
        return BlockParams(self)

    @params.setter
    def params(self, value: Any) -> None:
        self.__dict__["params"] = value

    def cast(self, dtype: Any) -> Block:
        """Gluon's `cast`: convert every floating parameter and buffer to `dtype`.

        Deferred parameters included: they will be created in it. `self.to(dtype)` in
        torch.

        Args:
            dtype: a torch dtype or a name such as `"float16"`.

        Returns:
            `self`.

        Examples:
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2)).cast("float16")
            >>> net[0].weight.dtype, net[1].weight.dtype
            (torch.float16, torch.float16)
        """
        return self.to(as_dtype(dtype))

    def gluon_names(self) -> dict[str, str]:
        """Gluon's names of this layer's own parameters and buffers -> torch's names.

        Each Gluon name is also an attribute (`bn.gamma is bn.weight`) and is accepted by
        [`collect_params`][lateinit.Block.collect_params]'s lookups and patterns, by
        `load_state_dict` and by parameter files.

        Returns:
            A new dict, empty when the names are the same (`Dense`).

        Examples:
            >>> from lateinit import nn
            >>> nn.BatchNorm().gluon_names()
            {'gamma': 'weight', 'beta': 'bias', 'moving_mean': 'running_mean',
             'moving_var': 'running_var'}
            >>> bn = nn.BatchNorm()
            >>> bn.gamma is bn.weight
            True
        """
        return dict(self._gluon_names)

    def _torch_name(self, name: str) -> str:
        """The torch name of an attribute given by its Gluon name (else ``name``)."""
        return self._gluon_names.get(name, name)

    # -- arming: the per-instance first-call forward ------------------------------------
    def _arm(self) -> None:
        if "forward" not in self.__dict__:
            self.__dict__["forward"] = self._first_call
            state = block_state(self)
            if state is not None and state.hybrid is not None:  # eager until READY again
                self._compiled_call_impl = None

    def _disarm_tree(self) -> None:
        """Remove the first-call wrapper of every block under this one whose subtree is
        READY (one walk, children before parents)."""
        known: dict[int, bool] = {}

        def ready(module: torch.nn.Module) -> bool:
            if id(module) in known:
                return known[id(module)]
            result = True
            for child in module._modules.values():
                if child is not None and not ready(child):
                    result = False
            result = result and _ready_tables(module)
            known[id(module)] = result
            if result and isinstance(module, Block) and "forward" in module.__dict__:
                del module.__dict__["forward"]
                module._compile_if_hybrid()
            return result

        ready(self)

    def _compile_if_hybrid(self) -> None:
        """Install the compiled call of a READY hybridized block (what
        ``torch.nn.Module.compile`` installs, behind :func:`_hybrid_call`'s error path)."""
        state = block_state(self)
        if state is not None and state.hybrid is not None and "forward" not in self.__dict__:
            # torch.compile pops keys out of ``options``: give it a copy, keep ours whole
            compiled = torch.compile(self._call_impl, **copied_options(state.hybrid))
            self._compiled_call_impl = hybrid_call(self, compiled)

    def _eager_error(
        self, failed: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Exception:
        """The error a failed compiled call raises: the one the same call raises eagerly.

        Dynamo traces a wrong-size input with fake tensors, where a layer's ``except``
        branch never runs, and raises its own ``TorchRuntimeError``; the eager re-run
        reaches the layer's kernel for real, so its ``except`` branch names the layer
        (a user's own error comes out as itself). If the eager call succeeds, the failure
        was the compiler's: ``failed`` is raised. Error path only; a call that failed
        at run time after part of it ran (past a graph break) runs that part again.
        """
        try:
            self._call_impl(*args, **kwargs)
        except Exception as eager:
            return eager
        return failed

    def __setattr__(self, name: str, value: Any) -> None:
        if type(value) is Parameter and self._new_entry(name):
            # a layer declaring a deferred parameter in its constructor: what
            # torch.nn.Module.__setattr__ + register_parameter do for a new name, without
            # their checks' exceptions (hasattr on a missing attribute raises inside)
            self.__dict__["_parameters"][name] = value
            self._annotate(name, value)
            return
        if (
            not isinstance(value, (torch.Tensor, torch.nn.Module))
            and torch.nn.Module.__setattr__ is _TORCH_SETATTR
        ):
            # a plain attribute (a layer's settings): what torch.nn.Module.__setattr__
            # ends with, unless the name is one of its tables' entries (or an alias)
            d = self.__dict__
            if (
                name not in d.get("_parameters", _NO_ENTRIES)
                and name not in d.get("_buffers", _NO_ENTRIES)
                and name not in d.get("_modules", _NO_ENTRIES)
                and name not in self._gluon_names
            ):
                object.__setattr__(self, name, value)
                return
        name = self._torch_name(name)
        super().__setattr__(name, value)
        if isinstance(value, torch.nn.Module) and "_lateinit" in self.__dict__:
            self._adopt(name, value)

    def _new_entry(self, name: str) -> bool:
        """Whether ``name`` is free for a new parameter that torch would register with no
        more than ``_parameters[name] = p``: a valid name, not an attribute, an entry of
        the module's tables or a Gluon alias, no global registration hook set and
        ``register_parameter`` not replaced (by a subclass or a tool)."""
        d = self.__dict__
        params = d.get("_parameters")
        return (
            params is not None
            and type(name) is str
            and name
            and "." not in name
            and name not in d
            and name not in params
            and name not in d["_buffers"]
            and name not in d["_modules"]
            and name not in self._gluon_names
            and not hasattr(type(self), name)
            and not _module_globals._global_parameter_registration_hooks
            # a tool may patch registration (accelerate's init_empty_weights): take it
            and torch.nn.Module.register_parameter is _TORCH_REGISTER_PARAMETER
            and type(self).register_parameter is Block.register_parameter
        )

    def add_module(self, name: str, module: torch.nn.Module | None) -> None:
        super().add_module(name, module)
        if module is not None:
            self._adopt(name, module)

    def _adopt(self, name: str, child: torch.nn.Module) -> None:
        """A child was added: arm this block if the child has deferred parameters, and
        name them by their structural path in this block (for error messages). Only the
        child's own subtree is walked, so building a network stays linear in its size."""
        state = block_state(child)
        if state is not None:  # count uses, to tell them apart in messages
            state.uses += 1
        deferred = _deferred_under(child)
        for path, t in deferred:
            t._record.path = f"{name}.{path}"
        if deferred:
            self._arm()

    def register_buffer(
        self, name: str, tensor: torch.Tensor | None, persistent: bool = True
    ) -> None:
        super().register_buffer(name, tensor, persistent)
        self._annotate(name, tensor)

    def register_parameter(self, name: str, param: torch.nn.Parameter | None) -> None:
        super().register_parameter(name, param)
        self._annotate(name, param)

    def _annotate(self, name: str, param: Any) -> None:
        if type(param) is Parameter:
            rec = param._record
            rec.name = rec.name or name
            rec.owner = rec.owner or type(self).__name__
            rec.hint = rec.hint or self._in_size_arg
            if "_lateinit" not in self.__dict__:  # registered before Block.__init__ ran
                self.__dict__["_lateinit"] = BlockState()
            self._lateinit.records[name] = rec
            self._arm()

    def _first_call(self, *args: Any, **kwargs: Any) -> Any:
        """The per-instance ``forward`` while something under this block is deferred.

        Under ``torch.compile`` the first pass (which creates parameters, something
        dynamo cannot trace) runs eagerly: dynamo breaks the graph here, and the graph it
        compiles once the network is READY is clean. ``torch.export`` and
        ``torch.jit.trace`` cannot record it: they get a ``DeferredInitializationError``
        saying to call ``infer_shape(...)`` and ``initialize()`` first.
        """
        tool = recording_tool()
        if tool:
            raise self._tracing_error(tool)
        dynamo = sys.modules.get("torch._dynamo")
        if dynamo is not None and dynamo.is_compiling():
            return dynamo.disable(Block._first_pass)(self, *args, **kwargs)
        return self._first_pass(*args, **kwargs)

    def _tracing_error(self, tool: str) -> DeferredInitializationError:
        unknown = [n for n, p in self.named_parameters() if isinstance(p, Parameter)]
        listed = fmt_list(repr(n) for n in unknown)
        return DeferredInitializationError(
            f"{tool} cannot record the first call of {type(self).__name__}: it creates "
            f"parameters that do not exist yet ({listed}), which a trace cannot contain. "
            "Fix: call net.infer_shape(...) with the input shape and then "
            "net.initialize() (or pass one batch through the network) before "
            f"{tool}."
        )

    def _first_pass(self, *args: Any, **kwargs: Any) -> Any:
        forward = type(self).forward
        # The outermost first pass holds the locks of every deferred tensor under it; a
        # nested one (a layer inside it, or another network called from a forward) those
        # of its own (docs/design.md, "Threads").
        journal = getattr(_journal_slot, "value", None)
        if journal is None:
            named = _deferred_under(self)
        else:
            named = self._own_deferred()
            if all(id(t._record) in journal.held for _, t in named):
                # a layer inside the first pass that holds its locks: part of it
                if named:
                    self._prepare(args, kwargs, named)
                return forward(self, *args, **kwargs)
        with transaction([t for _, t in named], restore_rng=journal is None) as outermost:
            if outermost:
                if not any(type(t) is Parameter for _, t in named):
                    self._disarm_tree()  # another thread finished the pass
                    return forward(self, *args, **kwargs)
                for name, t in named:  # structural names, for messages and Mixed
                    if type(t) is Parameter:
                        t._record.path = name
            if named:
                self._prepare(args, kwargs, None if outermost else named)
            out = forward(self, *args, **kwargs)
        if outermost:
            self._disarm_tree()
        return out

    # -- per-layer inference ------------------------------------------------------------
    def infer_param_shapes(self, *inputs: Any, **kwargs: Any) -> None:
        """Fill the unknown dims of this block's own parameters from its inputs.

        Override in a layer with parameters of unknown shape: read the input shapes and
        assign `param.shape = full_shape` (known dims must agree, else a
        [`ShapeMismatchError`][lateinit.ShapeMismatchError]). Never compute on data: it
        also runs on `meta` tensors, for
        [`infer_shape`][lateinit.Block.infer_shape]. It is called once, on the first
        call (or `infer_shape`), before `forward`, with the same arguments, and only
        while some of the block's own parameters are DECLARED. The base does nothing: a
        block without this hook has its unknown dims read off its forward, run on fake
        tensors.

        Args:
            *inputs: the positional arguments of the call (tensors, or `meta` tensors).
            **kwargs: its keyword arguments.

        Examples:
            >>> import torch
            >>> import lateinit
            >>> from lateinit import nn
            >>> class Scale(nn.Block):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.weight = lateinit.Parameter((-1,), init="ones")
            ...     def infer_param_shapes(self, x):
            ...         self.weight.shape = (x.shape[-1],)
            ...     def forward(self, x):
            ...         return x * self.weight
            >>> layer = Scale()
            >>> layer.infer_shape((2, 7))
            Spec(shape=(2, 7), dtype=torch.float32)
            >>> layer.weight.shape
            torch.Size([7])
        """

    def _own_deferred(self) -> list[tuple[str, Parameter]]:
        """This block's own deferred parameters, then its own deferred buffers."""
        own = [(n, p) for n, p in self._parameters.items() if type(p) is Parameter]
        if self._buffers:
            own += [(n, b) for n, b in self._buffers.items() if type(b) is Parameter]
        return own

    def _has_ready_declared(self) -> bool:
        """Whether one of this block's own tensors that lateinit declared is READY."""
        return any(
            t is not None and not isinstance(t, Parameter) and record_of(t) is not None
            for table in (self._parameters, self._buffers)
            for t in table.values()
        )

    def _prepare(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        own: list[tuple[str, Parameter]] | None = None,
    ) -> None:
        """Infer, then create, this block's own deferred parameters for these inputs
        (``own``: them, when the caller has listed them already)."""
        own = self._infer_own(args, kwargs, own)
        if not own:
            return
        if not kwargs and all(type(a) is torch.Tensor for a in args):
            tensors = list(args)  # the common call: no nesting to walk
        else:
            tensors = list(iter_tensors((args, kwargs)))
        if not _same_float_dtype(tensors, own):  # else nothing to explain: skip the walk
            error = dtype_error(self, tensors)
            if error is not None:
                raise error
        device = self._creation_device(tensors)
        for _, p in own:
            if (
                device is not None
                and not p._record.device_explicit
                and placeholder(p).device != device
            ):
                move_placeholder(p, device, None)
            materialize(p)

    def _infer_own(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        own: list[tuple[str, Parameter]] | None = None,
    ) -> list[tuple[str, Parameter]]:
        """Fill the unknown dims of this block's own deferred parameters from these inputs
        (through ``infer_param_shapes``); return those parameters, now SHAPED."""
        if own is None:
            own = self._own_deferred()
        if own and any(UNKNOWN in p._record.shape for _, p in own):
            if type(self).infer_param_shapes is Block.infer_param_shapes:
                # no hook: read the unknown dims off the forward run on fake tensors with
                # a symbolic size for each (a private replica; first call only)
                found = shapes_from_forward(self, type(self).forward, own, args, kwargs)
                for n, p in own:
                    p.shape = found[n]
            else:
                self._run_hook(own, args, kwargs)
            if any(UNKNOWN in p._record.shape for _, p in own):
                unfilled = [f"{n} {fmt_shape(tuple(p.shape))}" for n, p in own if not p.is_shaped]
                raise missing_hook_error(self, [], filled_nothing=", ".join(unfilled))
            if self._lateinit.uses > 1:  # a block used twice: remember which use fixed
                self._lateinit.fixed_by = locate(self)[1]  # the sizes
        return own

    def _run_hook(
        self, own: list[tuple[str, Parameter]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Run this block's ``infer_param_shapes`` on these inputs."""
        try:
            try:
                self.infer_param_shapes(*args, **kwargs)
            except AttributeError:
                # a parameter given values early (p.data = v, set_data, sharing) is READY
                # beside deferred ones, and the hook assigned its shape (a plain tensor's
                # is read-only): run the hook on a replica whose tables hold stand-ins of
                # the known shapes, and copy the shapes it found to the deferred ones
                if not self._has_ready_declared():
                    raise
                replica = hook_replica(self)
                replica.infer_param_shapes(*args, **kwargs)
                for n, p in own:
                    table = "_parameters" if n in self._parameters else "_buffers"
                    p.shape = tuple(replica.__dict__[table][n].shape)
        except ShapeMismatchError as err:
            raise named_mismatch(self, err, args, self._lateinit.fixed_by) from None

    def _creation_device(self, tensors: list[torch.Tensor]) -> torch.device | None:
        """Where parameters without an explicit device are created: beside this block's
        READY parameters if it has any (so a layer never straddles devices), else on the
        device of the first input."""
        for table in (self._parameters, self._buffers):
            for t in table.values():
                if t is not None and type(t) is not Parameter:
                    return t.device
        return tensors[0].device if tensors else None

    def _named_deferred_or_ready(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every parameter, then every deferred buffer, by structural name (once each)."""
        params, buffers = _named_tensors(self)
        yield from params
        for name, b in buffers:
            if isinstance(b, Parameter):
                yield name, b

    def _name_params(self) -> None:
        for name, p in self._named_deferred_or_ready():
            if isinstance(p, Parameter):
                p._record.path = name

    # -- error translation (error path only: nothing runs on the happy path) ------------
    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        """Say what input size the layer expects; layers override to name the axis."""
        return f"its parameter {param!r} needs size {size} on dim {dim}"

    def explain_error(self, err: BaseException, *inputs: Any) -> BaseException:
        """The error to raise for a failed computation of this layer: a named
        [`ShapeMismatchError`][lateinit.ShapeMismatchError] or `TypeError` when the
        inputs disagree with the layer's known sizes or its parameters' dtype, else `err`
        itself.

        For layer authors: once a layer is READY its
        [`infer_param_shapes`][lateinit.Block.infer_param_shapes] no longer runs, so an
        input of another size reaches the kernel, whose message (`mat1 and mat2 shapes
        cannot be multiplied`) names neither the layer nor the fix. Wrap the kernel in
        `try`/`except` and `raise self.explain_error(err, *inputs)`: the hook runs again,
        on a private replica of the layer, against the sizes it already knows, and the
        mismatch is reported like a built-in layer's (the layer's path in the network
        called, its type, the expected and received shapes, the fix). The `try` costs
        nothing until something fails; the live layer is never changed.

        Args:
            err: the exception the computation raised.
            *inputs: the inputs the layer was called with.

        Returns:
            The exception to raise (`err` when the inputs do not explain it).

        Examples:
            >>> import torch
            >>> import lateinit
            >>> class Scale(lateinit.Block):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.weight = lateinit.Parameter((-1,), init="ones")
            ...     def infer_param_shapes(self, x):
            ...         self.weight.shape = (x.shape[-1],)
            ...     def forward(self, x):
            ...         try:
            ...             return x * self.weight
            ...         except RuntimeError as err:
            ...             raise self.explain_error(err, x)
            >>> layer = Scale()
            >>> layer(torch.ones(2, 3)).shape
            torch.Size([2, 3])
            >>> layer(torch.ones(2, 4))
            Traceback (most recent call last):
            ...
            lateinit.shapes.ShapeMismatchError: layer Scale (the network called) got ... (2, 4), ...
        """
        return explain(self, err, inputs, self._lateinit.fixed_by)

    _explain = explain_error  # the built-in layers' spelling (nn/basic.py explain_call)

    # -- public API -----------------------------------------------------------------------
    def initialize(
        self,
        init: Any = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        force_reinit: bool = False,
        progress: bool | None = None,
    ) -> Block:
        """Register a default initializer and create every parameter whose shape is known.

        SHAPED parameters become READY now; DECLARED ones (unknown dims) keep the
        initializer and wait for data (or [`infer_shape`][lateinit.Block.infer_shape]),
        then use it. Nothing needs to be initialized before the first batch: without
        this call, each parameter uses its own initializer or its layer's default.

        Args:
            init: the initializer for parameters without one of their own (an
                [`Initializer`][lateinit.init.Initializer] from `lateinit.init`, a name
                such as `"xavier_uniform"`, or a `torch.nn.init` function). A later call
                before data arrives replaces it.
            device: where parameters are created (default: the device of the first input).
            dtype: the floating dtype of the parameters (default: torch's default dtype).
            force_reinit: re-initialize parameters that are already READY; otherwise each
                one is left alone with a ``UserWarning``.
            progress: a progress bar on stderr while parameters are created: `None`
                shows one only when creating takes over 2 s on a terminal, `True`
                always, `False` never.

        Returns:
            `self`.

        On a network sharded by FSDP2's `fully_shard` while SHAPED, each rank creates
        only its own shard, on the mesh's device, with the single-device values (see
        `lateinit.distributed`).

        Examples:
            >>> import torch
            >>> from lateinit import nn, init
            >>> net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2))
            >>> _ = net.initialize(init.One())
            >>> net[0].weight.sum().item(), net[1].weight.shape  # layer 1 waits for data
            (12.0, torch.Size([2, -1]))
            >>> _ = net(torch.ones(1, 3))
            >>> net[1].weight.sum().item()  # created with One() at the first batch
            8.0
        """
        resolved = _init.resolve(init) if init is not None else None
        dev = torch.device(device) if device is not None else None
        params, buffers = _named_tensors(self)
        todo = [*params, *((n, b) for n, b in buffers if type(b) is Parameter)]

        def total() -> int:  # bytes to create, counted only if a bar is shown
            return sum(_nbytes(p) for _, p in todo if type(p) is Parameter and p.is_shaped)

        with (
            transaction([t for _, t in (*params, *buffers)]),
            Progress(total, "initializing", progress) as bar,
        ):
            for name, p in todo:
                if type(p) is Parameter:
                    p._record.path = name
                    initialize_deferred(p, resolved, dev, dtype)
                    if type(p) is not Parameter:  # created now (SHAPED before)
                        bar.advance(_nbytes(p))
                elif (owner := integration_for(p)) is not None and owner.initialize:
                    # e.g. sharded by FSDP2: lateinit.distributed creates this rank's shard
                    rec = self._record_of(name, p)
                    owner.initialize(name, p, rec, resolved, dev, dtype, force_reinit)
                else:
                    self._initialize_ready(name, p, resolved, dev, dtype, force_reinit)
            self._disarm_tree()
        return self

    def _initialize_ready(
        self,
        name: str,
        p: torch.nn.Parameter,
        init: _init.Initializer | None,
        device: torch.device | None,
        dtype: torch.dtype | None,
        force_reinit: bool,
    ) -> None:
        rec = self._record_of(name, p)
        reinitialize(name, p, rec, init, device, dtype, force_reinit)

    def _record_of(self, name: str, p: torch.nn.Parameter) -> ParamRecord | None:
        """lateinit's record of a parameter under this block: its own, else the one its
        layer kept (a parameter FSDP2 replaced by a DTensor)."""
        rec = record_of(p)
        if rec is not None:
            return rec
        owner_name, _, attr = name.rpartition(".")
        owner = self.get_submodule(owner_name) if owner_name else self
        state = block_state(owner)
        return state.records.get(attr) if state is not None else None

    def infer_shape(self, *inputs: Any) -> Any:
        """Infer every parameter's shape without data and without allocating.

        Deferred parameters end SHAPED (`initialize(device=, dtype=)` then creates them
        directly where they belong; `fully_shard` can shard them first); READY ones are
        untouched. Runs the forward on `meta` tensors, so even a 70B-parameter model is
        shaped in moments; modules of identical structure on identical inputs run once.
        A forward that needs real values (`.item()`) raises a `RuntimeError` naming the
        block.

        Args:
            *inputs: what the network would be called with: tensors (any device, `meta`
                included), shape tuples such as `(None, 20)`, or
                [`Spec`][lateinit.Spec]s (`None` dims mean any size, e.g. the batch;
                a `Spec` also gives the dtype); nested tuples/lists/dicts of those.

        Returns:
            The output spec(s), nested as the forward returns them
            ([`Spec`][lateinit.Spec], with `None` for dims that depend on a `None` input
            dim).

        Raises:
            ShapeMismatchError: an input contradicts a size a layer already knows.

        Examples:
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(256, activation="relu"), nn.Dense(10))
            >>> net.infer_shape(lateinit.Spec((None, 20)))
            Spec(shape=(None, 10), dtype=torch.float32)
            >>> net.collect_params()["0.weight"]
            Parameter(shape=(256, 20), dtype=float32, device=cpu, state=SHAPED)
        """
        from .inference import infer_shape

        return infer_shape(self, *inputs)  # names the parameters by path, as _name_params

    def export(self, path: str | os.PathLike[str], *example_inputs: Any) -> tuple[str, str]:
        """Gluon's `export`: write the READY network so that it reloads and runs without
        its Python code.

        Writes `PATH.pt2`, a `torch.export` program traced on `example_inputs`
        (`torch.export.load(PATH.pt2).module()(x)` runs it), and `PATH.safetensors`, its
        parameter file ([`save_parameters`][lateinit.Block.save_parameters]). Gluon's
        `export(path, epoch)` took no inputs (it used the hybridized graph); a torch
        program is traced, so give inputs of the shape it will take.

        Args:
            path: the common path of the two files, without extension.
            *example_inputs: the inputs to trace the program on.

        Returns:
            The paths of the program and of the parameter file.

        Raises:
            DeferredInitializationError: some parameter is not READY (nothing is
                written).

        Examples:
            >>> import os, tempfile, torch
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4, activation="relu"), nn.Dense(2))
            >>> x = torch.ones(3, 5)
            >>> _ = net(x)
            >>> tmp = tempfile.TemporaryDirectory()
            >>> program, params = net.export(os.path.join(tmp.name, "net"), x)
            >>> os.path.basename(program), os.path.basename(params)
            ('net.pt2', 'net.safetensors')
            >>> torch.equal(torch.export.load(program).module()(x), net(x))
            True
            >>> tmp.cleanup()
        """
        from .io import export_network

        return export_network(self, path, *example_inputs)

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """``torch.jit.script`` scripts the plain torch network ``lateinit.to_torch``
        builds (the same parameters): lateinit's forwards (``try``/``except`` around the
        kernels, Gluon options) are not TorchScript."""
        from .convert import to_torch

        return to_torch(self)

    def hybridize(self, active: bool = True, **compile_kwargs: Any) -> Block:
        """Run this block through ``torch.compile`` once its shapes are known.

        Args:
            active: ``False`` turns compilation off again (calls run eagerly).
            **compile_kwargs: options for ``torch.compile`` (``fullgraph=True``,
                ``dynamic=True``, ``mode=``, ``backend=``...).

        Returns ``self``. While a parameter under this block is still deferred, calls run
        eagerly (the initializing call must: it creates the parameters, atomically, as
        without hybridize); as soon as the whole block is READY (first batch,
        ``infer_shape`` + ``initialize``, or ``load_parameters``) later calls go through
        the compiled block (``torch.compile`` of its ``__call__``, as
        ``torch.nn.Module.compile``). Calling ``hybridize`` again with other options
        recompiles. A compiled call that fails raises what the same call raises eagerly
        (a wrong-size input: the named ``ShapeMismatchError``), with nothing from dynamo
        in the logs. Options ``torch.compile`` would refuse are refused here, before
        anything changes: ``TypeError`` for an unknown name or a wrong type,
        ``ValueError`` for an unknown ``mode`` or ``backend``.

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
            >>> _ = net.hybridize(backend="eager", fullgraph=True)
            >>> net(torch.ones(3, 4)).shape  # eager: infers the shapes, then compiles
            torch.Size([3, 2])
            >>> net(torch.ones(3, 4)).shape  # compiled
            torch.Size([3, 2])
        """
        if not active:
            self._lateinit.hybrid = None
            self._compiled_call_impl = None
            return self
        check_compile_options(compile_kwargs)
        quiet_fake_tensor_errors()
        self._lateinit.hybrid = dict(compile_kwargs)
        self._compiled_call_impl = None
        self._compile_if_hybrid()
        return self

    def summary(self, *inputs: Any, max_depth: int | None = None) -> Any:
        """A table of layers (path, type, output shape, parameters, FLOPs) with totals.

        With inputs, the forward runs on `meta` tensors, as for
        [`infer_shape`][lateinit.Block.infer_shape]: nothing is allocated, and deferred
        parameters end SHAPED. FLOPs are forward FLOPs counted by
        `torch.utils.flop_counter` (matrix products and convolutions); a row's FLOPs
        include its children's. A shared parameter is counted once. Without inputs,
        unknown shapes show `?` and parameters of unknown shape `(deferred)`.

        Args:
            *inputs: what the network would be called with, as for `infer_shape`:
                tensors, shape tuples or [`Spec`][lateinit.Spec]s (`None` dims allowed).
            max_depth: leave rows nested deeper than this out of the table.

        Returns:
            A [`Summary`][lateinit.Summary]: `print(s)` shows the table, `s.rows` and
            `s.totals` hold the figures.

        Examples:
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(10))
            >>> s = net.summary((2, 20))
            >>> s.totals.flops, s.totals.params
            (800, 210)
            >>> net[0].weight  # SHAPED by the summary, still not allocated
            Parameter(shape=(10, 20), dtype=float32, device=cpu, state=SHAPED)
        """
        from .summary import summary

        return summary(self, *inputs, max_depth=max_depth)

    def plot(
        self,
        *inputs: Any,
        path: str | os.PathLike[str] | None = None,
        max_depth: int | None = None,
        show_shapes: bool = True,
        show_params: bool = True,
    ) -> str:
        """A picture of the network as SVG: one box per layer in call order.

        Each box shows the layer's path and type, its output shape and its parameter
        count; a module with children (a `Sequential`, a residual unit, a Block of your
        own) is a frame around them; the inputs come first, the title holds the totals.
        As for [`summary`][lateinit.Block.summary], the forward runs on `meta` tensors, here
        on a private replica of the network: nothing is allocated and the network does not
        change (a DECLARED parameter stays DECLARED).

        Args:
            *inputs: what the network would be called with, as for `infer_shape`:
                tensors, shape tuples or [`Spec`][lateinit.Spec]s (`None` dims allowed).
                Without inputs, output shapes and the counts of parameters of unknown
                shape show `?`.
            path: also write the SVG to this file; a name not ending in `.svg` is a
                `ValueError`, raised before anything is done.
            max_depth: draw modules nested at most this deep (the network's children are
                at depth 1); a deeper module counts in its drawn ancestor's box.
            show_shapes: write each layer's output shape in its box.
            show_params: write each layer's parameter count in its box (a frame's count
                is its whole subtree's).

        Returns:
            The SVG document as text (`lateinit plot` draws the same from the shell).

        Examples:
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
            >>> svg = net.plot(lateinit.Spec((None, 5)))
            >>> svg.startswith("<svg"), "(None, 8) · 48 params" in svg
            (True, True)
            >>> lateinit.state(net[0].weight)  # inspecting changed nothing
            DECLARED
        """
        from .plot import plot

        return plot(
            self,
            *inputs,
            path=path,
            max_depth=max_depth,
            show_shapes=show_shapes,
            show_params=show_params,
        )

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """An ordered dict of structural names (`"0.weight"`) to parameters.

        Deferred parameters are included (in any state); shared parameters appear once.
        The `repr` lists shape (`-1` = unknown), dtype and state (DECLARED, SHAPED or
        READY).

        Args:
            select: a regex; only names it matches (`re.match`, as Gluon) are kept,
                torch's or Gluon's (`".*gamma"` selects BatchNorm's `weight`); several
                patterns are joined by `|` (`".*weight|.*bias"`).

        Returns:
            A [`ParameterDict`][lateinit.ParameterDict].

        Examples:
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4), nn.BatchNorm())
            >>> net.collect_params()
            ParameterDict(
              0.weight  (4, -1)  float32  DECLARED
              0.bias    (4,)     float32  SHAPED
              1.weight  (-1,)    float32  DECLARED
              1.bias    (-1,)    float32  DECLARED
            )
            >>> list(net.collect_params(".*gamma|.*bias"))
            ['0.bias', '1.weight', '1.bias']
        """
        pattern = re.compile(select) if select is not None else None
        aliases = gluon_key_map(self)
        gluon_of = {canonical: alias for alias, canonical in aliases.items()}
        out = ParameterDict(aliases=aliases)
        for name, p in self.named_parameters():
            if isinstance(p, Parameter):
                p.record.path = name
            alias = gluon_of.get(name)
            if (
                pattern is None
                or pattern.match(name)
                or (alias is not None and pattern.match(alias))
            ):
                out[name] = p
        return out

    def share_parameters(self, other: torch.nn.Module | Mapping[str, torch.Tensor]) -> Block:
        """Tie this block's parameters to `other`'s by structural name.

        Each parameter of this block whose name `other` also has is replaced by
        `other`'s object, in any state: training one trains both. Known dims of both
        sides must agree (unknown dims are filled from either side).

        Args:
            other: a Block (or any `torch.nn.Module`), or a mapping of names to
                parameters such as `other.collect_params()`.

        Returns:
            `self`.

        Raises:
            ShapeMismatchError: known dims disagree (naming both parameters); nothing is
                changed.

        Examples:
            >>> from lateinit import nn
            >>> a = nn.Dense(4, in_units=3)
            >>> b = nn.Dense(4).share_parameters(a)
            >>> b.weight is a.weight, b.weight.shape
            (True, torch.Size([4, 3]))
            >>> nn.Dense(4, in_units=5).share_parameters(a)
            Traceback (most recent call last):
            ...
            lateinit.shapes.ShapeMismatchError: cannot share parameter 'weight': ...
        """
        theirs = (
            dict(other.named_parameters()) if isinstance(other, torch.nn.Module) else dict(other)
        )
        plan: list[tuple[torch.nn.Module, str, torch.nn.Parameter, tuple[int, ...]]] = []
        for mod_name, module in self.named_modules(remove_duplicate=False):
            for attr, mine in module._parameters.items():
                full = f"{mod_name}.{attr}" if mod_name else attr
                target = theirs.get(full)
                if mine is None or target is None or target is mine:
                    continue
                merged = _merge_for_sharing(full, mine, target)
                plan.append((module, attr, target, merged))
        with hold([*_all_tensors(self), *(t for _, _, t, _ in plan)]):
            for module, attr, target, merged in plan:
                if isinstance(target, Parameter):
                    target.shape = merged
                module._parameters[attr] = target
                if isinstance(target, Parameter) and isinstance(module, Block):
                    module._lateinit.records[attr] = target.record
                    module._arm()
            if any(isinstance(t, Parameter) for _, _, t, _ in plan):
                self._arm()
        return self

    def save_parameters(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = True,
        checksums: bool = True,
        progress: bool | None = None,
    ) -> None:
        """Write every parameter and persistent buffer to a safetensors file keyed by
        structural names (`"0.weight"`); a shared parameter is written once.

        Every parameter must be READY (a clear error names the ones that are not, and no
        file is written). The file is written beside `path` under a temporary name,
        flushed to disk, then renamed over `path`: a crash leaves the old file or the
        new one, never a broken one. Each tensor's checksum (xxh3) is stored in the
        file's metadata, so a flipped bit is refused at load. Read it back with
        [`load_parameters`][lateinit.Block.load_parameters], into a READY network or a
        deferred one.

        Args:
            path: the file to write (replaced atomically if it exists; through a
                symlink, the file it points to is replaced).
            sync: flush the new file to disk before renaming it, so that even a power
                cut leaves the old file or the complete new one; `False` is faster,
                and a crashed process still never leaves a broken file.
            checksums: store a checksum of every tensor's bytes in the metadata;
                `False` leaves them out.
            progress: a bar on stderr: `None` shows one only for a save over 2 s on a
                terminal, `True` always, `False` never.

        Raises:
            DeferredInitializationError: some parameter is not READY (no file is
                written).

        Examples:
            >>> import os, tempfile, torch
            >>> from safetensors import safe_open
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2))
            >>> tmp = tempfile.TemporaryDirectory()
            >>> path = os.path.join(tmp.name, "net.safetensors")
            >>> net.save_parameters(path)  # layer 1 is not created yet
            Traceback (most recent call last):
            ...
            lateinit.shapes.DeferredInitializationError: cannot save the parameters of ...
            >>> _ = net(torch.ones(1, 3))
            >>> net.save_parameters(path)
            >>> with safe_open(path, "pt") as f:
            ...     print(sorted(f.keys()))
            ['0.bias', '0.weight', '1.bias', '1.weight']
            >>> tmp.cleanup()
        """
        from .io import save_parameters

        save_parameters(self, path, sync=sync, checksums=checksums, progress=progress)

    def load_parameters(
        self,
        path: str | os.PathLike[str],
        *,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        verify: bool = True,
        progress: bool | None = None,
        key_map: Any = None,
    ) -> Block:
        """Load a safetensors file written by
        [`save_parameters`][lateinit.Block.save_parameters] (or a sharded checkpoint:
        its index, or a directory holding it); all or nothing.

        Into a READY network the values are replaced in place (each parameter stays the
        same object, in the same memory); into a deferred one (DECLARED or SHAPED) the
        unknown dims are filled from the file and the parameters are created on their
        device with the file's values, with no forward pass and no initializer run.
        Everything (keys, shapes, dtypes, the file itself, and with `verify` each
        tensor's checksum) is checked before anything changes: a bad file or a mismatch
        changes nothing. Never unpickles.

        Args:
            path: a safetensors file; or a sharded checkpoint's index
                (`model.safetensors.index.json`, Hugging Face's format, the shards
                beside it); or a directory holding that index or exactly one
                `*.safetensors` file.
            allow_missing: leave the network's tensors that the file does not hold as
                they are (deferred ones stay deferred) instead of raising.
            ignore_extra: skip the file's keys that the network does not have instead of
                raising.
            device: where the values go (default: each parameter's own device; for a
                deferred one, the device it was meant to be created on).
            dtype: the floating dtype of the loaded floating tensors. Default: a
                deferred parameter whose dtype was never chosen takes the file's dtype
                (a bfloat16 file gives bfloat16 parameters); every other tensor keeps
                its own.
            verify: check every value read against the checksum `save_parameters`
                stored with it (files without checksums load unchecked).
            progress: a bar on stderr: `None` shows one only for a load over 2 s on a
                terminal, `True` always, `False` never.
            key_map: renames the file's keys before they are matched with the
                network's: a dict of regular expression -> replacement, applied one
                after the other (a key that ends up empty is dropped), or a callable
                `key -> new key` (`None` drops the key). See
                [`zoo.HF_KEY_MAP`][lateinit.zoo.HF_KEY_MAP].

        Returns:
            `self`.

        Raises:
            ParameterFileError: the path cannot be read, the file is not valid
                safetensors (empty, truncated, corrupted, a pickle), values do not
                match their checksums, or keys are missing or extra.
            ShapeMismatchError: a stored shape contradicts a known dim.
            TypeError: a dtype that cannot be converted.
            FileNotFoundError: the path does not exist.

        Examples:
            >>> import os, tempfile, torch
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4), nn.Dense(2))
            >>> _ = net(torch.ones(1, 3))
            >>> tmp = tempfile.TemporaryDirectory()
            >>> path = os.path.join(tmp.name, "net.safetensors")
            >>> net.save_parameters(path)
            >>> fresh = nn.Sequential(nn.Dense(4), nn.Dense(2))  # DECLARED
            >>> fresh[0].weight.shape
            torch.Size([4, -1])
            >>> _ = fresh.load_parameters(path)  # READY, with the file's values
            >>> fresh[0].weight.shape, torch.equal(fresh[1].weight, net[1].weight)
            (torch.Size([4, 3]), True)
            >>> tmp.cleanup()
        """
        from .io import load_parameters

        load_parameters(
            self,
            path,
            allow_missing=allow_missing,
            ignore_extra=ignore_extra,
            device=device,
            dtype=dtype,
            verify=verify,
            progress=progress,
            key_map=key_map,
        )
        return self

    def reset_parameters(self) -> None:
        """torch's protocol: draw every parameter under this block again from its
        initializer (after ``to_empty()``, for instance), in place.

        A lateinit parameter is re-drawn with its own initializer (its own, else the one
        ``initialize(init)`` registered, else the layer's default) from a fresh seed of
        torch's global generator, as ``torch.nn.Linear.reset_parameters`` draws from it;
        a SHAPED one is created; a DECLARED one waits for data. A plain torch module
        inside the block runs its own ``reset_parameters()``.

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4, in_units=3, weight_initializer="ones"))
            >>> _ = net.to_empty(device="cpu")
            >>> net.reset_parameters()
            >>> net[0].weight.sum().item()
            12.0
        """
        params, buffers = _named_tensors(self)
        with transaction([t for _, t in (*params, *buffers)]):
            lateinit_buffers = [
                (n, b) for n, b in buffers if isinstance(b, Parameter) or self._record_of(n, b)
            ]
            for name, p in [*params, *lateinit_buffers]:
                if isinstance(p, Parameter):
                    p.record.path = name
                    if p.is_shaped:
                        materialize(p)
                elif self._record_of(name, p) is not None:  # lateinit declared it
                    self._initialize_ready(name, p, None, None, None, True)
            for module in self.modules():
                if not isinstance(module, Block) and callable(
                    getattr(module, "reset_parameters", None)
                ):
                    module.reset_parameters()
            self._disarm_tree()

    def to_empty(self, *, device: torch.device | str | None, recurse: bool = True) -> Block:
        """As torch's: give every parameter and buffer uninitialized memory on ``device``.

        A SHAPED deferred tensor becomes READY with uninitialized memory (fill it with
        ``initialize(force_reinit=True)`` or your own code); a DECLARED one (unknown
        dims) is a ``DeferredInitializationError`` naming every such tensor, raised
        before anything changes.

        Args:
            device: where the memory is allocated.
            recurse: as in torch: include the children's parameters and buffers.

        Returns:
            `self`.

        Examples:
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4), nn.Dense(2))
            >>> _ = net.infer_shape((1, 3))
            >>> net.to_empty(device="cpu")[1].weight.shape, lateinit.state(net[0].weight)
            (torch.Size([2, 4]), READY)
        """
        named = [
            (f"{prefix}.{n}" if prefix else n, t)
            for prefix, m in (self.named_modules() if recurse else [("", self)])
            for table in (m._parameters, m._buffers)
            for n, t in table.items()
            if isinstance(t, Parameter)
        ]
        declared = [(n, t) for n, t in named if not t.is_shaped]
        if declared:
            listed = fmt_list(f"{n!r} {fmt_shape(tuple(t.shape))}" for n, t in declared)
            raise DeferredInitializationError(
                f"to_empty() cannot allocate {type(self).__name__}'s parameters yet: "
                f"{len(declared)} have unknown dims (-1): {listed}; nothing was changed. "
                "Fix: call net.infer_shape(...) with the input shape first (allocates "
                "nothing), then to_empty(); or pass one batch."
            )
        with transaction(_all_tensors(self)):
            target = torch.device(device) if device is not None else None
            for _, t in named:
                raw = placeholder(t)
                if not isinstance(t, Parameter):  # shared: created under another name
                    continue
                commit_storage(
                    t, torch.empty(tuple(t.shape), dtype=raw.dtype, device=target or raw.device)
                )
            super().to_empty(device=device, recurse=recurse)
            self._disarm_tree()
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> Block:
        """``.to()``/``.cuda()``/``.half()``...: a deferred parameter keeps its identity and
        stays deferred, and only changes where (and in which dtype) it will be created."""
        # Deferred buffers go through torch's path (fn returns a deferred copy); deferred
        # parameters are converted here so that each keeps its identity.
        deferred = [(n, p) for n, p in self._parameters.items() if isinstance(p, Parameter)]
        if not deferred:
            return super()._apply(fn, recurse)
        order = list(self._parameters)
        for name, _ in deferred:
            del self._parameters[name]
        try:
            super()._apply(fn, recurse)
            for _, p in deferred:
                converted = fn(p)
                if converted is not p:
                    set_storage(p, placeholder(converted), Parameter)
                    p.record.device_explicit = converted.record.device_explicit
                    p.record.dtype_explicit = converted.record.dtype_explicit
        finally:
            current = dict(self._parameters)
            current.update(deferred)
            self._parameters.clear()
            self._parameters.update((name, current[name]) for name in order)
        return self

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """``load_state_dict`` into a deferred block: unknown dims are filled from the
        stored tensors (known dims must agree), then torch copies the values in. Keys with
        Gluon's names (``gamma``, ``moving_mean``...) load as the torch names."""
        if isinstance(state_dict, dict):
            for alias, canonical in self.gluon_names().items():
                if prefix + alias in state_dict and prefix + canonical not in state_dict:
                    state_dict[prefix + canonical] = state_dict.pop(prefix + alias)
        for name, p in self._own_deferred():
            value = state_dict.get(prefix + name)
            if not isinstance(value, torch.Tensor):
                continue
            try:
                p.shape = tuple(value.shape)
            except ShapeMismatchError:
                continue  # torch reports the size mismatch below
            with torch.no_grad():
                raw = placeholder(p)
                commit_storage(p, torch.empty(p.shape, dtype=raw.dtype, device=raw.device))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if active_journal() is None:  # else load_state_dict disarms once it has succeeded
            self._disarm_tree()

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """As in torch; into a deferred network, unknown dims are filled from the stored
        tensors first. If torch reports an error, every deferred parameter this call
        shaped or created is deferred again (READY ones keep what torch copied, as in
        torch). For an all-or-nothing load from a file, see
        [`load_parameters`][lateinit.Block.load_parameters].

        Args:
            state_dict: as in torch; keys may use Gluon's names (`gamma`, `moving_mean`).
            strict: as in torch.
            assign: as in torch.

        Returns:
            torch's `(missing_keys, unexpected_keys)`.

        Examples:
            >>> from lateinit import nn
            >>> trained = nn.Sequential(nn.Dense(4, in_units=3)).initialize()
            >>> fresh = nn.Sequential(nn.Dense(4))
            >>> fresh.load_state_dict(trained.state_dict())
            <All keys matched successfully>
            >>> fresh[0].weight.shape
            torch.Size([4, 3])
        """
        with transaction(_all_tensors(self)):
            result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._disarm_tree()
        return result

    def extra_repr(self) -> str:
        return ""


def _takes_params(init: Callable[..., Any]) -> bool:
    """Whether a constructor names a ``params`` argument of its own."""
    try:
        found = inspect.signature(init).parameters.get("params")
    except (TypeError, ValueError):
        return False
    return found is not None and found.kind is not inspect.Parameter.VAR_KEYWORD


def _sharing_init(init: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Block subclass's ``__init__`` to accept Gluon 1.x's ``params=`` (the
    parameters to share, e.g. ``other.collect_params()``) without every layer naming it.

    The argument is taken out (unless the constructor names ``params`` itself, then it
    reaches ``Block.__init__``), and once the outermost constructor has returned, the new
    block shares those parameters by structural name (:meth:`Block.share_parameters`:
    known dims must agree). Construction only: nothing is added to calls."""
    takes = _takes_params(init)

    @functools.wraps(init)
    def __init__(self: Block, *args: Any, **kwargs: Any) -> None:
        shared = None if takes else kwargs.pop("params", None)
        if shared is not None:
            self.__dict__.setdefault("_lateinit_shared", shared)
        depth = self.__dict__.get("_lateinit_depth", 0)
        self.__dict__["_lateinit_depth"] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            if depth:
                self.__dict__["_lateinit_depth"] = depth
            else:
                del self.__dict__["_lateinit_depth"]
        if depth == 0:
            pending = self.__dict__.pop("_lateinit_shared", None)
            if pending is not None:
                self.share_parameters(pending)

    __init__.__lateinit_sharing__ = True  # type: ignore[attr-defined]
    return __init__


def _merge_for_sharing(
    name: str, mine: torch.nn.Parameter, theirs: torch.nn.Parameter
) -> tuple[int, ...]:
    a, b = tuple(mine.shape), tuple(theirs.shape)
    conflict = len(a) != len(b) or any(
        x != -1 and y != -1 and x != y for x, y in zip(a, b, strict=False)
    )
    if conflict:
        raise ShapeMismatchError(
            f"cannot share parameter {name!r}: this block's {name} has shape {fmt_shape(a)} "
            f"but the other block's {name} has shape {fmt_shape(b)}. Fix: give both layers the "
            "same sizes (or leave the input size unset on one of them so it is inferred).",
            param=name,
            expected=b,
            got=a,
        )
    if mine.dtype != theirs.dtype:
        raise TypeError(
            f"cannot share parameter {name!r}: dtype {mine.dtype} here vs {theirs.dtype} in "
            "the other block. Fix: create both in the same dtype."
        )
    return tuple(y if y != -1 else x for x, y in zip(a, b, strict=True))
