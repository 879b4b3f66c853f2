"""Pictures of networks: one SVG box per layer, without data (like Keras' ``plot_model``).

`plot` draws what `lateinit.summary.summary` knows: per module its output shape (from a
forward on meta tensors) and its parameter count. It runs on a private replica of the
network (`inference.Replica`), so the network itself does not change: a DECLARED
parameter stays DECLARED and nothing is allocated (`docs/design.md`, "Inspecting never
mutates").

The layout is a vertical stack in call order: the input(s), one box per layer, the
output, with an arrow between consecutive boxes; a module with children (``Sequential``,
a residual unit, a user Block) is a labelled frame around its children, indented. The
SVG is built with ``xml.etree.ElementTree`` (text and attributes escaped by it) in a
monospace font, so a box's width follows from the number of characters it holds.
"""

from __future__ import annotations

import os
import pathlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import torch

from .inference import Replica
from .summary import Summary, SummaryRow, fmt_bytes, fmt_input, summary

__all__ = ["plot", "svg_path"]

FONT_SIZE = 12
CHAR = 7.25  # a monospace character's advance at FONT_SIZE (0.6 em, rounded up)
LINE = 16  # one line of text
PAD = 8  # inside a box, around its text
GAP = 22  # between two boxes of a stack (room for the arrow)
INDENT = 14  # a frame's children, from its left and right edges
MARGIN = 16  # around the picture
MAX_CHARS = 64  # characters of a line in a box; a longer one is cut with "…"

_STYLE = {  # kind -> (fill, stroke, dash)
    "layer": ("#e8f0fb", "#4a72b0", ""),
    "frame": ("#f6f6f6", "#9a9a9a", "5 3"),
    "io": ("#fff3dc", "#c08a2b", ""),
}


@dataclass
class _Item:
    """One box (a layer, the input, the output) or one frame (a module with children)."""

    kind: str
    lines: list[str]  # the first one bold
    path: str = ""
    tooltip: str = ""  # the lines uncut
    children: list[_Item] = field(default_factory=list)

    def width(self) -> float:
        text = max(len(line) for line in self.lines) * CHAR + 2 * PAD
        inner = max((c.width() for c in self.children), default=0.0)
        return max(text, inner + 2 * INDENT)

    def header(self) -> float:
        return 2 * PAD + LINE * len(self.lines)

    def height(self) -> float:
        if not self.children:
            return self.header()
        return self.header() + _stack_height(self.children) + INDENT


def svg_path(path: str | os.PathLike[str]) -> pathlib.Path:
    """``path`` as a `pathlib.Path` when it names an ``.svg`` file; else a ``ValueError``
    that says how to fix it (nothing but SVG is written).

    Examples:
        >>> from lateinit.plot import svg_path
        >>> svg_path("net.svg").name
        'net.svg'
        >>> svg_path("net.png")
        Traceback (most recent call last):
        ...
        ValueError: plot writes SVG only, and 'net.png' does not end in .svg. Fix: give a path ending in .svg, such as 'net.svg' (convert it afterwards if you need another format, e.g. rsvg-convert -f png net.svg > net.png).
    """  # noqa: E501
    result = pathlib.Path(path)
    if result.suffix.lower() != ".svg":
        fixed = result.with_suffix(".svg") if result.name else pathlib.Path("net.svg")
        raise ValueError(
            f"plot writes SVG only, and {str(path)!r} does not end in .svg. Fix: give a path "
            f"ending in .svg, such as {str(fixed)!r} (convert it afterwards if you need "
            f"another format, e.g. rsvg-convert -f png {fixed} > {fixed.with_suffix('.png')})."
        )
    return result


