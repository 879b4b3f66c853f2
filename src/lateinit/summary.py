"""Summary tables: parameter counts, memory and FLOPs of a network, without allocating.

:func:`summary` runs the network's forward on meta tensors (:func:`lateinit.shapes.
infer_shape` with ``flops=True``), so even a 70B-parameter model is summarized in
milliseconds with no parameter memory. :func:`count_params` and :func:`param_bytes` answer
for a network whose shapes are known (SHAPED or READY).

A parameter shared by several layers is counted once everywhere (totals,
``count_params``, ``param_bytes``); only buffers (e.g. BatchNorm running statistics) are
never counted as parameters.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .block import Block
from .inference import has_none, infer_shape, merge_specs, to_meta
from .parameter import Parameter
from .shapes import NONE_SIZES, DeferredInitializationError, Spec, fmt_shape, not_ready_fixes

__all__ = ["count_params", "param_bytes", "summary", "Summary", "SummaryRow", "SummaryTotals"]

_WIDTH = 200  # columns for ``str(summary)``: wide enough that rows do not wrap


# ---------------------------------------------------------------------------------------
# Counting.


def _is_declared(p: torch.Tensor) -> bool:
    """True for a parameter with unknown dims (lateinit DECLARED, or a torch lazy one)."""
    if isinstance(p, Parameter):
        return not p.is_shaped
    return isinstance(p, torch.nn.parameter.UninitializedTensorMixin)


def _numel(p: torch.Tensor) -> int:
    return math.prod(p.shape) if isinstance(p, Parameter) else p.numel()


def _unique_params(block: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """Every parameter once (shared ones under their first structural name)."""
    if not isinstance(block, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module (a lateinit Block), got {type(block)!r}")
    return block.named_parameters()


def _owner_type(block: torch.nn.Module, name: str) -> str:
    owner, _, _ = name.rpartition(".")
    return type(block.get_submodule(owner) if owner else block).__name__


def _declared_error(block: torch.nn.Module, what: str) -> DeferredInitializationError:
    declared = [(n, p) for n, p in _unique_params(block) if _is_declared(p)]
    name, p = declared[0]
    more = f" (and {len(declared) - 1} more)" if len(declared) > 1 else ""
    shape = fmt_shape(tuple(p.shape)) if isinstance(p, Parameter) else "(unknown)"
    return DeferredInitializationError(
        f"{what}: parameter {name!r} of {_owner_type(block, name)} has unknown dims "
        f"{shape}{more}, so its size is not known yet. Fix: {not_ready_fixes()}."
    )


def count_params(block: torch.nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``block`` (shared parameters counted once).

    Works on SHAPED networks (deferred parameters count by their full logical shape; no
    memory is needed) as well as READY ones. Buffers are not parameters.

    Args:
        block: the network (any ``torch.nn.Module``).
        trainable_only: count only parameters with ``requires_grad``.

    Raises:
        DeferredInitializationError: some parameter still has unknown dims (DECLARED); the
            message names it and the fix (``infer_shape(...)`` or one batch).

    Examples:
        >>> import lateinit
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(8), nn.Dense(2))
        >>> _ = net.infer_shape((1, 3))  # SHAPED: nothing allocated
        >>> lateinit.count_params(net)  # 3*8 + 8 + 8*2 + 2
        50
    """
    total = 0
    for _, p in _unique_params(block):
        if trainable_only and not p.requires_grad:
            continue
        if _is_declared(p):
            raise _declared_error(block, "count_params")
        total += _numel(p)
    return total


