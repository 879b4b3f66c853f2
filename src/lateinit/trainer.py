"""Trainer: MXNet Gluon's ``Trainer`` on torch optimizers, usable before shapes are known.

``Trainer(net.collect_params(), "adam", {"learning_rate": 1e-3})`` can be built as soon as
the network is, before any batch: the torch optimizer it drives only ever holds READY
parameters. Deferred ones wait in a *pending* list; at each :meth:`Trainer.step` (only
while that list is not empty) the ones that became READY *join* the optimizer, in place:
they are appended to its first parameter group (so they get the group's current
hyperparameters, a changed learning rate included) with the per-parameter state the
optimizer class would give them (taken from a throwaway instance built over them, which
covers ``Adagrad``, whose constructor fills its state). The optimizer object never
changes, so an ``lr_scheduler`` attached to :attr:`Trainer.optimizer` keeps working.

A layer that no batch has reached yet neither breaks :meth:`~Trainer.step` nor is
silently dropped: its parameters stay pending, one ``UserWarning`` per layer says so, and
they join as soon as data reaches it.

Gradients follow Gluon: the loss is usually *summed* over the batch, and ``step(batch_size)``
multiplies every gradient by ``rescale_grad / batch_size``, clips it to ``±clip_gradient``
if set, then runs the torch optimizer's step. For ``sgd``/``nag``, ``adam``, ``adamw`` and
``adagrad`` over CPU or CUDA parameters (unless ``fused``/``foreach``, ``dampening`` or
``capturable`` are given), the Trainer builds torch's *fused* optimizer and hands it the
factor as ``grad_scale``, the way a ``GradScaler`` unscales: the rescaling happens inside
the update kernel, with no pass over the gradients of its own. Otherwise it is one
``_foreach_mul_`` before the step.

Gradient requests follow Gluon too (``grad_req``): ``"write"`` (the default) parameters
have their gradients cleared (set to ``None``) by ``step`` after the update, so Gluon's
loop ``loss.backward(); trainer.step(n)``, which never zeroes gradients, sees each
backward's gradient alone, as with MXNet's overwriting backward. ``"add"`` parameters
keep accumulating until the user clears them (``trainer.zero_grad()``); their stored
gradient is never rescaled in place (the update uses a rescaled copy), so ``step(n)``
does not rescale leftovers. ``"null"`` parameters get ``requires_grad=False`` and stay out
of the optimizer. Nothing is hooked: a plain torch loop over the same parameters is
untouched.

``lr_mult`` / ``wd_mult`` (per parameter, as Gluon's ``Parameter.lr_mult``) put a
parameter in its own torch parameter group whose ``lr`` / ``weight_decay`` are the base
values times the multipliers (kept so by :meth:`Trainer.set_learning_rate` and
:meth:`Trainer.load_states`); the first group always holds the parameters without
multipliers and carries the base values.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .distributed import is_dtensor
from .io import atomic_write
from .parameter import is_deferred, record_of
from .shapes import fmt_list

__all__ = ["OPTIMIZERS", "Trainer"]

#: Optimizer names accepted by :class:`Trainer`: name -> (``torch.optim`` class name,
#: fixed constructor arguments). Every class is in ``torch.optim`` since torch 2.6.
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {}),
    "nag": ("SGD", {"nesterov": True}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("NAdam", {}),
    "radam": ("RAdam", {}),
    "rmsprop": ("RMSprop", {}),
    "rprop": ("Rprop", {}),
    "asgd": ("ASGD", {}),
}

# Gluon hyperparameter names -> torch's (where the optimizer takes the torch one).
_GLUON_NAMES = {"learning_rate": "lr", "wd": "weight_decay", "epsilon": "eps"}
_TRAINER_KEYS = ("clip_gradient", "rescale_grad")
_FORMAT = "lateinit.Trainer.states"
_VERSION = 1
_PLAIN = (bool, int, float, str, type(None), torch.Tensor)
GRAD_REQS = ("write", "add", "null")
# group keys scaled by a group's multipliers: learning-rate-like ones, weight decay
_LR_KEYS = ("lr", "initial_lr")
_MULT_KEYS = ("lr_mult", "wd_mult")


def available_optimizers() -> list[str]:
    """The optimizer names :class:`Trainer` accepts."""
    return list(OPTIMIZERS)


def _resolve_optimizer(optimizer: Any) -> tuple[type[torch.optim.Optimizer], str, dict[str, Any]]:
    """(class, label for messages, fixed kwargs) for a name or an Optimizer subclass."""
    if isinstance(optimizer, str):
        key = optimizer.lower()
        names = ", ".join(available_optimizers())
        if key not in OPTIMIZERS:
            raise ValueError(
                f"Trainer: unknown optimizer {optimizer!r}; use one of {names}, or pass a "
                f"torch.optim.Optimizer subclass (e.g. torch.optim.SGD)"
            )
        cls_name, fixed = OPTIMIZERS[key]
        cls = getattr(torch.optim, cls_name)
        return cls, f"{key!r} (torch.optim.{cls_name})", dict(fixed)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer, f"{optimizer.__module__}.{optimizer.__qualname__}", {}
    if isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            "Trainer: pass the optimizer's class (e.g. torch.optim.Adam) and its "
            "hyperparameters in optimizer_params, not an optimizer instance (a torch "
            "optimizer built over the network's parameters works without a Trainer)"
        )
    raise TypeError(
        f"Trainer: optimizer must be a name ({', '.join(available_optimizers())}) or a "
        f"torch.optim.Optimizer subclass, got {optimizer!r}"
    )


def _constructor_keys(cls: type) -> tuple[list[str], bool]:
    """The keyword arguments ``cls.__init__`` takes (besides ``params``), and whether it
    also takes ``**kwargs``."""
    keys, var_kw = [], False
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif name not in ("self", "params") and p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            keys.append(name)
    return keys, var_kw


def _default(cls: type, key: str) -> Any:
    return inspect.signature(cls.__init__).parameters[key].default


def _translate(
    cls: type, label: str, given: Mapping[str, Any], fixed: dict[str, Any]
) -> tuple[dict[str, Any], float | None, float]:
    """Gluon and torch hyperparameter names -> the torch constructor's kwargs, plus the
    Trainer's own ``clip_gradient`` and ``rescale_grad``."""
    keys, var_kw = _constructor_keys(cls)
    aliases = {g: t for g, t in _GLUON_NAMES.items() if t in keys or var_kw}
    has_betas = "betas" in keys
    if issubclass(cls, torch.optim.RMSprop):
        aliases["gamma1"] = "alpha"
    gluon = [*aliases, *(("beta1", "beta2") if has_betas else ())]
    out: dict[str, Any] = dict(fixed)
    source: dict[str, str] = {}
    betas: dict[str, Any] = {}
    clip: float | None = None
    rescale = 1.0

    def put(target: str, value: Any, key: str) -> None:
        if target in source:
            raise ValueError(
                f"Trainer: optimizer_params gives {target!r} twice (as {source[target]!r} and "
                f"as {key!r}) for {label}"
            )
        source[target] = key
        out[target] = value

    for key, value in given.items():
        if key == "clip_gradient":
            if value is not None and not value > 0:
                raise ValueError(f"Trainer: clip_gradient must be > 0 (or None), got {value!r}")
            clip = None if value is None else float(value)
        elif key == "rescale_grad":
            rescale = float(value)
        elif key in aliases:
            put(aliases[key], value, key)
        elif key in ("beta1", "beta2") and has_betas:
            betas[key] = value
        elif key in keys or var_kw:
            put(key, value, key)
        else:
            raise ValueError(
                f"Trainer: unknown optimizer_params key {key!r} for {label}. Accepted: "
                f"{', '.join(gluon)} (Gluon names); {', '.join(keys)} (torch names); "
                f"{', '.join(_TRAINER_KEYS)} (Trainer)"
            )
    if betas:
        b1, b2 = _default(cls, "betas")
        put("betas", (betas.get("beta1", b1), betas.get("beta2", b2)), "beta1/beta2")
    if fixed.get("nesterov"):  # 'nag': torch's Nesterov SGD needs momentum > 0
        out.setdefault("momentum", 0.9)
        if not out["momentum"] > 0:
            raise ValueError(
                f"Trainer: {label} (Nesterov momentum) needs momentum > 0, got "
                f"{out['momentum']!r}; use 'sgd' for plain SGD"
            )
    return out, clip, rescale


