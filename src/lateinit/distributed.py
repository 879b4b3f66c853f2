"""Data-parallel training of lateinit networks: DDP and FSDP2 (``fully_shard``).

**DDP** (``torch.nn.parallel.DistributedDataParallel``) broadcasts and buckets the
parameters when it is constructed, so it wraps a READY network: pass one batch first, or
call ``net.infer_shape(spec)`` then ``net.initialize()`` (same ``torch.manual_seed`` on
every rank, or let DDP broadcast rank 0's values). Wrapping a network that is not READY
raises [`DeferredInitializationError`][lateinit.DeferredInitializationError] naming every
parameter not created yet, instead of letting DDP bucket empty placeholders.

**FSDP2** (``torch.distributed.fsdp.fully_shard``) is applied to a SHAPED network (after
``infer_shape``, before ``initialize``): ``fully_shard`` sees each deferred parameter as a
``meta`` tensor of its full logical shape and shards it into ``meta`` DTensors, allocating
nothing. ``net.initialize()`` then creates only each rank's shard, directly on the
mesh's device, in the parameter's dtype (or ``initialize(dtype=...)``).

Exact values: each rank creates the full parameter transiently, one parameter at a time,
fills it with the parameter's own seeded generator (so fans come from the full shape and
initializers that need the whole tensor, such as ``init.Orthogonal``, are correct), keeps
a copy of its shard and frees the rest. The sharded network therefore holds exactly the
values a single-device ``initialize()`` gives, whatever the world size. The cost: peak
extra memory on each rank is the largest single parameter (plus its shard), not the whole
model.

Calling the FSDP network before ``initialize()`` raises
[`DeferredInitializationError`][lateinit.DeferredInitializationError] (before FSDP's lazy
initialization, so the network still works once initialized). ``fully_shard`` on a
DECLARED network (unknown input sizes) raises it too: sharding needs the full shapes, so
call ``infer_shape`` first.

Example (on every rank, after ``torch.distributed.init_process_group``)::

    torch.manual_seed(0)                      # same seeds on every rank
    net = nn.Sequential(nn.Dense(1024, activation="relu"), nn.Dense(10))
    net.infer_shape(lateinit.Spec((None, 512)))  # SHAPED: no memory yet
    for layer in net:
        fully_shard(layer)
    fully_shard(net)
    net.initialize(init.Xavier())             # each rank creates its shard only
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import torch

from . import init as _init
from .block import block_state
from .parameter import (
    GateIntegration,
    Parameter,
    ParamRecord,
    active_journal,
    initialized,
    op_name,
    placeholder,
    register_integration,
    reinit_plan,
    use_error,
)
from .shapes import UNKNOWN, DeferredInitializationError, fmt_list, fmt_shape, not_ready_fixes

__all__ = ["pending_shards", "is_dtensor", "INTEGRATION"]

_FSDP2 = "torch.distributed.fsdp._fully_shard"


# ---------------------------------------------------------------------------------------
# The gate's rare path: a deferred parameter used by torch's parallel wrappers.


def check_parallel_read(param: Parameter, caller: str) -> None:
    """A parallel wrapper read a deferred parameter's ``device``/``requires_grad``.

    DDP (and DataParallel, FSDP1) read them first when they wrap a module: refuse with a
    clear error. FSDP2's ``fully_shard`` reads them when it moves states: a DECLARED
    parameter cannot be sharded; a SHAPED one may pass.
    """
    if caller.startswith(_FSDP2):
        if UNKNOWN in param.record.shape:
            raise _fsdp_declared_error(param)
        return
    wrapper = _wrapper_name(caller)
    if wrapper:
        raise _not_ready_error(param, wrapper)


def parallel_use(
    param: Parameter, caller: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A parallel wrapper computes on a deferred parameter (the gate would raise).

    From FSDP2's ``fully_shard``, a SHAPED parameter acts as a ``meta`` tensor of its full
    logical shape, so FSDP builds ``meta`` DTensor shards and allocates nothing; anything
    else raises a clear error.
    """
    if caller.startswith(_FSDP2):
        if UNKNOWN in param.record.shape:
            raise _fsdp_declared_error(param)
        _install_fsdp_guard()
        twin = torch.empty(param.record.shape, dtype=placeholder(param).dtype, device="meta")
        return func(*_replace(args, param, twin), **_replace(kwargs, param, twin))
    wrapper = _wrapper_name(caller)
    if wrapper:
        raise _not_ready_error(param, wrapper)
    raise use_error(param, op_name(func))


