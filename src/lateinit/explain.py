"""Error translation: turn a failure inside a layer into a message naming the layer.

Nothing here runs on the happy path. A layer calls :meth:`Block._explain` from an
``except`` branch around its kernel; the first pass calls :func:`named_mismatch` when a
layer's ``infer_param_shapes`` finds an input that disagrees with a known size. The layer
is named by its path inside the outermost module being called (:func:`locate`), its type,
what it expected, what it got and the fix (``docs/design.md``, "Errors").

Sits between :mod:`lateinit.parameter` and :mod:`lateinit.block`: it takes blocks as
plain ``torch.nn.Module`` objects and never imports :mod:`lateinit.block`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import torch

from .parameter import Parameter, ParamRecord
from .shapes import ShapeMismatchError, fmt_shape, iter_tensors, shown_shape

__all__ = [
    "locate",
    "layer_label",
    "autocast_on",
    "missing_hook_error",
    "named_mismatch",
    "dtype_error",
    "explain",
    "hook_replica",
    "input_type_error",
    "QuietUnder",
    "FAKE_TENSOR_LOGGER",
    "quiet_fake_tensor_errors",
]


def locate(block: torch.nn.Module) -> tuple[torch.nn.Module, str]:
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


def layer_label(block: torch.nn.Module, path: str) -> str:
    """``layer '1' (Dense)``, or ``layer Dense (the network called)`` for the root."""
    kind = type(block).__name__
    return f"layer {path!r} ({kind})" if path else f"layer {kind} (the network called)"


def autocast_on(device_type: str) -> bool:
    """Whether autocast is on for this device type (``False`` for types it does not know)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know (meta)
        return False


def missing_hook_error(
    block: torch.nn.Module, unshaped: Sequence[tuple[str, Parameter]], filled_nothing: str = ""
) -> RuntimeError:
    """A block with parameters of unknown shape whose ``infer_param_shapes`` is missing
    (or left dims unknown: ``filled_nothing`` lists them)."""
    label = layer_label(block, locate(block)[1])
    if filled_nothing:
        return RuntimeError(
            f"{label}: infer_param_shapes() left unknown dims in {filled_nothing}. "
            "Fix: assign every parameter its full shape there (param.shape = (...))."
        )
    names = ", ".join(f"{n} {fmt_shape(tuple(p.shape))}" for n, p in unshaped)
    return RuntimeError(
        f"{label} has parameters of unknown shape ({names}) but does not define "
        f"infer_param_shapes(self, *inputs). Fix: define "
        f"{type(block).__name__}.infer_param_shapes to fill the unknown dims from the "
        "input shapes (self.weight.shape = (out, x.shape[-1])), or give the parameters "
        "their full shapes."
    )


def named_mismatch(
    block: Any, err: ShapeMismatchError, args: tuple[Any, ...], fixed_by: str | None
) -> ShapeMismatchError:
    """Complete a hook's ShapeMismatchError with the layer's path, type and the fix.

    ``fixed_by`` is the path of the use that fixed the sizes of a block used twice.
    ``block`` is a lateinit Block (its ``_describe_expected`` says what size it expects).
    """
    if err.layer is not None:
        return err
    root, path = locate(block)
    if fixed_by is not None and path == fixed_by:
        # The use that fixed the sizes cannot be the one that disagrees with them: when
        # the frames do not tell the uses apart, name another use of this block.
        others = [
            n for n, m in root.named_modules(remove_duplicate=False) if m is block and n != path
        ]
        path = others[0] if others else path
    label = layer_label(block, path)
    shapes = ", ".join(fmt_shape(shown_shape(t)) for t in iter_tensors(args))
    got = f"an input of shape {shapes}" if shapes else "its input"
    hint = block._in_size_arg
    if err.expected is not None and err.dim is not None and err.param is not None:
        local = err.param.rsplit(".", 1)[-1]
        expected = block._describe_expected(local, err.dim, err.expected[err.dim])
        sharers = _sharers(block, root, local, path)
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
    new = err.with_message(message, path or type(block).__name__)
    new.__cause__ = err.__cause__
    return new


def _sharers(block: torch.nn.Module, root: torch.nn.Module, local: str, path: str) -> list[str]:
    """Paths of the other layers (or other uses of this one) holding ``local``."""
    param = block._parameters.get(local)
    if param is None:
        return []
    return [
        name or type(root).__name__
        for name, m in root.named_modules(remove_duplicate=False)
        if name != path and any(q is param for q in m._parameters.values())
    ]


