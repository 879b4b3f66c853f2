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

import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch

from . import init as _init
from .distributed import initialize_sharded, is_dtensor
from .parameter import (
    LOCK,
    Parameter,
    _Meta,
    _raw,
    _set_storage,
    active_journal,
    commit_storage,
    initialized,
    is_deferred,
    materialize,
    move_placeholder,
    reinit_plan,
    transaction,
)
from .shapes import ShapeMismatchError, fmt_shape

__all__ = ["Block", "ParameterDict"]


class ParameterDict(dict[str, torch.nn.Parameter]):
    """An ordered ``dict`` of structural names to parameters, as ``collect_params`` returns.

    Its ``repr`` lists each parameter's name, shape (``-1`` = unknown), dtype and state.
    """

    def __repr__(self) -> str:
        rows = [
            (
                name,
                fmt_shape(tuple(p.shape)),
                str(p.dtype).replace("torch.", ""),
                p.state if is_deferred(p) else "READY",  # type: ignore[attr-defined]
            )
            for name, p in self.items()
        ]
        if not rows:
            return "ParameterDict()"
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            f"  {n:<{widths[0]}}  {s:<{widths[1]}}  {d:<{widths[2]}}  {st}" for n, s, d, st in rows
        ]
        return "ParameterDict(\n" + "\n".join(lines) + "\n)"

    def zero_grad(self) -> None:
        """Set every parameter's gradient to ``None``."""
        for p in self.values():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> ParameterDict:
        """Set ``requires_grad`` on every parameter (deferred ones included)."""
        for p in self.values():
            p.requires_grad_(requires_grad)
        return self


def _iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _iter_tensors(item)
    elif isinstance(obj, Mapping):
        for item in obj.values():
            yield from _iter_tensors(item)


def _has_deferred(module: torch.nn.Module) -> bool:
    return any(isinstance(p, Parameter) for p in module.parameters()) or any(
        isinstance(b, Parameter) for b in module.buffers()
    )