def param_bytes(block: torch.nn.Module) -> dict[torch.dtype, int]:
    """The memory the parameters of ``block`` take (or will take), in bytes, per dtype.

    One entry per dtype, in the order the dtypes first appear; the total is
    ``sum(param_bytes(net).values())``. A deferred parameter counts with the dtype it
    will be created in (``net.to(torch.bfloat16)`` before materializing halves it).
    Shared parameters are counted once; buffers are not counted.

    Raises:
        DeferredInitializationError: some parameter still has unknown dims (DECLARED).

    Args:
        block: the network (any `torch.nn.Module`).

    Returns:
        Bytes per dtype.

    Examples:
        >>> import torch
        >>> import lateinit
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(8), nn.Dense(2))
        >>> _ = net.infer_shape((1, 3))
        >>> lateinit.param_bytes(net)
        {torch.float32: 200}
        >>> lateinit.param_bytes(net.to(torch.bfloat16))
        {torch.bfloat16: 100}
    """
    out: dict[torch.dtype, int] = {}
    for _, p in _unique_params(block):
        if _is_declared(p):
            raise _declared_error(block, "param_bytes")
        out[p.dtype] = out.get(p.dtype, 0) + _numel(p) * p.dtype.itemsize
    return out


# ---------------------------------------------------------------------------------------
# The summary.


@dataclass(frozen=True)
class SummaryRow:
    """One module of the network.

    Attributes:
        path: structural path (``"4.body.0"``; ``""`` for the network itself).
        type: the module's class name.
        depth: nesting level (0 for the network itself).
        called: whether the forward called this module (``False`` before any input).
        output: the output spec(s) of its call (:class:`lateinit.Spec`, nested as the
            forward returns them); ``None`` when not called.
        params: the number of its own parameters (not its children's); ``None`` when
            one of them still has unknown dims (shown as ``(deferred)``).
        shared: some own parameter is shared with a row above (counted there in totals).
        flops: forward FLOPs of its call, children included; ``None`` when unknown.
        call_order: when its (first) call ended among the calls of the forward: children
            end before their parent, siblings in the order the forward called them;
            ``None`` when not called.
    """

    path: str
    type: str
    depth: int
    called: bool
    output: Any
    params: int | None
    shared: bool
    flops: int | None
    call_order: int | None = None

    @property
    def output_shape(self) -> str:
        """The output shape(s) as text, ``?`` when not known."""
        return _fmt_output(self.output) if self.called else "?"


@dataclass(frozen=True)
class SummaryTotals:
    """The whole network's figures (shared parameters counted once).

    Attributes:
        params: every parameter; ``None`` while some have unknown dims.
        trainable: parameters with ``requires_grad``; ``None`` likewise.
        non_trainable: the others; ``None`` likewise.
        param_bytes: parameter memory per dtype in bytes; ``None`` likewise.
        flops: forward FLOPs of the whole network; ``None`` without inputs, or when they
            depend on a ``None`` input dim.
        output: the network's output spec(s); ``None`` without inputs.
        deferred: names of the parameters whose dims are still unknown.
    """

    params: int | None
    trainable: int | None
    non_trainable: int | None
    param_bytes: dict[torch.dtype, int] | None
    flops: int | None
    output: Any
    deferred: tuple[str, ...] = field(default=())

    @property
    def total_bytes(self) -> int | None:
        """All parameter memory in bytes."""
        return None if self.param_bytes is None else sum(self.param_bytes.values())