def plot(
    block: torch.nn.Module,
    *inputs: Any,
    path: str | os.PathLike[str] | None = None,
    max_depth: int | None = None,
    show_shapes: bool = True,
    show_params: bool = True,
) -> str:
    """A picture of ``block`` as SVG text: its layers top to bottom in call order, each
    with its output shape and parameter count; written to ``path`` when given.

    Args:
        block: the network (a lateinit Block or any ``torch.nn.Module``).
        *inputs: what the network would be called with, as for
            [`Block.summary`][lateinit.Block.summary]: tensors (any device), shape tuples
            or `lateinit.Spec` (``None`` dims allowed, shown as ``None``). Without inputs
            the output shapes show ``?``, and so do the counts of parameters whose shape
            is not known yet.
        path: an ``.svg`` file to write the picture to (another suffix is a
            ``ValueError``, raised before anything is done).
        max_depth: draw modules nested at most this deep (the network's children are at
            depth 1); a deeper module's parameters count in its drawn ancestor's box.
        show_shapes: write each layer's output shape in its box.
        show_params: write each layer's parameter count in its box (a frame's count is
            its whole subtree's; a shared parameter counts at its first use).

    The forward runs on meta tensors on a private replica of the network, as
    [`Block.summary`][lateinit.Block.summary]'s does: nothing is allocated, and the
    network does not change (a DECLARED parameter stays DECLARED).

    Examples:
        >>> import xml.etree.ElementTree as ET
        >>> from lateinit import Spec, nn
        >>> from lateinit.plot import plot
        >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
        >>> svg = plot(net, Spec((None, 5)))
        >>> lines = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
        >>> lines[:2]  # the title: the network, its inputs and totals
        ['Sequential on (None, 5)', '66 parameters · 264 B (float32)']
        >>> lines[2:]  # the boxes, top to bottom
        ['input', '(None, 5)', '0 · Dense(5 -> 8, relu)', '(None, 8) · 48 params',
         '1 · Dense(8 -> 2)', '(None, 2) · 18 params', 'output', '(None, 2)']
    """
    out = svg_path(path) if path is not None else None
    if not isinstance(block, torch.nn.Module):
        raise TypeError(f"plot() expects a torch.nn.Module, got {type(block)!r}")
    replica = Replica(block).root  # summary shapes the replica's private copies, not block
    result = summary(replica, *inputs)
    modules = dict(replica.named_modules())
    network = _items(result, modules, max_depth, show_shapes, show_params)
    items = network.children or [network]  # the title names the network: no frame for it
    if inputs:
        shown = ", ".join(fmt_input(x) for x in inputs)
        items.insert(0, _Item("io", ["input", _cut(shown)], tooltip=shown))
        shown = result.rows[0].output_shape
        items.append(_Item("io", ["output", _cut(shown)], tooltip=shown))
    svg = _render(_title(result, bool(inputs)), items)
    if out is not None:
        out.write_text(svg, encoding="utf-8")
    return svg


# ---------------------------------------------------------------------------------------
# What each box says.


def _clean(text: str) -> str:
    """One line of printable text (an ``extra_repr`` may hold newlines; XML 1.0 allows no
    control characters, which ElementTree would write as they are)."""
    return "".join(c if c.isprintable() else " " for c in " ".join(text.split()))


def _label(path: str, module: torch.nn.Module) -> str:
    extra = _clean(module.extra_repr())
    text = f"{type(module).__name__}({extra})" if extra else type(module).__name__
    return f"{_clean(path)} · {text}" if path else text


def _cut(line: str) -> str:
    return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 1] + "…"


def _count(n: int | None) -> str:
    return "? params" if n is None else f"{n:,} param{'s' * (n != 1)}"


def _info(result: Summary, row: SummaryRow, subtree: bool, shapes: bool, params: bool) -> str:
    """The second line of a box: output shape and parameter count (``subtree``: the
    module's and its descendants', a shared parameter at its first use only)."""
    parts = []
    if shapes:
        if row.called:
            parts.append(row.output_shape)
        else:
            parts.append("not called" if result.totals.output is not None else "shape ?")
    if params:
        if subtree:
            prefix = row.path + "." if row.path else ""
            rows = [r for r in result.rows if r is row or r.path.startswith(prefix)]
            counts = [r.params for r in rows if r is row or not r.shared]
            total = None if None in counts else sum(n for n in counts if n is not None)
            parts.append(_count(total))
        else:
            parts.append(_count(row.params) + (" (shared)" if row.shared else ""))
    return " · ".join(parts)


def _items(
    result: Summary,
    modules: dict[str, torch.nn.Module],
    max_depth: int | None,
    shapes: bool,
    params: bool,
) -> _Item:
    """The network's item: a box, or a frame around its children's items (in call order,
    modules never called last), down to ``max_depth``."""
    children: dict[str, list[SummaryRow]] = {}
    for row in result.rows[1:]:
        children.setdefault(row.path.rpartition(".")[0], []).append(row)
    for rows in children.values():
        rows.sort(key=lambda r: (r.call_order is None, r.call_order or 0))  # stable

    def item(row: SummaryRow) -> _Item:
        below = children.get(row.path, [])
        drawn = below if max_depth is None or row.depth < max_depth else []
        full = [
            _label(row.path, modules[row.path]),
            _info(result, row, bool(below), shapes, params),
        ]
        full = [line for line in full if line]
        kind = "frame" if drawn else "layer"
        lines = [_cut(line) for line in full]
        return _Item(kind, lines, row.path, "\n".join(full), [item(r) for r in drawn])

    return item(result.rows[0])