def _named_params(params: Any) -> list[tuple[str, torch.Tensor]]:
    """(name, parameter) pairs, shared parameters once (by identity)."""
    if isinstance(params, torch.nn.Module):
        collect = getattr(params, "collect_params", None)
        items: Iterable[tuple[str, Any]] = (
            collect().items() if callable(collect) else params.named_parameters()
        )
    elif isinstance(params, Mapping):
        items = ((str(k), v) for k, v in params.items())
    elif isinstance(params, torch.Tensor):
        items = [("param0", params)]
    else:
        try:
            items = [(f"param{i}", p) for i, p in enumerate(params)]
        except TypeError:
            raise TypeError(
                "Trainer: params must be a ParameterDict/dict (net.collect_params()) or an "
                f"iterable of parameters, got {type(params).__name__}"
            ) from None
    out, seen = [], set()
    for name, p in items:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"Trainer: {name!r} is a {type(p).__name__}, not a parameter")
        if id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def _layer_of(name: str, p: torch.Tensor, named: bool) -> str:
    """The layer path of a parameter: its name without the last part (``'2.weight'`` ->
    ``'2'``), with the layer type when lateinit knows it. For parameters given without
    names, the path lateinit recorded in the network is used when there is one."""
    rec = record_of(p)
    if not named and rec is not None and rec.path:
        name = rec.path
    path = name.rpartition(".")[0] or name
    owner = rec.owner if rec is not None else ""
    return f"{path!r} ({owner})" if owner else repr(path)


def _shape_of(p: torch.Tensor) -> list[int]:
    return [int(d) for d in p.shape]  # -1 for the unknown dims of a deferred parameter


def _shapes_agree(saved: list[int], current: list[int]) -> bool:
    return len(saved) == len(current) and all(
        a == b or a == -1 or b == -1 for a, b in zip(saved, current, strict=True)
    )


def _cast_state(p: torch.Tensor, state: Mapping[str, Any], group: Mapping[str, Any]) -> dict:
    """Put loaded state values where ``p`` lives, as torch's ``Optimizer.load_state_dict``
    does: floating state in the parameter's dtype and on its device; ``step`` left as it
    is unless the group is fused or capturable."""
    special = bool(group.get("fused")) or bool(group.get("capturable"))
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            if key == "step":
                if special:
                    value = value.to(dtype=torch.float32, device=p.device)
            elif p.is_floating_point():
                value = value.to(dtype=p.dtype, device=p.device)
            else:
                value = value.to(device=p.device)
        out[key] = value
    return out