def _locate(block: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """Find the outermost module being called around ``block`` and ``block``'s path in it.

    Walks the caller frames (error path only) for enclosing modules' ``self``. When a
    container's frame holds the child's name in a local (``Sequential`` iterates over
    names), that name is used, so a block used twice is named by the use that failed.
    """
    callers: list[tuple[torch.nn.Module, dict[str, Any]]] = []
    frame = sys._getframe(1)
    while frame is not None:
        obj = frame.f_locals.get("self")
        if isinstance(obj, torch.nn.Module) and obj is not block:
            if not callers or callers[-1][0] is not obj:
                callers.append((obj, frame.f_locals))
        frame = frame.f_back
    current, parts = block, []
    for outer, local_vars in callers:
        name = next(
            (
                v
                for v in local_vars.values()
                if isinstance(v, str) and outer._modules.get(v) is current
            ),
            None,
        ) or next(
            (n for n, m in outer.named_modules(remove_duplicate=False) if m is current and n),
            None,
        )
        if name is None:
            continue
        parts.insert(0, name)
        current = outer
    return current, ".".join(parts)


def _shown(t: torch.Tensor) -> tuple[int | None, ...]:
    """An input's shape for a message: during infer_shape, the sizes standing in for
    ``None`` dims are shown as ``None``."""
    from .shapes import _SENTINELS

    if t.device.type != "meta":
        return tuple(t.shape)
    return tuple(None if d in _SENTINELS else d for d in t.shape)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know (meta)
        return False


def _layer_label(block: torch.nn.Module, path: str) -> str:
    kind = type(block).__name__
    return f"layer {path!r} ({kind})" if path else f"layer {kind} (the network called)"


class Block(torch.nn.Module):
    """Base class of every lateinit layer and container; a ``torch.nn.Module``.

    A subclass declares parameters with unknown dims (``lateinit.Parameter((units, -1))``)
    and fills them in :meth:`infer_param_shapes` from the input shapes. A Block built only
    from child layers needs no extra code.

    Example:
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
        >>> net(torch.rand(2, 5)).shape
        torch.Size([2, 10])
        >>> tuple(net.hidden.weight.shape)
        (64, 5)
    """

    #: The constructor argument that gives this layer's input size (for messages).
    _in_size_arg: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self._li_meta: dict[str, _Meta] = {}
        self._arm()

    # -- arming: the per-instance first-call forward ------------------------------------
    def _arm(self) -> None:
        if "forward" not in self.__dict__:
            self.__dict__["forward"] = self._first_call
            if self.__dict__.get("_li_hybrid") is not None:  # eager until READY again
                self._compiled_call_impl = None

    def _disarm_tree(self) -> None:
        for module in self.modules():
            if isinstance(module, Block) and "forward" in module.__dict__:
                if not _has_deferred(module):
                    del module.__dict__["forward"]
                    module._compile_if_hybrid()

    def _compile_if_hybrid(self) -> None:
        options = self.__dict__.get("_li_hybrid")
        if options is not None and "forward" not in self.__dict__:
            self.compile(**options)  # torch.nn.Module.compile: __call__ runs the compiled

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if isinstance(value, torch.nn.Module) and "_li_meta" in self.__dict__:
            self._adopt(name, value)

    def add_module(self, name: str, module: torch.nn.Module | None) -> None:
        super().add_module(name, module)
        if module is not None:
            self._adopt(name, module)

    def _adopt(self, name: str, child: torch.nn.Module) -> None:
        """A child was added: arm this block if the child has deferred parameters, and
        name them by their structural path in this block (for error messages). Only the
        child's own subtree is walked, so building a network stays linear in its size."""
        if isinstance(child, Block):  # count uses, to tell them apart in messages
            child.__dict__["_li_uses"] = child.__dict__.get("_li_uses", 0) + 1
        named = [*child.named_parameters(prefix=name), *child.named_buffers(prefix=name)]
        deferred = [(n, t) for n, t in named if isinstance(t, Parameter)]
        for path, t in deferred:
            t._li.path = path
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
        if isinstance(param, Parameter):
            meta = param._li
            meta.name = meta.name or name
            meta.owner = meta.owner or type(self).__name__
            meta.hint = meta.hint or self._in_size_arg
            self.__dict__.setdefault("_li_meta", {})[name] = meta
            self._arm()

    def _first_call(self, *args: Any, **kwargs: Any) -> Any:
        forward = type(self).forward
        with transaction(restore_rng=True) as outermost:
            if outermost and not _has_deferred(self):  # another thread finished the pass
                self._disarm_tree()
                return forward(self, *args, **kwargs)
            if outermost:
                self._name_params()
            self._prepare(args, kwargs)
            out = forward(self, *args, **kwargs)
        if outermost:
            self._disarm_tree()
        return out

    # -- per-layer inference ------------------------------------------------------------
    def infer_param_shapes(self, *inputs: Any, **kwargs: Any) -> None:
        """Fill the unknown dims of this block's own parameters from its inputs.

        Override in a layer with parameters of unknown shape: read the input shapes and
        assign ``param.shape = full_shape`` (known dims must agree). Never compute on
        data. The base does nothing.
        """

    def _own_deferred(self) -> list[tuple[str, Parameter]]:
        """This block's own deferred parameters, then its own deferred buffers."""
        return [
            (n, p)
            for table in (self._parameters, self._buffers)
            for n, p in table.items()
            if isinstance(p, Parameter)
        ]

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Infer, then create, this block's own deferred parameters for these inputs."""
        own = self._infer_own(args, kwargs)
        if not own:
            return
        tensors = list(_iter_tensors((args, kwargs)))
        dtype_error = self._dtype_error(tensors)
        if dtype_error is not None:
            raise dtype_error
        device = self._creation_device(tensors)
        for _, p in own:
            if device is not None and not p._li.device_explicit and _raw(p).device != device:
                move_placeholder(p, device, None)
            materialize(p)

    def _infer_own(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[tuple[str, Parameter]]:
        """Fill the unknown dims of this block's own deferred parameters from these inputs
        (through ``infer_param_shapes``); return those parameters, now SHAPED."""
        own = self._own_deferred()
        if own and any(not p.is_shaped for _, p in own):
            if type(self).infer_param_shapes is Block.infer_param_shapes:
                raise self._missing_hook_error(own)
            try:
                self.infer_param_shapes(*args, **kwargs)
            except ShapeMismatchError as err:
                raise self._named(err, args) from None
            unfilled = [f"{n} {fmt_shape(p._li.shape)}" for n, p in own if not p.is_shaped]
            if unfilled:
                raise self._missing_hook_error(own, filled_nothing=", ".join(unfilled))
            if self.__dict__.get("_li_uses", 0) > 1:  # a block used twice: remember which
                self.__dict__["_li_fixed_by"] = _locate(self)[1]  # use fixed the sizes
        return own

    def _creation_device(self, tensors: list[torch.Tensor]) -> torch.device | None:
        """Where parameters without an explicit device are created: beside this block's
        READY parameters if it has any (so a layer never straddles devices), else on the
        device of the first input."""
        for table in (self._parameters, self._buffers):
            for t in table.values():
                if t is not None and not isinstance(t, Parameter):
                    return t.device
        return tensors[0].device if tensors else None

    def _missing_hook_error(
        self, own: list[tuple[str, Parameter]], filled_nothing: str = ""
    ) -> RuntimeError:
        _, path = _locate(self)
        label = _layer_label(self, path)
        names = ", ".join(f"{n} {fmt_shape(p._li.shape)}" for n, p in own if not p.is_shaped)
        if filled_nothing:
            return RuntimeError(
                f"{label}: infer_param_shapes() left unknown dims in {filled_nothing}. "
                "Fix: assign every parameter its full shape there (param.shape = (...))."
            )
        return RuntimeError(
            f"{label} has parameters of unknown shape ({names}) but does not define "
            f"infer_param_shapes(self, *inputs). Fix: define "
            f"{type(self).__name__}.infer_param_shapes to fill the unknown dims from the "
            "input shapes (self.weight.shape = (out, x.shape[-1])), or give the parameters "
            "their full shapes."
        )

    def _named_deferred_or_ready(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every parameter, then every deferred buffer, by structural name (once each)."""
        yield from self.named_parameters()
        for name, b in self.named_buffers():
            if isinstance(b, Parameter):
                yield name, b

    def _name_params(self) -> None:
        for name, p in self._named_deferred_or_ready():
            if isinstance(p, Parameter):
                p._li.path = name

    # -- error translation (error path only: nothing runs on the happy path) ------------
    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        """Say what input size the layer expects; layers override to name the axis."""
        return f"its parameter {param!r} needs size {size} on dim {dim}"

    def _named(self, err: ShapeMismatchError, args: tuple[Any, ...]) -> ShapeMismatchError:
        """Complete a hook's ShapeMismatchError with this layer's path, type and the fix."""
        if err.layer is not None:
            return err
        root, path = _locate(self)
        fixed_by = self.__dict__.get("_li_fixed_by")
        if fixed_by is not None and path == fixed_by:
            # The use that fixed the sizes cannot be the one that disagrees with them: when
            # the frames do not tell the uses apart, name another use of this block.
            others = [
                n for n, m in root.named_modules(remove_duplicate=False) if m is self and n != path
            ]
            path = others[0] if others else path
        label = _layer_label(self, path)
        shapes = ", ".join(fmt_shape(_shown(t)) for t in _iter_tensors(args))
        got = f"an input of shape {shapes}" if shapes else "its input"
        hint = self._in_size_arg
        if err.expected is not None and err.dim is not None and err.param is not None:
            local = err.param.rsplit(".", 1)[-1]
            expected = self._describe_expected(local, err.dim, err.expected[err.dim])
            sharers = self._sharers(root, local, path)
            shared = (
                f" Its {local!r} is shared with {', '.join(repr(s) for s in sharers)}, "
                "whose input fixed that size."
                if sharers
                else ""
            )
            fix = (
                "feed inputs of that size"
                + (f", or build the layer without {hint} so the size is inferred" if hint else "")
                + "; for inputs of several sizes use one input layer per size in front of "
                "a shared trunk (share_parameters)"
            )
            message = (
                f"{label} got {got}, but {expected}. Its {local} has shape "
                f"{fmt_shape(err.expected)}; this input would need {fmt_shape(err.got or ())}."
                f"{shared} Fix: {fix}."
            )
        else:
            detail = err.detail.rstrip(".")
            fix = "" if "Fix:" in detail else " Fix: give it an input of the shape it expects."
            message = f"{label} got {got}: {detail}.{fix}"
        new = err.with_message(message, path or type(self).__name__)
        new.__cause__ = err.__cause__
        return new

    def _sharers(self, root: torch.nn.Module, local: str, path: str) -> list[str]:
        """Paths of the other layers (or other uses of this one) holding ``local``."""
        param = self._parameters.get(local)
        if param is None:
            return []
        return [
            name or type(root).__name__
            for name, m in root.named_modules(remove_duplicate=False)
            if name != path and any(q is param for q in m._parameters.values())
        ]

    def _dtype_error(self, tensors: list[torch.Tensor]) -> TypeError | None:
        floating = [t for t in tensors if t.is_floating_point()]
        params = [p for p in self._parameters.values() if p is not None and p.is_floating_point()]
        if not floating or not params:
            return None
        got, want = floating[0].dtype, params[0].dtype
        if got == want or _autocast_on(floating[0].device.type):
            return None  # under autocast, ops cast their inputs themselves
        _, path = _locate(self)
        short = str(want).replace("torch.", "")
        return TypeError(
            f"{_layer_label(self, path)} got a {str(got).replace('torch.', '')} input but its "
            f"parameters are {short}. Fix: convert the input (x.to(torch.{short})), or create "
            f"the parameters in {str(got).replace('torch.', '')}: "
            f"net.initialize(dtype={got}) or net.to({got}) before the first batch."
        )

    def _explain(self, err: BaseException, *inputs: Any) -> BaseException:
        """Turn a raw kernel error into a named ShapeMismatchError/TypeError when the
        inputs disagree with this layer's known sizes or dtype; else return ``err``.

        Layers call it from an ``except`` branch around their kernels, so it costs nothing
        until something fails.
        """
        with LOCK:
            saved: list[tuple[dict[str, Any], str, torch.Tensor]] = []
            try:
                for table in (self._parameters, self._buffers):
                    for name, p in list(table.items()):
                        if p is not None and not isinstance(p, Parameter):
                            meta = _Meta(tuple(p.shape), None, 0)
                            meta.name = name
                            saved.append((table, name, p))
                            table[name] = Parameter._from_meta(
                                meta, torch.empty(0, dtype=p.dtype, device="meta"), False
                            )
                self.infer_param_shapes(*inputs)
            except ShapeMismatchError as mismatch:
                named = self._named(mismatch, inputs)
                named.__cause__ = err
                return named
            except Exception:
                pass
            finally:
                for table, name, p in saved:
                    table[name] = p
        dtype_error = self._dtype_error(list(_iter_tensors(inputs)))
        if dtype_error is not None:
            dtype_error.__cause__ = err
            return dtype_error
        return err

    # -- public API -----------------------------------------------------------------------
    def initialize(
        self,
        init: Any = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        force_reinit: bool = False,
    ) -> Block:
        """Register a default initializer and create every parameter whose shape is known.

        Args:
            init: the initializer for parameters without one of their own (an
                :mod:`lateinit.init` initializer, a name such as ``"xavier_uniform"``, or a
                ``torch.nn.init`` function). A later call before data arrives replaces it.
            device: where parameters are created (default: the device of the first input).
            dtype: the floating dtype of the parameters (default: torch's default dtype).
            force_reinit: re-initialize parameters that are already READY; otherwise each
                one is left alone with a ``UserWarning``.

        Returns ``self``. Parameters whose shape is still unknown wait for data (or
        ``infer_shape``), then use the registered initializer. On a network sharded by
        FSDP2's ``fully_shard`` while SHAPED, each rank creates only its own shard, on the
        mesh's device, with the single-device values (see :mod:`lateinit.distributed`).

        Example:
            >>> import torch
            >>> from lateinit import nn, init
            >>> net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2))
            >>> _ = net.initialize(init.One())
            >>> net[0].weight.sum().item(), net[1].weight.shape
            (12.0, torch.Size([2, -1]))
        """
        resolved = _init.resolve(init) if init is not None else None
        dev = torch.device(device) if device is not None else None
        with transaction():
            for name, p in self._named_deferred_or_ready():
                if isinstance(p, Parameter):
                    self._initialize_deferred(name, p, resolved, dev, dtype)
                elif is_dtensor(p):  # sharded by FSDP2: create this rank's shard
                    meta = self._meta_of(name, p)
                    initialize_sharded(name, p, meta, resolved, dev, dtype, force_reinit)
                else:
                    self._initialize_ready(name, p, resolved, dev, dtype, force_reinit)
            self._disarm_tree()
        return self

    @staticmethod
    def _initialize_deferred(
        name: str,
        p: Parameter,
        init: _init.Initializer | None,
        device: torch.device | None,
        dtype: torch.dtype | None,
    ) -> None:
        meta = p._li
        meta.path = name
        if init is not None:
            meta.registered = init
        if device is not None or dtype is not None:
            move_placeholder(p, device, dtype)
            meta.device_explicit = meta.device_explicit or device is not None
        if p.is_shaped:
            materialize(p)

    def _initialize_ready(
        self,
        name: str,
        p: torch.nn.Parameter,
        init: _init.Initializer | None,
        device: torch.device | None,
        dtype: torch.dtype | None,
        force_reinit: bool,
    ) -> None:
        plan = reinit_plan(name, p, self._meta_of(name, p), init, dtype, force_reinit)
        if plan is None:
            return
        meta, target_dtype = plan
        data = initialized(meta, p.shape, target_dtype, device or p.device, name)
        journal = active_journal()
        if journal is not None:
            journal.record_storage(p, p.data, torch.nn.Parameter)
        _set_storage(p, data, torch.nn.Parameter)

    def _meta_of(self, name: str, p: torch.nn.Parameter) -> _Meta | None:
        meta = p.__dict__.get("_li")
        if meta is not None:
            return meta
        owner_name, _, attr = name.rpartition(".")
        owner = self.get_submodule(owner_name) if owner_name else self
        metas = owner.__dict__.get("_li_meta", {})
        return metas.get(attr)

    def infer_shape(self, *inputs: Any) -> Any:
        """Infer every parameter's shape without data and without allocating.

        Args:
            *inputs: what the network would be called with: tensors (any device, ``meta``
                included), shape tuples, or :class:`lateinit.Spec` (``None`` dims mean
                any size, e.g. the batch); nested tuples/lists/dicts of those.

        Returns the output spec(s) (:class:`lateinit.Spec`, ``None`` for dims that depend
        on a ``None`` input dim). Deferred parameters end SHAPED (``initialize(device=,
        dtype=)`` then creates them directly where they belong); READY ones are untouched.
        Runs the forward on meta tensors; modules of identical structure on identical
        inputs run once. A forward that needs real values (``.item()``) raises a
        ``RuntimeError`` naming the block.

        Example:
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(256, activation="relu"), nn.Dense(10))
            >>> net.infer_shape(lateinit.Spec((None, 20)))
            Spec(shape=(None, 10), dtype=torch.float32)
            >>> net.collect_params()["0.weight"]
            Parameter(shape=(256, 20), dtype=float32, device=cpu, state=SHAPED)
        """
        from .shapes import infer_shape

        self._name_params()
        return infer_shape(self, *inputs)

    def hybridize(self, active: bool = True, **compile_kwargs: Any) -> Block:
        """Run this block through ``torch.compile`` once its shapes are known.

        Args:
            active: ``False`` turns compilation off again (calls run eagerly).
            **compile_kwargs: options for ``torch.compile`` (``fullgraph=True``,
                ``dynamic=True``, ``mode=``, ``backend=``...).

        Returns ``self``. While a parameter under this block is still deferred, calls run
        eagerly (the initializing call must: it creates the parameters); as soon as the
        whole block is READY (first batch, ``infer_shape`` + ``initialize``, or
        ``load_parameters``) later calls go through the compiled block
        (``torch.nn.Module.compile``). Calling ``hybridize`` again with other options
        recompiles.

        Example:
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
            self.__dict__["_li_hybrid"] = None
            self._compiled_call_impl = None
            return self
        self.__dict__["_li_hybrid"] = dict(compile_kwargs)
        self._compiled_call_impl = None
        self._compile_if_hybrid()
        return self

    def summary(self, *inputs: Any, max_depth: int | None = None) -> Any:
        """A table of layers (path, type, output shape, parameters, FLOPs) with totals;
        see :func:`lateinit.summary.summary`. Runs on meta tensors: nothing is allocated.
        Without inputs, unknown shapes show ``?`` and ``(deferred)``.

        Example:
            >>> import lateinit
            >>> from lateinit import nn
            >>> s = nn.Sequential(nn.Dense(10)).summary((2, 20))
            >>> s.totals.flops, s.totals.params
            (800, 210)
        """
        from .summary import summary

        return summary(self, *inputs, max_depth=max_depth)

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """An ordered dict of structural names (``"0.weight"``) to parameters.

        Args:
            select: a regex; only names it matches (``re.match``) are kept.

        Shared parameters appear once. The ``repr`` lists shape (``-1`` = unknown), dtype
        and state (DECLARED, SHAPED or READY).
        """
        pattern = re.compile(select) if select is not None else None
        out = ParameterDict()
        for name, p in self.named_parameters():
            if isinstance(p, Parameter):
                p._li.path = name
            if pattern is None or pattern.match(name):
                out[name] = p
        return out

    def share_parameters(self, other: torch.nn.Module | Mapping[str, torch.Tensor]) -> Block:
        """Tie this block's parameters to ``other``'s (a Block or ``collect_params()``)
        by structural name; returns ``self``.

        Known dims of both sides must agree (unknown dims are filled from either side); a
        conflict raises ``ShapeMismatchError`` naming both parameters and changes nothing.
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
        with LOCK:
            for module, attr, target, merged in plan:
                if isinstance(target, Parameter):
                    target.shape = merged
                module._parameters[attr] = target
                if isinstance(target, Parameter) and isinstance(module, Block):
                    module._li_meta[attr] = target._li
                    module._arm()
            if any(isinstance(t, Parameter) for _, _, t, _ in plan):
                self._arm()
        return self

    def save_parameters(self, path: str | os.PathLike[str], *, sync: bool = True) -> None:
        """Write every parameter and persistent buffer to a safetensors file keyed by
        structural names (``"0.weight"``); a shared parameter is written once.

        Every parameter must be READY (a clear error names the ones that are not, and no
        file is written). The file is written beside ``path`` under a temporary name,
        flushed to disk, then renamed over ``path``: a crash leaves the old file or the
        new one, never a broken one (``sync=False`` skips the flush: see
        :func:`lateinit.io.save_parameters`).
        """
        from .io import save_parameters

        save_parameters(self, path, sync=sync)

    def load_parameters(
        self,
        path: str | os.PathLike[str],
        *,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Block:
        """Load a safetensors file written by :meth:`save_parameters`; returns ``self``.

        Into a READY network the values are replaced in place (each parameter stays the
        same object, in the same memory); into a deferred one the unknown dims are filled
        from the file and the parameters are created on their device with the file's
        values, with no forward pass and no initializer run. Everything (keys, shapes,
        dtypes, the file itself) is checked before anything changes: a bad file or a
        mismatch changes nothing. Never unpickles. See
        :func:`lateinit.io.load_parameters` for the arguments.

        Example:
            >>> import os, tempfile, torch
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4), nn.Dense(2))
            >>> _ = net(torch.ones(1, 3))
            >>> path = os.path.join(tempfile.mkdtemp(), "net.safetensors")
            >>> net.save_parameters(path)
            >>> fresh = nn.Sequential(nn.Dense(4), nn.Dense(2)).load_parameters(path)
            >>> fresh[0].weight.shape, torch.equal(fresh[1].weight, net[1].weight)
            (torch.Size([4, 3]), True)
        """
        from .io import load_parameters

        load_parameters(
            self,
            path,
            allow_missing=allow_missing,
            ignore_extra=ignore_extra,
            device=device,
            dtype=dtype,
        )
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
                    _set_storage(p, _raw(converted), Parameter)
                    p._li.device_explicit = converted._li.device_explicit
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
        stored tensors (known dims must agree), then torch copies the values in."""
        for name, p in self._own_deferred():
            value = state_dict.get(prefix + name)
            if not isinstance(value, torch.Tensor):
                continue
            try:
                p.shape = tuple(value.shape)
            except ShapeMismatchError:
                continue  # torch reports the size mismatch below
            with torch.no_grad():
                raw = _raw(p)
                commit_storage(p, torch.empty(p._li.shape, dtype=raw.dtype, device=raw.device))
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
        torch). For an all-or-nothing load from a file, see :meth:`load_parameters`."""
        with transaction():
            result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._disarm_tree()
        return result

    def extra_repr(self) -> str:
        return ""


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