@dataclass(frozen=True)
class Summary:
    """A network's summary: one `SummaryRow` per module, and the totals.

    What [`Block.summary`][lateinit.Block.summary] returns. `str(summary)` is the table
    as plain text; `summary.print()` shows it on a terminal (`rich`); `rows` and
    `totals` are the data for programs. Each row (`SummaryRow`) has `path`, `type`,
    `depth`, `called`, `output` (a [`Spec`][lateinit.Spec]), `output_shape` (as text),
    `params` (its own), `shared` and `flops` (its children's included); `totals`
    (`SummaryTotals`) has `params`, `trainable`, `non_trainable`, `param_bytes` (per
    dtype), `total_bytes`, `flops`, `output` and `deferred` (the names of parameters
    whose dims are still unknown). Counts are `None` while they are unknown.

    Attributes:
        title: the network's class name and its inputs.
        rows: one per module in ``named_modules()`` order, the network itself first.
        totals: the whole network's figures.
        max_depth: rows nested deeper than this are left out of the table (not of
            ``rows``); ``None`` shows every row.
        none_dims: whether an input had ``None`` dims (FLOPs then depend on them).

    Examples:
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
        >>> s = net.summary((4, 3))  # meta tensors: nothing is allocated
        >>> s.title
        'Sequential on (4, 3)'
        >>> [(r.path, r.type, r.output_shape, r.params) for r in s.rows]
        [('', 'Sequential', '(4, 2)', 0), ('0', 'Dense', '(4, 8)', 32),
         ('1', 'Dense', '(4, 2)', 18)]
        >>> s.totals.params, s.totals.total_bytes, s.totals.flops
        (50, 200, 320)
    """

    title: str
    rows: list[SummaryRow]
    totals: SummaryTotals
    max_depth: int | None = None
    none_dims: bool = False

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=self.title, title_justify="left", header_style="bold")
        table.add_column("Layer (path)", no_wrap=True)
        table.add_column("Type", no_wrap=True)
        table.add_column("Output shape")
        table.add_column("Params", justify="right", no_wrap=True)
        table.add_column("FLOPs", justify="right", no_wrap=True)
        for row in self.rows:
            if self.max_depth is not None and row.depth > self.max_depth:
                continue
            if row.params is None:
                params = "(deferred)"
            else:
                params = f"{row.params:,}" if row.params else "-"
                params += " (shared)" if row.shared else ""
            flops = "?" if row.flops is None else (_fmt_si(row.flops) if row.flops else "-")
            table.add_row(row.path or "(network)", row.type, row.output_shape, params, flops)

        totals = Table.grid(padding=(0, 2))
        totals.add_column(style="bold")
        totals.add_column()
        for label, value in self._total_lines():
            totals.add_row(label, value)
        return Group(table, totals)

    def _total_lines(self) -> list[tuple[str, str]]:
        t = self.totals
        if t.params is None:
            fix = "call infer_shape(...) or summary(net, input) to know them"
            n = len(t.deferred)
            unknown = f"? ({n} parameter{'s' * (n != 1)} with unknown dims: {fix})"
            lines = [("Parameters", unknown)]
        else:
            lines = [
                ("Parameters", f"{t.params:,}"),
                ("  trainable", f"{t.trainable:,}"),
                ("  non-trainable", f"{t.non_trainable:,}"),
            ]
            memory = t.param_bytes or {}
            for dtype, size in memory.items():
                name = str(dtype).replace("torch.", "")
                lines.append((f"Memory ({name})", f"{fmt_bytes(size)} ({size:,} bytes)"))
            if len(memory) != 1:
                lines.append(("Memory (total)", fmt_bytes(t.total_bytes or 0)))
        if t.flops is not None:
            flops = f"{_fmt_si(t.flops, 'FLOPs')} ({t.flops:,}, forward)"
        elif self.none_dims:
            flops = "? (they depend on the None input dims: give concrete sizes)"
        else:
            flops = "? (no input given)"
        lines.append(("FLOPs", flops))
        if t.output is not None:
            lines.append(("Output", _fmt_output(t.output)))
        return lines

    def render(self, width: int = _WIDTH) -> str:
        """The table as plain text (no colors), `width` columns at most; `str(summary)`.

        Args:
            width: the most columns a line takes (the default is wide enough that rows
                do not wrap).

        Returns:
            The table and the totals, lines without trailing spaces.

        Examples:
            >>> from lateinit import nn
            >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
            >>> print(net.summary((4, 3)).render(width=80))
            Sequential on (4, 3)
            ┏━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━┓
            ┃ Layer (path) ┃ Type       ┃ Output shape ┃ Params ┃ FLOPs ┃
            ┡━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━┩
            │ (network)    │ Sequential │ (4, 2)       │      - │   320 │
            │ 0            │ Dense      │ (4, 8)       │     32 │   192 │
            │ 1            │ Dense      │ (4, 2)       │     18 │   128 │
            └──────────────┴────────────┴──────────────┴────────┴───────┘
            Parameters        50
              trainable       50
              non-trainable   0
            Memory (float32)  200 B (200 bytes)
            FLOPs             320 FLOPs (320, forward)
            Output            (4, 2)
        """
        from rich.console import Console

        console = Console(
            file=io.StringIO(), width=width, color_system=None, highlight=False, emoji=False
        )
        console.print(self)
        text = console.file.getvalue()  # type: ignore[attr-defined]
        return "\n".join(line.rstrip() for line in text.splitlines())

    def __str__(self) -> str:
        return self.render()

    def print(self, console: Any = None) -> None:
        """Show the table on `console` (default: a new `rich` console on stdout).

        On a terminal the table has `rich`'s styles; elsewhere it is the text of
        [`render`][lateinit.Summary.render].

        Args:
            console: a `rich.console.Console` to print on.

        Examples:
            >>> from rich.console import Console
            >>> from lateinit import nn
            >>> s = nn.Sequential(nn.Dense(3)).summary((2, 4))
            >>> s.print(Console(width=80, color_system=None))  # s.print() on a terminal
            Sequential on (2, 4)
            ┏━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━┓
            ┃ Layer (path) ┃ Type       ┃ Output shape ┃ Params ┃ FLOPs ┃
            ┡━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━┩
            │ (network)    │ Sequential │ (2, 3)       │      - │    48 │
            │ 0            │ Dense      │ (2, 3)       │     15 │    48 │
            └──────────────┴────────────┴──────────────┴────────┴───────┘
            Parameters        15
              trainable       15
              non-trainable   0
            Memory (float32)  60 B (60 bytes)
            FLOPs             48 FLOPs (48, forward)
            Output            (2, 3)
        """
        if console is None:
            from rich.console import Console

            console = Console(highlight=False)
        console.print(self)


