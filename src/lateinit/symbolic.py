"""Shapes of a custom block without a hook: read them off its forward (Gluon 1.x).

A block whose own parameters have unknown dims (``-1``) and whose class defines no
``infer_param_shapes`` gets them from its forward, run once at the first call on fake
tensors (``torch._subclasses.FakeTensorMode``): the inputs keep their concrete shapes,
each unknown dim is a fresh *unbacked* symbolic size of a ``ShapeEnv``, and the checks
torch's ops make (``torch._check(a == b)`` in the meta kernels: matmul's reduction dim,
broadcasting, conv's channels, a view's element count) record the symbol's value as a
replacement. A backed symbol would not do: torch decides its comparisons from its hint
(``Ne(s0, 20)`` is guarded, then the op fails). A dim the forward never ties to a known
size stays a free symbol: an error names the parameter and the dim, and the
``infer_param_shapes`` hook stays for it (``docs/design.md``, "Shapes from the forward").

The forward runs on a private shallow copy of the block whose tables hold the fakes: the
live block, which another thread may be running, is never touched. Scope: the block's
own parameters and buffers; its sub-modules must be READY (a deferred or lazy one would
run its own first pass on fakes), else the hook is needed. First call only.

Sits beside :mod:`lateinit.explain` (which it uses to name the layer); it takes blocks as
plain ``torch.nn.Module`` objects and never imports :mod:`lateinit.block`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.parameter import is_lazy
from torch.utils._python_dispatch import _disable_current_modes
from torch.utils._pytree import tree_map_only

from .explain import QuietUnder, layer_label, locate, missing_hook_error, quiet_fake_tensor_errors
from .parameter import Parameter
from .shapes import UNKNOWN, fmt_shape, iter_tensors

__all__ = ["shapes_from_forward"]


_QUIET = QuietUnder("shapes_from_forward", __file__)


def _deferred_submodule(block: torch.nn.Module) -> str | None:
    """The name of a sub-module of ``block`` holding a deferred or lazy tensor, if any."""
    for name, m in block.named_modules():
        if m is block:
            continue
        for table in (m._parameters, m._buffers):
            for t in table.values():
                if isinstance(t, Parameter) or (t is not None and is_lazy(t)):
                    return name
    return None


def _fix(block: torch.nn.Module) -> str:
    return (
        f"Fix: define {type(block).__name__}.infer_param_shapes(self, *inputs) to assign "
        "the full shape (self.weight.shape = (out, x.shape[-1])), or give the parameter "
        "its full shape."
    )


def shapes_from_forward(
    block: torch.nn.Module,
    forward: Callable[..., Any],
    own: Sequence[tuple[str, Parameter]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> dict[str, tuple[int, ...]]:
    """The full shape of each of ``own`` (``block``'s own deferred tensors, by attribute
    name), read off ``forward(replica, *args, **kwargs)`` run on fake tensors with a
    symbolic size for each unknown dim. Raises a RuntimeError naming the parameter and
    the dim the forward leaves unknown, or why the forward could not run."""
    # imported here: symbolic_shapes imports sympy (~0.25 s), a cost for first calls
    # without a hook only, not for ``import lateinit``
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode, ShapeEnv

    label = layer_label(block, locate(block)[1])
    unshaped = [(n, p) for n, p in own if not p.is_shaped]
    child = _deferred_submodule(block)
    if child is not None:
        raise RuntimeError(
            f"{missing_hook_error(block, unshaped)} (lateinit reads unknown dims off the "
            f"forward only when every sub-module is initialized; {child!r} is not.)"
        )
    inputs = list(iter_tensors((args, kwargs)))
    quiet_fake_tensor_errors(_QUIET)
    env = ShapeEnv()
    mode = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)
    symbols: dict[str, list[tuple[int, Any]]] = {}
    replica = type(block).__new__(type(block))
    replica.__dict__.update(block.__dict__)
    replica.__dict__["_modules"] = dict(block.__dict__["_modules"])
    # the engines' dispatch modes (infer_shape's FLOP counter) must not see symbolic sizes
    with _disable_current_modes(), mode, torch.no_grad():
        fake_args, fake_kwargs = tree_map_only(
            torch.Tensor, lambda t: mode.from_tensor(t, static_shapes=True), (args, kwargs)
        )
        for table_name in ("_parameters", "_buffers"):
            table: dict[str, Any] = {}
            for name, t in block.__dict__[table_name].items():
                if not isinstance(t, Parameter):
                    table[name] = None if t is None else mode.from_tensor(t, static_shapes=True)
                    continue
                dims: list[Any] = []
                for d, size in enumerate(t.shape):
                    if size == UNKNOWN:
                        s = env.create_unbacked_symint()
                        torch._check(s >= 0)
                        symbols.setdefault(name, []).append((d, s.node.expr))
                        size = s
                    dims.append(size)
                device = inputs[0].device if inputs else t.device
                table[name] = torch.empty(dims, dtype=t.dtype, device=device)
            replica.__dict__[table_name] = table
        try:
            forward(replica, *fake_args, **fake_kwargs)
        except GuardOnDataDependentSymNode:
            failed = "its forward branches on an unknown dim (a Python condition on it)"
        except Exception as err:
            names = ", ".join(f"{n} {fmt_shape(tuple(p.shape))}" for n, p in unshaped)
            raise RuntimeError(
                f"{label} has parameters of unknown shape ({names}) and no "
                f"infer_param_shapes; reading them off its forward on fake tensors failed: "
                f"{type(err).__name__}: {err} {_fix(block)}"
            ) from err
        else:
            failed = "its forward never ties it to a known size"
    shapes: dict[str, tuple[int, ...]] = {}
    free: list[str] = []
    for name, p in own:
        shape = list(p.shape)
        for d, expr in symbols.get(name, []):
            value = env.simplify(expr)
            if value.is_number and int(value) >= 0:
                shape[d] = int(value)
            else:
                free.append(f"dim {d} of {name!r} {fmt_shape(tuple(p.shape))}")
        shapes[name] = tuple(shape)
    if free:
        raise RuntimeError(
            f"{label}: cannot infer {', '.join(free)} without infer_param_shapes: "
            f"{failed}. {_fix(block)}"
        )
    return shapes