def _plain(value: Any) -> bool:
    """Whether ``torch.load(weights_only=True)`` can read ``value`` back."""
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


def _check_req(req: Any, where: str) -> str:
    if req not in GRAD_REQS:
        raise ValueError(
            f"Trainer: grad_req of {where} must be one of 'write', 'add', 'null'; got {req!r}"
        )
    return req


def _check_mult(value: Any, key: str, where: str) -> float:
    try:
        mult = float(value)
    except (TypeError, ValueError):
        mult = float("nan")
    if not (math.isfinite(mult) and mult >= 0):
        raise ValueError(f"Trainer: {key} of {where} must be a number >= 0, got {value!r}")
    return mult


def _scaled(value: Any, mult: float) -> Any:
    """``value * mult``; a tensor (a capturable learning rate) gets a new tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone().mul_(mult)
    return value * mult


def _group_values(base: Mapping[str, Any], key: tuple[float, float]) -> dict[str, Any]:
    """The hyperparameters of the group with multipliers ``key`` (lr, wd), from the base
    group's: learning rates times ``lr_mult``, weight decay times ``wd_mult``."""
    lr_mult, wd_mult = key
    out = {k: v for k, v in base.items() if k != "params" and k not in _MULT_KEYS}
    for k in _LR_KEYS:
        if k in out:
            out[k] = _scaled(out[k], lr_mult)
    if "weight_decay" in out:
        out["weight_decay"] = _scaled(out["weight_decay"], wd_mult)
    if key != (1.0, 1.0):
        out["lr_mult"], out["wd_mult"] = lr_mult, wd_mult
    return out


def _key_of(group: Mapping[str, Any]) -> tuple[float, float]:
    return (float(group.get("lr_mult", 1.0)), float(group.get("wd_mult", 1.0)))


#: torch optimizers whose fused kernels divide the gradients by a ``grad_scale`` inside
#: the update (the AMP path): the Trainer builds them fused, so Gluon's rescaling by
#: ``rescale_grad / batch_size`` costs no pass over the gradients of its own
#: (docs/design.md, "Training").
_FUSED_RESCALE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)


def _fusable(p: torch.Tensor) -> bool:
    """Whether torch's fused optimizers take ``p``: a plain floating tensor on the CPU or a
    CUDA device (not a DTensor shard)."""
    return p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") and not is_dtensor(p)