def summary(block: torch.nn.Module, *inputs: Any, max_depth: int | None = None) -> Summary:
    """Summarize ``block``: per module its output shape, parameters and FLOPs; totals.

    Args:
        block: the network (a lateinit Block or any ``torch.nn.Module``).
        *inputs: what the network would be called with, as for ``Block.infer_shape``:
            tensors (any device, ``meta`` included), shape tuples or
            :class:`lateinit.Spec` (``None`` dims allowed). Without inputs, output
            shapes and FLOPs show ``?`` and parameters of unknown shape ``(deferred)``.
        max_depth: leave rows nested deeper than this out of the table.

    With inputs, the forward runs on meta tensors (``infer_shape(..., flops=True)``):
    nothing is allocated, and deferred parameters end SHAPED, as after ``infer_shape``.
    FLOPs are forward FLOPs counted by ``torch.utils.flop_counter`` (matrix products and
    convolutions; elementwise ops count 0); a row's FLOPs include its children's. When an
    input has ``None`` dims, output shapes show ``None`` there and FLOPs that depend on
    them show ``?``.

    Example:
        >>> from lateinit import nn
        >>> from lateinit.summary import summary
        >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
        >>> s = summary(net, (4, 3))
        >>> [(r.path, r.type, r.output_shape, r.params, r.flops) for r in s.rows]
        [('', 'Sequential', '(4, 2)', 0, 320), ('0', 'Dense', '(4, 8)', 32, 192), ('1', 'Dense', '(4, 2)', 18, 128)]
        >>> s.totals.params, s.totals.param_bytes, s.totals.flops
        (50, {torch.float32: 200}, 320)
        >>> print(summary(nn.Dense(4)))  # before any input: nothing is known yet
        Dense
        ┏━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━┓
        ┃ Layer (path) ┃ Type  ┃ Output shape ┃     Params ┃ FLOPs ┃
        ┡━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━┩
        │ (network)    │ Dense │ ?            │ (deferred) │     ? │
        └──────────────┴───────┴──────────────┴────────────┴───────┘
        Parameters  ? (1 parameter with unknown dims: call infer_shape(...) or summary(net, input) to know them)
        FLOPs       ? (no input given)
    """  # noqa: E501
    if not isinstance(block, torch.nn.Module):
        raise TypeError(f"summary() expects a torch.nn.Module, got {type(block)!r}")
    records: dict[int, tuple[Any, int | None]] = {}
    output: Any = None
    none_dims = False
    if inputs:
        output, records, none_dims = _run(block, inputs)

    call_order = {key: i for i, key in enumerate(records)}  # records: in the order calls end
    rows: list[SummaryRow] = []
    seen: set[int] = set()
    for path, module in block.named_modules():
        own = [p for p in module._parameters.values() if p is not None]
        shared = any(id(p) in seen for p in own)
        seen.update(id(p) for p in own)
        count = None if any(_is_declared(p) for p in own) else sum(_numel(p) for p in own)
        record = records.get(id(module))
        rows.append(
            SummaryRow(
                path=path,
                type=type(module).__name__,
                depth=path.count(".") + 1 if path else 0,
                called=record is not None,
                output=record[0] if record is not None else None,
                params=count,
                shared=shared,
                flops=record[1] if record is not None else None,
                call_order=call_order.get(id(module)),
            )
        )

    params = list(_unique_params(block))
    deferred = tuple(name for name, p in params if _is_declared(p))
    root = records.get(id(block))
    flops = root[1] if root is not None else None
    if deferred:
        totals = SummaryTotals(None, None, None, None, flops, output, deferred)
    else:
        total = sum(_numel(p) for _, p in params)
        trainable = sum(_numel(p) for _, p in params if p.requires_grad)
        memory = param_bytes(block)
        totals = SummaryTotals(total, trainable, total - trainable, memory, flops, output)
    return Summary(_title(block, inputs), rows, totals, max_depth, none_dims)


