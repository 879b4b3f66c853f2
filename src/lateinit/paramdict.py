"""ParameterDict: what ``collect_params()`` returns, and a block's own ``params``.

An ordered ``dict`` of structural names to parameters with Gluon's methods
(``initialize``, ``zero_grad``, ``setattr``, ``save``/``load``, ``reset_ctx``...) and
lookups by Gluon's names (``"1.gamma"`` finds ``"1.weight"``). ``BlockParams`` is a
block's own ``params`` (Gluon 1.x's ``self.params.get(name, shape=...)``). Sits below
``lateinit.block``, which returns these; a block is taken as a ``torch.nn.Module``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn.parameter import is_lazy

from . import init as _init
from . import tensorfile
from .parameter import (
    GRAD_REQS,
    Parameter,
    as_dtype,
    device_arg,
    gluon_shape,
    initialize_parameter,
    move_placeholder,
    set_data,
    transaction,
)
from .parameter import state as state_of
from .shapes import DeferredInitializationError, ShapeMismatchError, fmt_list, fmt_shape

__all__ = ["ParameterDict", "BlockParams"]


class ParameterDict(dict[str, torch.nn.Parameter]):
    """An ordered `dict` of structural names to parameters, as `collect_params` returns.

    What [`Block.collect_params`][lateinit.Block.collect_params] returns: a plain `dict`
    (pass it to a torch optimizer as `.values()`, or to
    [`Trainer`][lateinit.Trainer]) with Gluon's methods for the whole set
    (`initialize`, `zero_grad`, `setattr`, `save`/`load`, `reset_ctx`...). Its `repr`
    lists each parameter's name, shape (`-1` = unknown), dtype and state (DECLARED,
    SHAPED or READY). Keys are torch's names (`"1.weight"`); Gluon's names of the same
    parameters (`"1.gamma"` for a BatchNorm's weight) are accepted by lookups (`[]`,
    `in`, `get`).

    Args:
        *args: as for `dict`.
        aliases: Gluon's names -> torch's names, for lookups.
        **kwargs: as for `dict`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(4), nn.BatchNorm())
        >>> params = net.collect_params()
        >>> params
        ParameterDict(
          0.weight  (4, -1)  float32  DECLARED
          0.bias    (4,)     float32  SHAPED
          1.weight  (-1,)    float32  DECLARED
          1.bias    (-1,)    float32  DECLARED
        )
        >>> params["1.gamma"] is net[1].weight  # Gluon's name for BatchNorm's weight
        True
        >>> _ = net(torch.ones(2, 3))
        >>> params
        ParameterDict(
          0.weight  (4, 3)  float32  READY
          0.bias    (4,)    float32  READY
          1.weight  (4,)    float32  READY
          1.bias    (4,)    float32  READY
        )
    """

    _aliases: dict[str, str]

    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._aliases = dict(aliases or {})

    def __getitem__(self, key: str) -> torch.nn.Parameter:
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            canonical = self.__dict__.get("_aliases", {}).get(key)
            if canonical is None or not dict.__contains__(self, canonical):
                raise
            return dict.__getitem__(self, canonical)

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        canonical = self.__dict__.get("_aliases", {}).get(key)  # type: ignore[call-overload]
        return canonical is not None and dict.__contains__(self, canonical)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[key] if key in self else default

    def __repr__(self) -> str:
        rows = [
            (
                name,
                "(?)" if is_lazy(p) else fmt_shape(tuple(p.shape)),
                str(p.dtype).replace("torch.", ""),
                # a torch Lazy* module's parameter: its size comes at its first call
                "torch lazy" if is_lazy(p) else str(state_of(p)),
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
        """Set every parameter's gradient to `None` (as torch's `set_to_none`).

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(2))
            >>> net(torch.ones(1, 3)).sum().backward()
            >>> net[0].weight.grad.shape
            torch.Size([2, 3])
            >>> net.collect_params().zero_grad()
            >>> net[0].weight.grad is None
            True
        """
        for p in self.values():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> ParameterDict:
        """Set `requires_grad` on every parameter (deferred ones included); returns `self`.

        Args:
            requires_grad: whether autograd records operations on them.

        Examples:
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4), nn.Dense(2))
            >>> _ = net.collect_params("0.*").requires_grad_(False)  # freeze layer 0
            >>> net[0].weight.requires_grad, net[1].weight.requires_grad
            (False, True)
        """
        for p in self.values():
            p.requires_grad_(requires_grad)
        return self

    # -- Gluon's ParameterDict API (docs/design.md, "Gluon's API") -------------------------
    def initialize(
        self,
        init: Any = None,
        device: torch.device | str | None = None,
        verbose: bool = False,
        force_reinit: bool = False,
        *,
        ctx: Any = None,
        dtype: Any = None,
    ) -> ParameterDict:
        """Gluon's `collect_params().initialize(init, ctx, force_reinit=)`: register
        `init` for these parameters (their own initializers still win) and create those
        whose shape is known; READY ones are left alone with a `UserWarning` unless
        `force_reinit`. The others are created at the first batch with `init`.

        Args:
            init: the initializer (an [`Initializer`][lateinit.init.Initializer], a
                name, or a callable).
            device: where parameters are created.
            verbose: accepted for Gluon's signature; ignored.
            force_reinit: draw READY parameters again (from fresh seeds).
            ctx: Gluon's name for `device`.
            dtype: the dtype of the parameters created.

        Returns:
            `self`.

        Examples:
            >>> import torch
            >>> from lateinit import nn, init
            >>> net = nn.Sequential(nn.Dense(3, in_units=2), nn.Dense(1))
            >>> _ = net.collect_params(".*weight").initialize(init.One())
            >>> net[0].weight.sum().item(), net[1].weight.shape
            (6.0, torch.Size([1, -1]))
        """
        resolved = _init.resolve(init) if init is not None else None
        dev = device_arg(device, ctx)
        with transaction(list(self.values())):
            for name, p in self.items():
                initialize_parameter(
                    p,
                    resolved,
                    device=dev,
                    dtype=as_dtype(dtype),
                    force_reinit=force_reinit,
                    name=name,
                )
        return self

    def setattr(self, name: str, value: Any) -> None:
        """Gluon's `setattr`: set an attribute on every parameter. `grad_req` also sets
        `requires_grad` (`"null"`: no gradient), in every state; `lr_mult`,
        `wd_mult` and others are plain attributes (read by
        [`Trainer`][lateinit.Trainer]).

        Args:
            name: the attribute (`"grad_req"`, `"lr_mult"`, `"wd_mult"`...).
            value: its value; for `grad_req`, `"write"`, `"add"` or `"null"`.

        Examples:
            >>> from lateinit import nn
            >>> net = nn.Dense(2, in_units=3)
            >>> net.collect_params().setattr("grad_req", "null")
            >>> net.weight.requires_grad, net.weight.grad_req
            (False, 'null')
        """
        if name == "grad_req" and value not in GRAD_REQS:
            raise ValueError(f"grad_req must be one of {GRAD_REQS}, got {value!r}")
        for p in self.values():
            if name == "grad_req":
                p.requires_grad_(value != "null")
                p.__dict__["grad_req"] = value
            else:
                setattr(p, name, value)

    def list_ctx(self) -> list[torch.device]:
        """Gluon's `list_ctx`: the devices of these parameters (once each, in order).

        A deferred parameter counts with the device it will be created on.

        Examples:
            >>> from lateinit import nn
            >>> nn.Sequential(nn.Dense(4), nn.Dense(2)).collect_params().list_ctx()
            [device(type='cpu')]
        """
        return list(dict.fromkeys(p.device for p in self.values()))

    def reset_ctx(self, ctx: Any) -> None:
        """Gluon's `reset_ctx`: move every parameter to `ctx` (a device), keeping each
        object (deferred ones will be created there).

        Args:
            ctx: a device (`"cuda:0"`, a `torch.device`).

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(4), nn.Dense(2))  # deferred
            >>> net.collect_params().reset_ctx("meta")  # created there, later
            >>> net[0].weight.device, net[1].bias.device
            (device(type='meta'), device(type='meta'))
        """
        device = device_arg(ctx, None)
        with transaction(list(self.values())), torch.no_grad():
            for p in self.values():
                if isinstance(p, Parameter):
                    p.reset_ctx(device)
                elif p.device != device:
                    p.data = p.data.to(device)

    def save(self, path: str | os.PathLike[str], strip_prefix: str = "") -> None:
        """Gluon's `save`: write these parameters to a safetensors file keyed by their
        names (less `strip_prefix`). Every parameter must be READY.

        For a whole network, [`Block.save_parameters`][lateinit.Block.save_parameters]
        writes the buffers too, atomically, with checksums.

        Args:
            path: the file to write.
            strip_prefix: a prefix every name starts with, left out of the keys.

        Raises:
            DeferredInitializationError: some parameter is not READY (nothing is written).
            ValueError: a name does not start with `strip_prefix`.

        Examples:
            >>> import os, tempfile, torch
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(2, in_units=3)).initialize()
            >>> tmp = tempfile.TemporaryDirectory()
            >>> path = os.path.join(tmp.name, "params.safetensors")
            >>> net.collect_params().save(path, strip_prefix="0.")
            >>> sorted(lateinit.load(path))
            ['bias', 'weight']
            >>> tmp.cleanup()
        """
        waiting = [n for n, p in self.items() if isinstance(p, Parameter)]
        if waiting:
            raise DeferredInitializationError(
                f"cannot save {fmt_list(repr(n) for n in waiting)}: not initialized yet. Fix: "
                "pass a batch through the network (or infer_shape(...) and initialize()) first."
            )
        out = {}
        for name, p in self.items():
            if strip_prefix and not name.startswith(strip_prefix):
                raise ValueError(
                    f"save: prefix {strip_prefix!r} is not a prefix of parameter name {name!r}"
                )
            out[name[len(strip_prefix) :]] = p
        tensorfile.save(path, out)

    def load(
        self,
        path: str | os.PathLike[str],
        device: torch.device | str | None = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        restore_prefix: str = "",
        cast_dtype: bool = False,
        dtype_source: str = "current",
        *,
        ctx: Any = None,
    ) -> None:
        """Gluon's `load`: read a file written by [`save`][lateinit.ParameterDict.save]
        into these parameters, all or nothing.

        Deferred ones take their unknown dims from the file and become READY (created on
        `device` if given), with no forward pass and no initializer; READY ones are
        overwritten in place. Values are converted to each parameter's dtype, unless
        `cast_dtype` with `dtype_source="saved"` (then a parameter takes the file's
        dtype). Keys may use Gluon's names (`"1.gamma"`).

        Args:
            path: a safetensors file of name -> tensor.
            device: where deferred parameters are created.
            allow_missing: leave parameters the file lacks as they are.
            ignore_extra: skip keys of the file that name no parameter here.
            restore_prefix: a prefix added to every key of the file (undoes `save`'s
                `strip_prefix`).
            cast_dtype: with `dtype_source="saved"`, keep the file's dtypes.
            dtype_source: `"current"` (the parameters' dtypes) or `"saved"`.
            ctx: Gluon's name for `device`.

        Raises:
            ValueError: missing or extra keys, or a shape that contradicts a known dim;
                nothing is changed.

        Examples:
            >>> import os, tempfile, torch
            >>> from lateinit import nn
            >>> trained = nn.Sequential(nn.Dense(2, in_units=3)).initialize()
            >>> tmp = tempfile.TemporaryDirectory()
            >>> path = os.path.join(tmp.name, "params.safetensors")
            >>> trained.collect_params().save(path)
            >>> fresh = nn.Sequential(nn.Dense(2))  # input size unknown
            >>> fresh.collect_params().load(path)
            >>> fresh[0].weight.shape, torch.equal(fresh[0].weight, trained[0].weight)
            (torch.Size([2, 3]), True)
            >>> tmp.cleanup()
        """
        loaded = tensorfile.load(path)
        if not isinstance(loaded, dict):
            raise ValueError(f"{os.fspath(path)!r} holds a list of tensors, not named parameters")
        values = {self._canonical(restore_prefix + k): v for k, v in loaded.items()}
        missing = [n for n in self if n not in values]
        extra = [k for k in values if k not in self]
        problems = []
        if missing and not allow_missing:
            problems.append(f"missing from the file: {fmt_list(repr(n) for n in missing)}")
        if extra and not ignore_extra:
            problems.append(f"not in these parameters: {fmt_list(repr(n) for n in extra)}")
        for name, value in values.items():
            p = dict.get(self, name)
            if p is None:
                continue
            mine, theirs = tuple(p.shape), tuple(value.shape)
            if len(mine) != len(theirs) or any(
                a != -1 and a != b for a, b in zip(mine, theirs, strict=False)
            ):
                problems.append(f"{name!r}: shape {fmt_shape(mine)} here, {theirs} in the file")
        if problems:
            raise ValueError(
                f"cannot load {os.fspath(path)!r} (nothing was changed): "
                + "; ".join(problems)
                + ". Fix: allow_missing=True / ignore_extra=True, or the right file."
            )
        dev = device_arg(device, ctx)
        keep_saved = cast_dtype and dtype_source == "saved"
        with transaction(list(self.values())), torch.no_grad():
            for name, value in values.items():
                p = dict.get(self, name)
                if p is None:
                    continue
                if isinstance(p, Parameter):
                    if dev is not None or keep_saved:
                        move_placeholder(p, dev, value.dtype if keep_saved else None)
                    set_data(p, value)
                elif keep_saved and value.dtype != p.dtype:
                    p.data = value.to(p.device)
                else:
                    set_data(p, value)

    def _canonical(self, key: str) -> str:
        return key if dict.__contains__(self, key) else self._aliases.get(key, key)


class BlockParams(ParameterDict):
    """A Block's own parameters by their names, as Gluon 1.x's ``block.params``: ``get``
    creates (or returns) a parameter registered on the block, ``get_constant`` a
    constant."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__(
            ((n, p) for n, p in block._parameters.items() if p is not None),
            aliases={a: c for a, c in block.gluon_names().items()},
        )
        self._block = block

    def get(self, name: str, default: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Gluon's ``params.get(name, shape=, init=, dtype=, grad_req=, lr_mult=,
        wd_mult=, allow_deferred_init=)``: the block's parameter ``name`` (Gluon's and
        torch's names both work), created and registered on the block if it does not
        exist yet. A 0 (or -1) dim in ``shape`` is unknown; given for an existing
        parameter, ``shape`` must agree with its known dims and fills unknown ones.

        Example:
            >>> from lateinit import nn
            >>> class Scale(nn.Block):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.weight = self.params.get("weight", shape=(0,), init="ones")
            ...     def infer_param_shapes(self, x):
            ...         self.weight.shape = (x.shape[-1],)
            ...     def forward(self, x):
            ...         return x * self.weight
            >>> import torch
            >>> Scale()(torch.full((2, 3), 2.0)).tolist()
            [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
        """
        block = self._block
        canonical = block._torch_name(name)
        existing = block._parameters.get(canonical)
        shared = block.__dict__.get("_lateinit_shared")  # params= of the constructor
        if existing is None and shared is not None and canonical in shared:
            existing = shared[canonical]
            block.register_parameter(canonical, existing)
            dict.__setitem__(self, canonical, existing)
        if existing is None:
            if not kwargs and default is not None:
                return default
            param = Parameter(canonical, **kwargs)
            block.register_parameter(canonical, param)
            dict.__setitem__(self, canonical, param)
            return param
        shape = kwargs.get("shape")
        if shape is not None:
            wanted = gluon_shape(shape)
            if isinstance(existing, Parameter):
                existing.shape = wanted
            elif len(wanted) != existing.dim() or any(
                w != -1 and w != d for w, d in zip(wanted, existing.shape, strict=False)
            ):
                raise ShapeMismatchError(
                    f"parameter {name!r} of {type(block).__name__} has shape "
                    f"{fmt_shape(tuple(existing.shape))}, not {fmt_shape(wanted)}",
                    param=name,
                    expected=tuple(existing.shape),
                    got=wanted,
                )
        return existing

    def get_constant(self, name: str, value: Any = None) -> torch.nn.Parameter:
        """Gluon's ``params.get_constant(name, value)``: a parameter without gradient
        (``grad_req="null"``) holding ``value`` (a tensor, array or nested list, in
        torch's default dtype if floating), registered on the block; an existing one is
        returned as it is.

        Example:
            >>> from lateinit import nn
            >>> block = nn.Block()
            >>> c = block.params.get_constant("scale", [1.0, 2.0])
            >>> c.tolist(), c.requires_grad, "scale" in block.collect_params()
            ([1.0, 2.0], False, True)
        """
        block = self._block
        existing = block._parameters.get(name)
        if existing is not None:
            return existing
        if value is None:
            raise TypeError(f"get_constant({name!r}): give the constant's value")
        data = torch.as_tensor(value)
        if data.is_floating_point() and not isinstance(value, torch.Tensor):
            data = data.to(torch.get_default_dtype())
        constant = torch.nn.Parameter(data.detach().clone(), requires_grad=False)
        constant.__dict__.update(grad_req="null", lr_mult=1.0, wd_mult=1.0)
        block.register_parameter(name, constant)
        dict.__setitem__(self, name, constant)
        return constant
