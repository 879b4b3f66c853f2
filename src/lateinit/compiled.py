"""``hybridize``'s compiled call and its options (``docs/design.md``, "Errors").

A failed compiled call raises the error of the same call run eagerly (named by the
layer), and the error dynamo's fake tensors log on the way is dropped; options that
``torch.compile`` would refuse are refused at ``hybridize()``. Below :mod:`lateinit.block`
(a block is taken as any object with ``_eager_error``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .explain import QuietUnder
from .explain import quiet_fake_tensor_errors as quiet_fake_errors
from .shapes import fmt_list

__all__ = ["hybrid_call", "quiet_fake_tensor_errors", "copied_options", "check_compile_options"]


def hybrid_call(block: Any, compiled: Callable[..., Any]) -> Callable[..., Any]:
    """The ``_compiled_call_impl`` of a hybridized block: ``compiled`` (``torch.compile``
    of ``block._call_impl``, what ``torch.nn.Module.compile`` installs) whose failures
    are re-run eagerly to raise the eager error (:meth:`Block._eager_error`).

    Why here: dynamo traces a wrong-size input on fake tensors and the kernel fails in
    the trace, before any layer's ``except`` branch, so nothing inside the compiled
    region (``torch._dynamo.disable`` on ``_explain`` included) can name the layer; the
    only place after the failure is around the compiled call. The happy path pays this
    one Python frame (``try`` is free until something raises): about 0.15 µs a call,
    against 15-30 µs for the compiled call of the smallest MLP on CPU.
    """

    def hybrid_call(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except Exception as err:
            failed = err
        error = block._eager_error(failed, args, kwargs)
        del failed  # only ``error`` travels on (and with it no dynamo traceback)
        raise error

    return hybrid_call


#: Quiet while ``hybrid_call`` (below) runs: its failure is re-raised as the eager error.
_QUIET = QuietUnder("hybrid_call", __file__)


def quiet_fake_tensor_errors() -> None:
    """Drop fake tensors' ERROR records while a hybridized call is traced."""
    quiet_fake_errors(_QUIET)


def copied_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``torch.compile`` options with a copy of the ``options`` dict (torch pops
    ``guard_filter_fn`` out of it: a recompile must still find it)."""
    return {k: dict(v) if k == "options" and isinstance(v, dict) else v for k, v in options.items()}


def _compile_probe(*args: Any, **kwargs: Any) -> None:
    """Given to ``torch.compile`` to check options; never called, so never compiled."""


def check_compile_options(options: Mapping[str, Any]) -> None:
    """Refuse, at ``hybridize()``, options that ``torch.compile`` would refuse at the
    first compiled call (a failure after the first pass succeeded): unknown names and
    wrong types (``TypeError``), unknown modes and backends (``ValueError``), each
    naming what is accepted; then ``torch.compile`` itself, on a function never called,
    checks the rest (inductor's ``options``) without compiling anything."""
    params = inspect.signature(torch.compile).parameters
    accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [repr(k) for k in options if k not in accepted]
    if unknown:
        raise TypeError(
            f"hybridize() got the unknown option{'s' if len(unknown) > 1 else ''} "
            f"{fmt_list(unknown)}; it takes torch.compile's options: {', '.join(accepted)}."
        )
    for name in ("fullgraph", "disable", "isolate_recompiles"):
        if name in options and not isinstance(options[name], bool):
            raise TypeError(f"hybridize(): {name} must be True or False, got {options[name]!r}.")
    expected_types: dict[str, tuple[type, ...]] = {
        "dynamic": (bool,),
        "name": (str,),
        "options": (dict,),
        "recompile_limit": (int,),
    }
    for name, types in expected_types.items():
        value = options.get(name)
        if value is not None and not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise TypeError(f"hybridize(): {name} must be {wanted} or None, got {value!r}.")
    mode = options.get("mode")
    if mode is not None:
        modes = list(torch._inductor.list_mode_options())
        if mode not in modes:
            raise ValueError(
                f"hybridize(): unknown mode {mode!r}; torch.compile's modes are "
                f"{', '.join(repr(m) for m in modes)}, or None."
            )
        if options.get("options") is not None:
            raise ValueError(
                "hybridize(): give mode= or options=, not both (torch.compile takes one)."
            )
    backend = options.get("backend")
    if backend is not None and not callable(backend):
        backends = ", ".join(repr(b) for b in torch._dynamo.list_backends(exclude_tags=()))
        if not isinstance(backend, str):
            raise TypeError(
                f"hybridize(): backend must be a backend's name or a callable, got {backend!r};"
                f" the names are {backends}."
            )
        try:
            torch._dynamo.backends.registry.lookup_backend(backend)
        except torch._dynamo.exc.InvalidBackend:
            raise ValueError(
                f"hybridize(): unknown backend {backend!r}; torch.compile's backends are "
                f"{backends}, or a callable (a custom backend)."
            ) from None
    try:
        torch.compile(_compile_probe, **copied_options(options))
    except Exception as err:
        raise ValueError(f"hybridize(): torch.compile refuses these options: {err}") from err