class Trainer:
    """Gluon's ``Trainer`` on a torch optimizer; can be built before any shape is known.

    Args:
        params: ``net.collect_params()`` (or any ``dict`` of names to parameters; the
            names are used in messages and in
            [`save_states`][lateinit.Trainer.save_states]), a network (its
            ``collect_params()``), or any iterable of parameters (then named ``param0``,
            ``param1``, ...). A parameter listed twice (shared) is counted once.
        optimizer: a name — ``sgd``, ``nag`` (SGD with Nesterov momentum, default
            momentum 0.9), ``adam``, ``adamw``, ``adagrad``, ``adadelta``, ``adamax``,
            ``nadam``, ``radam``, ``rmsprop``, ``rprop``, ``asgd`` — or a
            ``torch.optim.Optimizer`` subclass (e.g. a Lamb from another package).
        optimizer_params: hyperparameters, by Gluon name (``learning_rate``, ``wd``,
            ``beta1``, ``beta2``, ``epsilon``, ``momentum``, ``gamma1`` for rmsprop) or by
            torch name (``lr``, ``weight_decay``, ``betas``, ``eps``, ``alpha``, ...);
            unset ones take torch's defaults. Two more are the Trainer's own:
            ``rescale_grad`` (default 1) and ``clip_gradient`` (clip each gradient
            element to ``±value`` after rescaling; default none).
        grad_req: Gluon's gradient request, for every parameter (a string) or by name (a
            ``dict``; unnamed ones default to ``"write"``). ``"write"`` (default): each
            [`step`][lateinit.Trainer.step] clears the gradients after the update, so
            every backward between two steps starts afresh (Gluon's loop needs no
            ``zero_grad``). ``"add"``: gradients accumulate across steps until
            [`zero_grad`][lateinit.Trainer.zero_grad].
            ``"null"``: frozen (``requires_grad=False``, never updated). A parameter's
            own ``grad_req`` attribute (``p.grad_req = "add"``, as Gluon's
            ``Parameter.grad_req``) wins over a string given here; a ``dict`` entry wins
            over the attribute.
        lr_mult: multipliers of the learning rate by parameter name (``dict``); a
            parameter's own ``lr_mult`` attribute is used otherwise (default 1). As in
            MXNet, the multiplier scales the parameter's learning rate inside the update
            (momentum included): the parameter lives in a torch parameter group with
            ``lr`` multiplied.
        wd_mult: multipliers of the weight decay by parameter name (``dict``); a
            parameter's own ``wd_mult`` attribute is used otherwise (default 1): its
            parameter group's ``weight_decay`` is multiplied.

    Parameter settings (``grad_req``, ``lr_mult``, ``wd_mult``) are read when the Trainer
    is built; build a new Trainer (keeping states with
    [`save_states`][lateinit.Trainer.save_states] /
    [`load_states`][lateinit.Trainer.load_states]) to change them.

    The torch optimizer ([`optimizer`][lateinit.Trainer.optimizer]) exists from the
    start and only ever holds READY parameters; deferred ones (DECLARED or SHAPED) wait
    in [`pending`][lateinit.Trainer.pending] and join their parameter group (the first,
    unless they have multipliers) at the first [`step`][lateinit.Trainer.step] after
    they become READY. Its step must not need a closure (so not ``LBFGS``).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> from lateinit import Trainer
        >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(3))
        >>> trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
        >>> trainer  # built before any shape is known
        Trainer('sgd' (torch.optim.SGD), lr=0.1, parameters: 0 ready, 4 pending)
        >>> x, y = torch.rand(4, 5), torch.tensor([0, 1, 2, 0])
        >>> loss = torch.nn.functional.cross_entropy(net(x), y, reduction="sum")
        >>> loss.backward()
        >>> trainer.step(batch_size=4)  # gradients / 4, SGD, then gradients cleared
        >>> net[1].bias.grad is None  # grad_req="write": the next backward starts afresh
        True
        >>> trainer
        Trainer('sgd' (torch.optim.SGD), lr=0.1, parameters: 4 ready, 0 pending)
    """

    def __init__(
        self,
        params: Any,
        optimizer: str | type[torch.optim.Optimizer],
        optimizer_params: Mapping[str, Any] | None = None,
        grad_req: str | Mapping[str, str] = "write",
        lr_mult: Mapping[str, float] | None = None,
        wd_mult: Mapping[str, float] | None = None,
    ) -> None:
        self._cls, self._label, fixed = _resolve_optimizer(optimizer)
        self._kwargs, self._clip, self._rescale = _translate(
            self._cls, self._label, dict(optimizer_params or {}), fixed
        )
        keys, var_kw = _constructor_keys(self._cls)
        self._ctor_keys = set(keys) | (set(self._kwargs) if var_kw else set())
        named = _named_params(params)
        # Gluon's rescaling inside torch's fused update, unless something asks otherwise
        # (an implementation chosen, or SGD's dampening: the fused kernel's first step
        # with a zero momentum buffer would apply it, torch's unfused first step does not)
        self._fused_rescale = (
            self._cls in _FUSED_RESCALE
            and not {"fused", "foreach", "differentiable", "capturable"} & set(self._kwargs)
            and not self._kwargs.get("dampening")
            and all(_fusable(p) for _, p in named)
        )
        if self._fused_rescale:
            self._kwargs["fused"] = True
        self._grad_scale: torch.Tensor | None = None
        self._named = isinstance(params, (Mapping, torch.nn.Module))
        self._params: dict[str, torch.Tensor] = dict(named)
        self._req, self._mult = self._settings(grad_req, lr_mult, wd_mult)
        for name, p in named:
            if self._req[name] == "null":
                p.requires_grad_(False)
        named = [(n, p) for n, p in named if self._req[n] != "null"]
        # READY "add" parameters -> (a weak reference to the gradient they held after the
        # last step, its version counter), None before any: that gradient, unchanged, is
        # stale (a backward either adds in place, bumping the version, or sets a new one)
        self._add: dict[int, tuple[weakref.ref, int] | None] = {}
        self._loaded: dict[str, dict[str, Any]] = {}  # loaded states of pending parameters
        self._loaded_shapes: dict[str, list[int]] = {}
        self._warned: set[str] = set()  # layers warned about
        ready = [(n, p) for n, p in named if not is_deferred(p)]
        # READY parameters held by the optimizer (in its order) and their names; the
        # pending ones, waiting to join.
        self._ready: list[torch.Tensor] = [p for _, p in ready]
        self._ready_names: list[str] = [n for n, _ in ready]
        self._pending: list[tuple[str, torch.Tensor]] = [(n, p) for n, p in named if is_deferred(p)]
        self._optimizer: torch.optim.Optimizer | None = self._create(ready)
        if self._optimizer is None:  # the class refuses an empty group: made at the first join
            self._ready, self._ready_names, self._pending = [], [], list(named)
        else:
            self._track_add(ready)

    def _settings(
        self, grad_req: Any, lr_mult: Any, wd_mult: Any
    ) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
        """Each parameter's grad_req and (lr_mult, wd_mult): a dict entry given to the
        Trainer, else the parameter's own attribute, else the Trainer's default."""
        by_name: dict[str, dict[str, Any]] = {}
        for key, given in (("grad_req", grad_req), ("lr_mult", lr_mult), ("wd_mult", wd_mult)):
            if isinstance(given, Mapping):
                unknown = [str(n) for n in given if n not in self._params]
                if unknown:
                    raise ValueError(
                        f"Trainer: {key} names unknown parameter(s) "
                        f"{fmt_list(map(repr, unknown))}; the parameters are "
                        f"{fmt_list(map(repr, self._params))}"
                    )
                by_name[key] = dict(given)
            elif given is not None and key != "grad_req":
                raise TypeError(
                    f"Trainer: {key} must be a dict of parameter names to multipliers "
                    f"(or set {key} on the parameters), got {type(given).__name__}"
                )
        default = "write" if isinstance(grad_req, Mapping) else _check_req(grad_req, "Trainer")
        reqs: dict[str, str] = {}
        mults: dict[str, tuple[float, float]] = {}
        for name, p in self._params.items():
            where = f"parameter {name!r}"
            req = by_name.get("grad_req", {}).get(name, getattr(p, "grad_req", None))
            reqs[name] = default if req is None else _check_req(req, where)
            lm, wm = (
                by_name.get(k, {}).get(name, getattr(p, k, None)) for k in ("lr_mult", "wd_mult")
            )
            mults[name] = (
                1.0 if lm is None else _check_mult(lm, "lr_mult", where),
                1.0 if wm is None else _check_mult(wm, "wd_mult", where),
            )
        return reqs, mults

    # -- the optimizer and the pending list --------------------------------------------
    def _by_group(
        self, named: list[tuple[str, torch.Tensor]]
    ) -> dict[tuple[float, float], list[torch.Tensor]]:
        """Parameters by their (lr_mult, wd_mult), in order."""
        out: dict[tuple[float, float], list[torch.Tensor]] = {}
        for name, p in named:
            out.setdefault(self._mult[name], []).append(p)
        return out

    def _create(self, named: list[tuple[str, torch.Tensor]]) -> torch.optim.Optimizer | None:
        """The torch optimizer over the READY parameters ``named``: a first group with
        those without multipliers (possibly empty, which every ``torch.optim`` optimizer
        accepts), then one group per pair of multipliers. A class that refuses empty
        groups gets ``None`` (created at the first join), once its hyperparameters have
        been checked on a stand-in parameter."""
        groups = self._by_group(named)
        base = groups.pop((1.0, 1.0), [])
        try:
            opt = self._cls(
                [{"params": base}, *({"params": ps} for ps in groups.values())], **self._kwargs
            )
        except Exception:
            if named:
                raise
            self._cls([torch.zeros(1, requires_grad=True)], **self._kwargs)  # raises if bad
            return None
        first = opt.param_groups[0]
        for key, group in zip(groups, opt.param_groups[1:], strict=True):
            group.update(_group_values(first, key))
        return opt

    def _group(self, key: tuple[float, float]) -> dict[str, Any]:
        """The optimizer's group for multipliers ``key``, added (empty) if missing."""
        opt = self._optimizer
        assert opt is not None
        for group in opt.param_groups:
            if _key_of(group) == key:
                return group
        opt.add_param_group({"params": [], **_group_values(opt.param_groups[0], key)})
        return opt.param_groups[-1]

    def _track_add(self, params: Iterable[tuple[str, torch.Tensor]]) -> None:
        for name, p in params:
            if self._req[name] == "add":
                self._add[id(p)] = None

    def _admit(self) -> None:
        """Let the pending parameters that are READY now join the optimizer; warn once
        per layer about those still deferred."""
        joining = [(n, p) for n, p in self._pending if not is_deferred(p)]
        if joining:
            self._join(joining)
            joined = {id(p) for _, p in joining}
            self._pending = [(n, p) for n, p in self._pending if id(p) not in joined]
        waiting: dict[str, list[str]] = {}
        for name, p in self._pending:
            layer = _layer_of(name, p, self._named)
            if layer not in self._warned:
                waiting.setdefault(layer, []).append(name)
        for layer, names in waiting.items():
            self._warned.add(layer)
            warnings.warn(
                f"Trainer.step: the parameters of layer {layer} ({', '.join(names)}) are not "
                f"initialized yet: no batch has reached this layer. They are not updated now, "
                f"and will join the optimizer when data reaches the layer.",
                UserWarning,
                stacklevel=3,
            )

    def _fresh_state(
        self, params: list[torch.Tensor], group: Mapping[str, Any] | None = None
    ) -> tuple[dict, bool]:
        """The state the optimizer class gives ``params`` when built over them (empty for
        most; filled for ``Adagrad``), with ``group``'s current hyperparameters (the first
        group's by default)."""
        assert self._optimizer is not None
        if group is None:
            group = self._optimizer.param_groups[0]
        kwargs = {k: group[k] for k in self._ctor_keys if k in group}
        temp = self._cls([{"params": params}], **kwargs)
        fused_check = bool(getattr(temp, "_need_device_dtype_check_for_fused", False))
        return {p: temp.state[p] for p in params if p in temp.state}, fused_check

    def _join(self, joining: list[tuple[str, torch.Tensor]]) -> None:
        params = [p for _, p in joining]
        for name, p in joining:
            saved = self._loaded_shapes.get(name)
            if saved is not None and saved != _shape_of(p):
                raise ValueError(
                    f"Trainer: the optimizer states loaded for {name!r} are for shape "
                    f"{tuple(saved)}, but the parameter was created with shape "
                    f"{tuple(p.shape)}"
                )
        if self._fused_rescale and not all(_fusable(p) for p in params):
            self._unfuse()
        if self._optimizer is None:
            self._optimizer = self._create(joining)
            assert self._optimizer is not None
        else:
            for key, ps in self._by_group(joining).items():
                group = self._group(key)
                fresh, fused_check = self._fresh_state(ps, group)
                group["params"].extend(ps)
                self._optimizer.state.update(fresh)
                if fused_check:
                    self._optimizer._need_device_dtype_check_for_fused = True  # type: ignore[attr-defined]
        for name, p in joining:
            self._loaded_shapes.pop(name, None)
            saved_state = self._loaded.pop(name, None)
            if saved_state is not None:
                group = self._group(self._mult[name])
                self._optimizer.state[p] = _cast_state(p, saved_state, group)
        if self._fused_rescale:
            self._zero_momentum(params)
        self._ready.extend(params)
        self._ready_names.extend(n for n, _ in joining)
        self._track_add(joining)

    # -- training ------------------------------------------------------------------------
    def step(self, batch_size: int | float, ignore_stale_grad: bool = False) -> None:
        """Rescale the gradients by ``rescale_grad / batch_size``, clip them if
        ``clip_gradient`` is set, make one optimizer step, then clear the gradients of
        the ``grad_req="write"`` parameters (so the next backward writes them afresh).

        Args:
            batch_size: divides the gradients (the loss is usually summed over the
                batch, as in Gluon; pass 1 for a mean-reduced loss, which also skips
                the rescaling pass over the gradients).
            ignore_stale_grad: a READY parameter that requires a gradient but has none
                (``.grad is None``: backward did not reach it since the last step or
                ``zero_grad()``), or a ``grad_req="add"`` parameter whose gradient no
                backward changed since the last step, is an error unless this is True,
                then it is not updated.

        Parameters still deferred (a layer no batch has reached) are skipped, with one
        ``UserWarning`` per layer; they join the optimizer once READY.

        Raises:
            ValueError: `batch_size` is not positive.
            RuntimeError: a parameter has no (or a stale) gradient, unless
                `ignore_stale_grad`.

        Examples:
            >>> import torch
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(2, weight_initializer="ones"))
            >>> trainer = lateinit.Trainer(net, "sgd", {"learning_rate": 0.5})
            >>> trainer.pending  # nothing to optimize yet: the shapes are unknown
            ['0.weight', '0.bias']
            >>> net(torch.ones(4, 3)).sum().backward()  # READY; every gradient is 4
            >>> trainer.step(batch_size=4)  # joins, rescales by 1/4, updates, clears
            >>> net[0].weight[0].tolist(), net[0].weight.grad  # 1 - 0.5 * 4 / 4
            ([0.5, 0.5, 0.5], None)
        """
        if not batch_size > 0:
            raise ValueError(f"Trainer.step: batch_size must be > 0, got {batch_size!r}")
        if self._pending:
            self._admit()
        opt = self._optimizer
        if opt is None:
            return
        scale = self._rescale / batch_size
        ready = self._ready
        if self._add:
            self._step_with_add(opt, scale, ignore_stale_grad)
            return
        grads = [g for p in ready if (g := p.grad) is not None]
        if len(grads) != len(ready) and not ignore_stale_grad:
            self._check_stale()
        if grads and self._fused_rescale and self._clip is None:
            self._fused_step(opt, grads[0].device, scale)
        else:
            if grads:
                self._rescale_(grads, scale)
            opt.step()
        for p in ready:  # grad_req="write": the next backward writes afresh
            p.grad = None

    def _fused_step(self, opt: torch.optim.Optimizer, device: torch.device, scale: float) -> None:
        """One step of a fused optimizer that multiplies the gradients by ``scale`` in its
        own kernel (as ``grad_scale = 1 / scale``, the way a ``GradScaler`` unscales)."""
        if scale == 1.0:
            opt.step()
            return
        t = self._grad_scale
        if t is None or t.device != device:
            t = self._grad_scale = torch.empty((), dtype=torch.float32, device=device)
        t.fill_(1.0 / scale)
        opt.grad_scale = t  # type: ignore[attr-defined]
        try:
            opt.step()
        finally:
            del opt.grad_scale  # type: ignore[attr-defined]

    def _zero_momentum(self, params: list[torch.Tensor]) -> None:
        """Fused SGD takes momentum buffers for all its parameters or for none: parameters
        joining after the first steps start from a zero buffer. With no dampening (the
        Trainer fuses only then) that is exactly torch's first step, ``buf = grad``."""
        opt = self._optimizer
        if not isinstance(opt, torch.optim.SGD):
            return
        have = [st.get("momentum_buffer") is not None for st in opt.state.values()]
        if not any(have):
            return
        for p in params:
            state = opt.state[p]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _unfuse(self) -> None:
        """Back to torch's default kernels: a parameter joined that the fused ones cannot
        take (a DTensor shard, another device type, an integer dtype)."""
        self._fused_rescale = False
        self._kwargs.pop("fused", None)
        opt = self._optimizer
        if opt is not None:
            opt.defaults["fused"] = None
            for group in opt.param_groups:
                group["fused"] = None

    def _rescale_(self, grads: list[torch.Tensor], scale: float) -> None:
        """Multiply by ``scale`` and clip, in place."""
        with torch.no_grad():
            if scale != 1.0:
                torch._foreach_mul_(grads, scale)
            if self._clip is not None:
                torch._foreach_clamp_min_(grads, -self._clip)
                torch._foreach_clamp_max_(grads, self._clip)

    def _step_with_add(
        self, opt: torch.optim.Optimizer, scale: float, ignore_stale_grad: bool
    ) -> None:
        """``step`` when some parameters accumulate (``grad_req="add"``): their stored
        gradients are left as they are (the update uses rescaled copies), and one that no
        backward changed since the last step is stale (same tensor, same version)."""
        write: list[torch.Tensor] = []
        added: list[tuple[torch.Tensor, torch.Tensor]] = []
        stale: list[tuple[torch.Tensor, torch.Tensor]] = []
        for p in self._ready:
            g = p.grad
            if g is None:
                continue
            if id(p) not in self._add:
                write.append(g)
                continue
            seen = self._add[id(p)]
            if seen is not None and seen[0]() is g and seen[1] == g._version:
                stale.append((p, g))
            else:
                added.append((p, g))
        if stale and not ignore_stale_grad:
            self._check_stale({id(p) for p, _ in stale})
        if not ignore_stale_grad and len(write) + len(added) + len(stale) != len(self._ready):
            self._check_stale()
        if write:
            self._rescale_(write, scale)
        if added and (scale != 1.0 or self._clip is not None):
            with torch.no_grad():
                copies = torch._foreach_mul([g for _, g in added], scale)
            self._rescale_(copies, 1.0)
            for (p, _), c in zip(added, copies, strict=True):
                p.grad = c
        for p, _ in stale:  # ignored: not updated
            p.grad = None
        try:
            opt.step()
        finally:
            for p, g in (*added, *stale):
                p.grad = g
        for p in self._ready:
            if id(p) in self._add:
                g = p.grad
                self._add[id(p)] = None if g is None else (weakref.ref(g), g._version)
            else:  # grad_req="write"
                p.grad = None

    def _check_stale(self, unchanged: set[int] | None = None) -> None:
        stale = [
            n
            for n, p in zip(self._ready_names, self._ready, strict=True)
            if p.requires_grad
            and (p.grad is None or (unchanged is not None and id(p) in unchanged))
        ]
        if stale:
            listed = fmt_list(repr(n) for n in stale)
            raise RuntimeError(
                f"Trainer.step: parameter(s) {listed} have no gradient: backward did "
                f"not reach them since the last step (or since the gradients were last "
                f"cleared). This could mean "
                f"your model used only some of its layers for this batch; if that is "
                f"intended, call step(batch_size, ignore_stale_grad=True) to skip them."
            )

    def zero_grad(self) -> None:
        """Set every gradient to `None` (`set_to_none`, as torch's default).

        What a `grad_req="add"` parameter needs between accumulations (`"write"` ones
        are cleared by each [`step`][lateinit.Trainer.step] already).

        Examples:
            >>> import torch
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(2, in_units=3)).initialize()
            >>> trainer = lateinit.Trainer(net, "sgd", {"learning_rate": 0.1}, grad_req="add")
            >>> for _ in range(2):  # two backwards accumulate
            ...     net(torch.ones(1, 3)).sum().backward()
            >>> net[0].bias.grad.tolist()
            [2.0, 2.0]
            >>> trainer.step(batch_size=2)
            >>> trainer.zero_grad()
            >>> net[0].bias.grad is None
            True
        """
        if self._optimizer is not None:
            self._optimizer.zero_grad(set_to_none=True)
        for _, p in self._pending:
            if not is_deferred(p):  # became READY since the last step
                p.grad = None

    # -- hyperparameters -----------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate (of the optimizer's first parameter group)."""
        if self._optimizer is not None and self._optimizer.param_groups:
            lr = self._optimizer.param_groups[0]["lr"]
        else:
            lr = self._kwargs.get("lr")
            if lr is None and "lr" in self._ctor_keys:
                lr = _default(self._cls, "lr")
        return float("nan") if lr is None else float(lr)

    def set_learning_rate(self, lr: float) -> None:
        """Set the learning rate of every parameter group (times the group's
        `lr_mult`); parameters that join later get it too.

        Args:
            lr: the base learning rate.

        Examples:
            >>> import lateinit
            >>> from lateinit import nn
            >>> trainer = lateinit.Trainer(nn.Dense(2), "adam", {"learning_rate": 1e-3})
            >>> trainer.set_learning_rate(1e-4)
            >>> trainer.learning_rate
            0.0001
        """
        self._kwargs["lr"] = lr
        if self._optimizer is not None:
            for group in self._optimizer.param_groups:
                value = lr * float(group.get("lr_mult", 1.0))
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(value)
                else:
                    group["lr"] = value

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The torch optimizer: it holds the READY parameters (none before the first
        batch) and stays the same object as parameters join. ``None`` only for an
        optimizer class that refuses an empty parameter group, until a parameter is
        READY."""
        return self._optimizer

    @property
    def pending(self) -> list[str]:
        """Names of the parameters that have not joined the optimizer yet."""
        return [n for n, _ in self._pending]

    # -- states ----------------------------------------------------------------------------
    def save_states(self, path: str | os.PathLike[str]) -> None:
        """Write the optimizer's state (per parameter, keyed by the parameters' names) and
        its hyperparameters to ``path`` with ``torch.save``.

        The file is independent of the order in which parameters joined. It is written
        beside ``path`` under a temporary name, flushed, then renamed over ``path``.
        States loaded for parameters that are still pending are written too.

        Args:
            path: the file to write.

        Examples:
            >>> import os, tempfile, torch
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(2, in_units=3)).initialize()
            >>> trainer = lateinit.Trainer(net, "adam", {"learning_rate": 1e-3})
            >>> net(torch.ones(1, 3)).sum().backward()
            >>> trainer.step(1)
            >>> tmp = tempfile.TemporaryDirectory()
            >>> path = os.path.join(tmp.name, "trainer.states")
            >>> trainer.save_states(path)
            >>> again = lateinit.Trainer(net, "adam", {"learning_rate": 5e-3})
            >>> again.load_states(path)
            >>> again.learning_rate, again.optimizer.state[net[0].weight]["step"].item()
            (0.001, 1.0)
            >>> tmp.cleanup()
        """
        opt = self._optimizer
        group = opt.param_groups[0] if opt is not None else self._kwargs
        hyper = {k: v for k, v in group.items() if k != "params" and _plain(v)}
        entries: dict[str, dict[str, Any]] = {}
        for name, p in self._params.items():
            entry: dict[str, Any] = {"shape": _shape_of(p)}
            state = opt.state.get(p) if opt is not None else None
            if state:
                entry["state"] = dict(state)
            elif name in self._loaded:
                entry["state"] = self._loaded[name]
                entry["shape"] = self._loaded_shapes.get(name, entry["shape"])
            entries[name] = entry
        data = {
            "format": _FORMAT,
            "version": _VERSION,
            "optimizer": self._cls.__name__,
            "hyperparameters": hyper,
            "params": entries,
        }
        atomic_write(os.fspath(path), lambda tmp: torch.save(data, tmp), sync=True)

    def load_states(self, path: str | os.PathLike[str]) -> None:
        """Load a file written by [`save_states`][lateinit.Trainer.save_states]:
        hyperparameters and per-parameter optimizer state, matched by name.

        States of parameters that are still deferred are kept and applied when they
        join. Never unpickles arbitrary objects (``torch.load(weights_only=True)``).
        Everything is checked before anything changes: a file that is not a states file,
        was written for another optimizer class, or names other parameters or shapes
        raises ``ValueError`` naming the file and the parameter.

        Args:
            path: a file written by `save_states`.

        Raises:
            ValueError: not a states file, another optimizer class, other parameter
                names or shapes (nothing is changed).
            FileNotFoundError: the path does not exist.

        Examples:
            >>> import os, tempfile
            >>> import lateinit
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(2))  # deferred: its states wait for it
            >>> tmp = tempfile.TemporaryDirectory()
            >>> path = os.path.join(tmp.name, "trainer.states")
            >>> lateinit.Trainer(net, "sgd", {"learning_rate": 0.5}).save_states(path)
            >>> trainer = lateinit.Trainer(net, "sgd", {"learning_rate": 0.1})
            >>> trainer.load_states(path)
            >>> trainer.learning_rate
            0.5
            >>> lateinit.Trainer(net, "adam").load_states(path)
            Traceback (most recent call last):
            ...
            ValueError: ...: holds the states of a SGD optimizer, but this Trainer uses ...
            >>> tmp.cleanup()
        """
        path = os.fspath(path)
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ValueError(
                f"{path}: not a Trainer states file that can be read safely "
                f"({type(err).__name__}: {first[:200]})"
            ) from err
        self._check_states(path, data)
        opt = self._optimizer
        hyper = data["hyperparameters"]
        self._kwargs.update({k: v for k, v in hyper.items() if k in self._ctor_keys})
        if opt is not None:
            for group in opt.param_groups:
                group.update(_group_values(hyper, _key_of(group)))
        entries = data["params"]
        reset = []
        self._loaded, self._loaded_shapes = {}, {}
        pending = {n for n, _ in self._pending}
        for name, p in self._params.items():
            state = entries[name].get("state")
            if self._req[name] == "null":  # frozen: not in the optimizer
                continue
            if name in pending:
                if state:
                    self._loaded[name] = state
                    self._loaded_shapes[name] = list(entries[name]["shape"])
            elif state:
                assert opt is not None
                opt.state[p] = _cast_state(p, state, self._group(self._mult[name]))
            else:
                reset.append(p)
        if reset and opt is not None:
            for p in reset:
                opt.state.pop(p, None)
            for group in opt.param_groups:
                held = {id(p) for p in group["params"]}
                mine = [p for p in reset if id(p) in held]
                if mine:
                    opt.state.update(self._fresh_state(mine, group)[0])

    def _check_states(self, path: str, data: Any) -> None:
        if not (isinstance(data, dict) and data.get("format") == _FORMAT):
            raise ValueError(
                f"{path}: not a lateinit Trainer states file (write one with Trainer.save_states)"
            )
        if (
            data.get("version") != _VERSION
            or not isinstance(data.get("params"), dict)
            or not isinstance(data.get("hyperparameters"), dict)
        ):
            raise ValueError(f"{path}: unsupported Trainer states version {data.get('version')!r}")
        if data.get("optimizer") != self._cls.__name__:
            raise ValueError(
                f"{path}: holds the states of a {data.get('optimizer')} optimizer, but this "
                f"Trainer uses {self._label}"
            )
        entries: dict[str, Any] = data["params"]
        missing = [n for n in self._params if n not in entries]
        extra = [n for n in entries if n not in self._params]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no states for {fmt_list(map(repr, missing))}")
            if extra:
                parts.append(f"states for unknown parameters {fmt_list(map(repr, extra))}")
            raise ValueError(
                f"{path}: does not match this Trainer's parameters: {'; '.join(parts)}"
            )
        for name, p in self._params.items():
            entry = entries[name]
            saved = entry.get("shape") if isinstance(entry, dict) else None
            if not isinstance(saved, list) or not isinstance(entry.get("state", {}), dict):
                raise ValueError(f"{path}: malformed entry for parameter {name!r}")
            if not _shapes_agree(saved, _shape_of(p)):
                raise ValueError(
                    f"{path}: the states of parameter {name!r} are for shape {tuple(saved)}, "
                    f"but the parameter has shape {tuple(_shape_of(p))}"
                )

    def __repr__(self) -> str:
        frozen = sum(req == "null" for req in self._req.values())
        ready = len(self._params) - len(self._pending) - frozen
        return (
            f"Trainer({self._label}, lr={self.learning_rate:g}, parameters: {ready} ready, "
            f"{len(self._pending)} pending" + (f", {frozen} frozen)" if frozen else ")")
        )