def _replace(obj: Any, param: Parameter, twin: torch.Tensor) -> Any:
    if obj is param:
        return twin
    if type(obj) in (list, tuple):
        return type(obj)(_replace(a, param, twin) for a in obj)
    if type(obj) is dict:
        return {k: _replace(v, param, twin) for k, v in obj.items()}
    return obj


def _wrapper_name(caller: str) -> str:
    if caller.startswith("torch.nn.parallel.distributed"):
        return "DistributedDataParallel"
    if caller.startswith("torch.nn.parallel"):
        return "DataParallel"
    if caller.startswith("torch.distributed.fsdp"):
        return "FullyShardedDataParallel"
    return ""


def _wrapped_module(param: Parameter) -> torch.nn.Module | None:
    """The module a wrapper is being built around: its constructor's ``module`` argument
    (error path only)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_locals.get("module")
        if isinstance(module, torch.nn.Module) and any(p is param for p in module.parameters()):
            return module
        frame = frame.f_back
    return None


def _describe(name: str, rec: ParamRecord) -> str:
    state = "DECLARED" if UNKNOWN in rec.shape else "SHAPED"
    return f"{name!r} {fmt_shape(rec.shape)} {state}"


def _not_ready_error(param: Parameter, wrapper: str) -> DeferredInitializationError:
    module = _wrapped_module(param)
    named: list[tuple[str, Parameter]] = []
    if module is not None:
        seen: set[int] = set()
        for name, t in (*module.named_parameters(), *module.named_buffers()):
            if isinstance(t, Parameter) and id(t) not in seen:
                seen.add(id(t))
                named.append((name, t))
    if not named:
        named = [(param.label, param)]
    listed = fmt_list(_describe(n, p.record) for n, p in named)
    many = len(named) > 1
    count = f"{len(named)} parameter{'s are' if many else ' is'} not initialized"
    unknown = "; -1 marks an unknown dim" if any(not p.is_shaped for _, p in named) else ""
    extra = (
        " (or, to shard it with FSDP2, apply fully_shard after infer_shape and before initialize)"
        if wrapper == "FullyShardedDataParallel"
        else ""
    )
    return DeferredInitializationError(
        f"{wrapper} cannot wrap this network yet: {count} ({listed}{unknown}); "
        f"{'their' if many else 'its'} initialization was deferred. {wrapper} needs every "
        "parameter created when it is constructed (it broadcasts and buckets them). "
        f"Fix: {not_ready_fixes('in_units / in_channels')}; then wrap the network{extra}."
    )


def _fsdp_declared_error(param: Parameter) -> DeferredInitializationError:
    rec = param.record
    owner = f" of {rec.owner}" if rec.owner else ""
    hint = rec.hint or "in_units / in_channels"
    return DeferredInitializationError(
        f"fully_shard cannot shard parameter {rec.label!r}{owner} with shape "
        f"{fmt_shape(rec.shape)}: its input size is not known yet (-1 marks an unknown "
        f"dim), and sharding needs the full shape of every parameter. Fix: call "
        f"net.infer_shape(...) with the input shape before fully_shard (or pass one batch "
        f"first, or give the input size: {hint}=...), then call net.initialize() after "
        f"fully_shard to create each rank's shard. (torch has already registered "
        f"fully_shard on this module: build the network again for the next try.)"
    )


# ---------------------------------------------------------------------------------------
# FSDP2: forward before initialize() gets our error, before FSDP's lazy init runs.

_guard_installed = False


def _install_fsdp_guard() -> None:
    """Make FSDP2's lazy initialization (the first forward) refuse, with our error and
    before it changes anything, while lateinit parameters are still unmaterialized meta
    shards. Installed only once a lateinit network has been sharded; costs one check per
    FSDP root at its first forward."""
    global _guard_installed
    if _guard_installed:
        return
    _guard_installed = True
    try:
        from torch.distributed.fsdp._fully_shard._fsdp_common import TrainingState
        from torch.distributed.fsdp._fully_shard._fsdp_state import FSDPState
    except ImportError:  # a torch without this layout: FSDP's own error stays
        return
    original = FSDPState._lazy_init
    if getattr(original, "_lateinit_guard", False):
        return

    @functools.wraps(original)
    def _lazy_init(self: Any) -> None:
        if getattr(self, "_is_root", True) is None:
            for module in getattr(self, "_modules", ()):
                pending = pending_shards(module)
                if pending:
                    # _pre_forward marked the state FORWARD before calling us: put it
                    # back, so that the next forward runs the root's lazy init again.
                    self._training_state = TrainingState.IDLE
                    raise _not_created_error(pending)
        original(self)

    _lazy_init._lateinit_guard = True  # type: ignore[attr-defined]
    FSDPState._lazy_init = _lazy_init  # type: ignore[method-assign]


def pending_shards(module: torch.nn.Module) -> list[tuple[str, ParamRecord]]:
    """The lateinit parameters under `module` that FSDP2 sharded but that are not
    created yet.

    After `fully_shard` on a SHAPED network, each deferred parameter is a `meta` DTensor
    until `net.initialize()` creates this rank's shard; this lists those parameters (a
    network with some is not ready to run). Parameters that were not sharded, and
    networks without FSDP, give an empty list.

    Args:
        module: the network (any `torch.nn.Module`).

    Returns:
        `(structural name, record)` pairs, in module order; the record (lateinit's
        `ParamRecord`) holds the parameter's full logical shape (`record.shape`) and
        its initializers.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.distributed import pending_shards
        >>> pending_shards(nn.Dense(3, in_units=2))  # not sharded: nothing pending
        []
    """
    out: list[tuple[str, ParamRecord]] = []
    for mod_name, m in module.named_modules():
        state = block_state(m)
        if state is None:
            continue
        for attr, rec in state.records.items():
            t = m._parameters.get(attr)
            if is_dtensor(t) and t.device.type == "meta":
                out.append((f"{mod_name}.{attr}" if mod_name else attr, rec))
    return out


def _not_created_error(pending: list[tuple[str, ParamRecord]]) -> DeferredInitializationError:
    listed = fmt_list(f"{n!r} {fmt_shape(m.shape)}" for n, m in pending)
    return DeferredInitializationError(
        f"This FSDP network cannot run yet: its sharded parameters are not created "
        f"({listed}); fully_shard was applied to it while their initialization was "
        f"deferred. Fix: call net.initialize() on every rank before the first forward: it "
        f"creates each rank's shard on the mesh's device."
    )


# ---------------------------------------------------------------------------------------
# FSDP2: initialize() on sharded parameters.


def is_dtensor(t: Any) -> bool:
    """Whether `t` is a `torch.distributed.tensor.DTensor`.

    Answers without importing `torch.distributed.tensor` (if nothing imported it, there
    is no DTensor), so it costs nothing on a single device.

    Args:
        t: any object.

    Returns:
        `True` for a DTensor (a parameter sharded by FSDP2, for instance), else `False`.

    Examples:
        >>> import torch
        >>> from lateinit.distributed import is_dtensor
        >>> is_dtensor(torch.ones(2))
        False
    """
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(t, module.DTensor)


def _initialize_sharded(
    name: str,
    p: Any,
    rec: ParamRecord | None,
    init: _init.Initializer | None,
    device: torch.device | None,
    dtype: torch.dtype | None,
    force_reinit: bool,
) -> None:
    """``Block.initialize`` for a DTensor parameter (sharded by ``fully_shard``).

    A lateinit parameter still on ``meta`` (sharded while SHAPED) gets this rank's shard:
    the full parameter is created transiently on the mesh's device with the parameter's
    own seeded generator (exactly the single-device values), this rank's part is copied
    out and the full tensor freed, so the peak extra memory is one full parameter. The
    shard replaces the meta one in place (``torch.utils.swap_tensors``: the parameter
    object, which FSDP and optimizers hold, stays the same); FSDP pads it at its lazy
    initialization. A parameter that already has values is left alone with a warning, or
    re-initialized in place with ``force_reinit``.
    """
    pending = rec is not None and p.device.type == "meta"
    plan = reinit_plan(name, p, rec, init, dtype, force_reinit or pending, fresh_seed=not pending)
    if plan is None:
        return
    rec, target_dtype = plan
    target_device = _shard_device(name, p, device, pending)
    if not pending and target_dtype != p.dtype:
        raise TypeError(
            f"initialize(dtype={target_dtype}) cannot change the dtype of the sharded "
            f"parameter {name!r} ({p.dtype}) once it is created. Fix: pass dtype= to the "
            "first initialize() after fully_shard, or convert the network before sharding."
        )
    from torch.distributed.tensor import DTensor

    with torch.no_grad():
        full = initialized(rec, tuple(p.shape), target_dtype, target_device, name)
        shard = _local_part(name, full, p)
        del full
        journal = active_journal()
        if pending:
            new = torch.nn.Parameter(
                DTensor.from_local(
                    shard,
                    p.device_mesh,
                    p.placements,
                    run_check=False,
                    shape=p.shape,
                    stride=p.stride(),
                ),
                requires_grad=p.requires_grad,
            )
            torch.utils.swap_tensors(p, new)  # `new` now holds the meta shard
            if journal is not None:
                journal.record_undo(functools.partial(torch.utils.swap_tensors, p, new))
        else:
            local = p.to_local()
            if journal is not None:
                old = local.clone()
                journal.record_undo(functools.partial(_copy_back, local, old))
            local.copy_(shard)


def _copy_back(dst: torch.Tensor, src: torch.Tensor) -> None:
    with torch.no_grad():
        dst.copy_(src)


def _shard_device(name: str, p: Any, device: torch.device | None, pending: bool) -> torch.device:
    """Where this rank's shard lives: the device of the FSDP mesh (the rank's device)."""
    mesh_type = p.device_mesh.device_type
    if device is not None:
        if device.type != mesh_type or (not pending and device != p.device):
            raise ValueError(
                f"initialize(device={str(device)!r}): the sharded parameter {name!r} lives on "
                f"its FSDP mesh's device ({mesh_type}), where fully_shard put it. Fix: call "
                "initialize() without device= (or with the mesh's device); choose the device "
                "with the mesh given to fully_shard."
            )
        return device
    if not pending:
        return p.device
    if mesh_type == "cpu":
        return torch.device("cpu")
    handle = getattr(torch, mesh_type)
    return torch.device(mesh_type, handle.current_device())


def _local_part(name: str, full: torch.Tensor, p: Any) -> torch.Tensor:
    """A contiguous copy of this rank's part of ``full`` under ``p``'s placements."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    local_shape, offset = compute_local_shape_and_global_offset(
        full.shape, p.device_mesh, p.placements
    )
    expected = tuple(p._local_tensor.shape)
    if tuple(local_shape) != expected:
        raise RuntimeError(
            f"cannot initialize the sharded parameter {name!r}: its placements "
            f"{p.placements} give a local shape {tuple(local_shape)}, but its local tensor "
            f"has shape {expected}"
        )
    index = tuple(slice(o, o + s) for o, s in zip(offset, local_shape, strict=True))
    return full[index].clone(memory_format=torch.contiguous_format)


#: The registration of torch's DDP/FSDP2 with the parameter gate (see
#: `lateinit.parameter.register_integration`): made when this module is imported
#: (``import lateinit`` does).
INTEGRATION = GateIntegration(
    prefixes=("torch.nn.parallel.", "torch.distributed."),
    on_read=check_parallel_read,
    on_use=parallel_use,
    owns=is_dtensor,
    initialize=_initialize_sharded,
)
register_integration(INTEGRATION)