def _run(block: torch.nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, dict[int, Any], bool]:
    """Output spec, per-module records (output spec, FLOPs) and whether inputs had None
    dims. With ``None`` dims, a second pass at another stand-in size tells which dims and
    FLOPs depend on them: dims that differ become ``None``, FLOPs that differ unknown."""
    if isinstance(block, Block):
        block._name_params()  # structural names in error messages, as infer_shape does
    output, first = infer_shape(block, *inputs, flops=True)  # errors name the inputs given
    if not has_none(inputs):
        return output, {k: (spec, int(f)) for k, (spec, f) in first.items()}, False
    _, second = infer_shape(block, *to_meta(inputs, NONE_SIZES[-1]), flops=True)
    records: dict[int, tuple[Any, int | None]] = {}
    for key, (spec, flops) in first.items():
        other = second.get(key)
        if other is None:
            records[key] = (spec, None)
            continue
        try:
            spec = merge_specs(spec, other[0])
        except (ValueError, KeyError, TypeError):
            pass  # a different structure per size: keep the first
        records[key] = (spec, int(flops) if flops == other[1] else None)
    return output, records, True


def _title(block: torch.nn.Module, inputs: tuple[Any, ...]) -> str:
    name = type(block).__name__
    if not inputs:
        return name
    return f"{name} on {', '.join(fmt_input(x) for x in inputs)}"


def fmt_input(obj: Any) -> str:
    """An input as the summary shows it: ``(None, 5)`` for a shape tuple, a tensor or a
    `lateinit.Spec` of that shape (its dtype added when not the default one)."""
    if isinstance(obj, torch.Tensor):
        obj = Spec(tuple(obj.shape), obj.dtype)
    if isinstance(obj, tuple) and all(isinstance(d, int) or d is None for d in obj):
        obj = Spec(obj)
    return _fmt_output(obj)


def _fmt_output(obj: Any) -> str:
    if isinstance(obj, Spec):
        text = fmt_shape(obj.shape)
        if obj.dtype != torch.get_default_dtype():
            text += " " + str(obj.dtype).replace("torch.", "")
        return text
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(_fmt_output(o) for o in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k}: {_fmt_output(v)}" for k, v in obj.items()) + "}"
    if obj is None:
        return "None"
    return type(obj).__name__


def _fmt_si(n: float, unit: str = "") -> str:
    """``3.63 G`` for 3,628,146,688 (``320`` for 320): three significant digits and an
    SI prefix, then ``unit``."""
    value, prefix = float(n), ""
    for next_prefix in ("K", "M", "G", "T", "P"):
        if abs(float(f"{value:.3g}")) < 1000:
            break
        value, prefix = value / 1000, next_prefix
    return f"{value:.3g} {prefix}{unit}".rstrip()


def fmt_bytes(n: int) -> str:
    """``44.6 MiB`` for 46,758,048 bytes (binary units)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    raise AssertionError("unreachable")