def _title(result: Summary, inputs: bool) -> list[str]:
    totals = result.totals
    if totals.params is None:
        n = len(totals.deferred)
        fix = "" if inputs else ": give the inputs to know them"
        counts = f"? parameters ({n} with unknown dims{fix})"
    else:
        memory = totals.param_bytes or {}
        dtypes = ", ".join(str(d).replace("torch.", "") for d in memory)
        counts = f"{totals.params:,} parameters · {fmt_bytes(totals.total_bytes or 0)}"
        counts += f" ({dtypes})" if dtypes else ""
    return [result.title, counts]


# ---------------------------------------------------------------------------------------
# Drawing.


def _num(value: float) -> str:
    """A coordinate for an attribute: ``12.5``, ``40`` (never an exponent)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _stack_height(items: list[_Item]) -> float:
    return sum(i.height() for i in items) + GAP * (len(items) - 1)


def _text(parent: ET.Element, x: float, y: float, lines: list[str]) -> None:
    """``lines`` from ``y`` down, the first one bold."""
    for n, line in enumerate(lines):
        attrs = {"x": _num(x), "y": _num(y + PAD + LINE * n + FONT_SIZE)}
        attrs.update({"font-weight": "bold", "fill": "#1a1a1a"} if n == 0 else {"fill": "#555555"})
        ET.SubElement(parent, "text", attrs).text = line


def _draw(parent: ET.Element, item: _Item, x: float, y: float, width: float) -> None:
    group = ET.SubElement(parent, "g", {"class": item.kind})
    if item.path:
        group.set("data-path", item.path)
    if item.tooltip:
        ET.SubElement(group, "title").text = item.tooltip
    fill, stroke, dash = _STYLE[item.kind]
    rect = {
        "x": _num(x),
        "y": _num(y),
        "width": _num(width),
        "height": _num(item.height()),
        "rx": "5",
        "fill": fill,
        "stroke": stroke,
    }
    if dash:
        rect["stroke-dasharray"] = dash
    ET.SubElement(group, "rect", rect)
    _text(group, x + PAD, y, item.lines)
    if item.children:
        _draw_stack(group, item.children, x + INDENT, y + item.header(), width - 2 * INDENT)


def _draw_stack(parent: ET.Element, items: list[_Item], x: float, y: float, width: float) -> None:
    middle = _num(x + width / 2)
    for n, item in enumerate(items):
        if n:
            attrs = {"x1": middle, "y1": _num(y - GAP), "x2": middle, "y2": _num(y - 1)}
            attrs.update({"stroke": "#555555", "marker-end": "url(#arrow)"})
            ET.SubElement(parent, "line", attrs)
        _draw(parent, item, x, y, width)
        y += item.height() + GAP


def _render(title: list[str], items: list[_Item]) -> str:
    width = max([max(i.width() for i in items), *(len(t) * CHAR for t in title)])
    title_height = LINE * len(title) + PAD
    height = title_height + _stack_height(items)
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "width": _num(width + 2 * MARGIN),
            "height": _num(height + 2 * MARGIN),
            "viewBox": f"0 0 {_num(width + 2 * MARGIN)} {_num(height + 2 * MARGIN)}",
            "font-family": "DejaVu Sans Mono, Menlo, Consolas, monospace",
            "font-size": str(FONT_SIZE),
        },
    )
    marker = ET.SubElement(
        ET.SubElement(svg, "defs"),
        "marker",
        {
            "id": "arrow",
            "viewBox": "0 0 8 8",
            "refX": "8",
            "refY": "4",
            "markerWidth": "8",
            "markerHeight": "8",
            "orient": "auto",
        },
    )
    ET.SubElement(marker, "path", {"d": "M0,0 L8,4 L0,8 z", "fill": "#555555"})
    ET.SubElement(svg, "rect", {"width": "100%", "height": "100%", "fill": "white"})
    _text(svg, MARGIN, MARGIN - PAD, title)
    _draw_stack(svg, items, MARGIN, MARGIN + title_height, width)
    return ET.tostring(svg, encoding="unicode")