def dtype_error(block: torch.nn.Module, tensors: list[torch.Tensor]) -> TypeError | None:
    """A TypeError naming the layer when a floating input's dtype differs from its
    parameters' (outside autocast), else ``None``."""
    floating = [t for t in tensors if t.is_floating_point()]
    params = [
        p
        for table in (block._parameters, block._buffers)  # parameters first, then buffers
        for p in table.values()
        if p is not None and p.is_floating_point()
    ]
    if not floating or not params:
        return None
    got, want = floating[0].dtype, params[0].dtype
    if got == want or autocast_on(floating[0].device.type):
        return None  # under autocast, ops cast their inputs themselves
    _, path = locate(block)
    short = str(want).replace("torch.", "")
    return TypeError(
        f"{layer_label(block, path)} got a {str(got).replace('torch.', '')} input but its "
        f"parameters are {short}. Fix: convert the input (x.to(torch.{short})), or create "
        f"the parameters in {str(got).replace('torch.', '')}: "
        f"net.initialize(dtype={got}) or net.to({got}) before the first batch."
    )


def hook_replica(block: torch.nn.Module) -> torch.nn.Module:
    """A private shallow copy of ``block`` for running its ``infer_param_shapes`` hook on
    the error path: its own parameters and buffers are deferred stand-ins with their
    current (known) shapes, so the hook can compare an input with them without touching
    the live module, which other threads may be running (``docs/design.md``,
    "Inspecting never mutates")."""
    clone = type(block).__new__(type(block))
    clone.__dict__.update(block.__dict__)
    for table_name in ("_parameters", "_buffers"):
        table: dict[str, Any] = {}
        for name, t in block.__dict__[table_name].items():
            if t is None:
                table[name] = None
                continue
            rec = ParamRecord(tuple(t.shape), None, 0)
            rec.name = name
            table[name] = Parameter.from_record(
                rec, torch.empty(0, dtype=t.dtype, device="meta"), False
            )
        clone.__dict__[table_name] = table
    return clone


def input_type_error(block: torch.nn.Module, what: str, accepts: str) -> TypeError:
    """A TypeError naming the layer, for an input it cannot take (``what``: the input
    as received, e.g. ``"a NoneType"``; ``accepts``: what it takes and the fix).
    :func:`explain` passes such an error through when a hook raises it."""
    error = TypeError(f"{layer_label(block, locate(block)[1])} got {what}; {accepts}")
    error.lateinit_named = (what, accepts)  # type: ignore[attr-defined]
    return error


def explain(
    block: Any, err: BaseException, inputs: tuple[Any, ...], fixed_by: str | None
) -> BaseException:
    """Turn a raw kernel error into a named ShapeMismatchError/TypeError when the inputs
    disagree with the layer's known sizes or dtype; else return ``err`` unchanged.

    The layer's hook runs on a private replica (:func:`hook_replica`): explaining a bad
    call never changes what a concurrent good call sees, and takes no lock."""
    try:
        type(block).infer_param_shapes(hook_replica(block), *inputs)
    except ShapeMismatchError as mismatch:
        named = named_mismatch(block, mismatch, inputs, fixed_by)
        named.__cause__ = err
        return named
    except TypeError as bad:
        named = getattr(bad, "lateinit_named", None)
        if named is not None:  # raised on the replica: name the live layer by its path
            error = input_type_error(block, *named)
            error.__cause__ = err
            return error
    except Exception:
        pass
    error = dtype_error(block, list(iter_tensors(inputs)))
    if error is not None:
        error.__cause__ = err
        return error
    return err


class QuietUnder(logging.Filter):
    """Drops the ERROR records (with their tracebacks) that torch's fake tensors log for
    each meta kernel that fails while the function ``code_name`` of ``filename`` is on
    the stack: there, the failure is raised as a named error instead. It looks at the
    stack only for records of ERROR and above: nothing on the happy path, nothing for the
    debug logs a user turns on."""

    def __init__(self, code_name: str, filename: str) -> None:
        super().__init__()
        self.code_name = code_name
        self.filename = filename

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if code.co_name == self.code_name and code.co_filename == self.filename:
                return False
            frame = frame.f_back
        return True


#: The torch logger that reports each meta kernel failing on fake tensors.
FAKE_TENSOR_LOGGER = "torch._subclasses.fake_tensor"


def quiet_fake_tensor_errors(quiet: QuietUnder) -> None:
    """Install ``quiet`` on torch's fake-tensor logger (once)."""
    logger = logging.getLogger(FAKE_TENSOR_LOGGER)
    if quiet not in logger.filters:
        logger.addFilter(quiet)
