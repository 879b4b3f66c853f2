"""One figure per benchmark, drawn from the JSON files the scripts write with ``--json``.

Each figure shows, for every headline row of one benchmark (the rows read on the
verdict's clock), the ratio ``lateinit / peer`` as a horizontal bar (below 1: lateinit is
cheaper), the row's target as a short vertical mark where it has one, parity (1.0) as a
line, and on each bar the ratio and the two figures it divides (times or sizes, with
their units). Bars are green when the target is met, red when missed, grey when the row
is only reported.

Run: ``python benchmarks/plot.py [--results DIR] [--out DIR]`` reads
``DIR/*.json`` (default ``benchmarks/results``) and writes ``<benchmark>.svg`` for each
into ``--out`` (default: the results folder).

From Python (the docs' Benchmarks page embeds the figures inline at build time)::

    import sys
    sys.path.insert(0, "benchmarks")
    from plot import svg

    print(svg("overhead"))  # the SVG text, from benchmarks/results/overhead.json

``svg(benchmark, results_dir=...)`` is deterministic (fixed ``svg.hashsalt``, text kept
as text with ``svg.fonttype = "none"``, no date in the metadata): the same JSON gives
the same text, byte for byte. It starts at ``<svg`` (no XML declaration), so it can be
pasted into HTML as it is; every id is prefixed with the benchmark's name so that
several figures can share one page. matplotlib draws with its object-oriented API
(``matplotlib.figure.Figure``): no pyplot, no display; ``main`` also selects the Agg
backend.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: What each benchmark compares (the figure's title); unknown names get their own name.
TITLES = {
    "overhead": "overhead.py: MLP training step and first call, lateinit vs torch.nn",
    "steps": "steps.py: training step of READY networks, lateinit vs torch.nn",
    "train": "train.py: training with lateinit.Trainer vs a plain torch loop",
    "infer": "infer.py: data-free shape inference of Llama-style networks",
    "io": "io.py: parameter files, lateinit vs safetensors / torch.save",
}
COLORS = {True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}  # met, missed, reported
TARGET_COLOR = "#1565c0"
WHAT = {"s": "time", "MB": "peak RSS growth"}


def _timing() -> ModuleType:
    """``benchmarks/_timing.py`` (for ``fmt_time``), also when this file is imported from
    elsewhere than ``benchmarks/`` (the docs build)."""
    if "_timing" in sys.modules:
        return sys.modules["_timing"]
    spec = importlib.util.spec_from_file_location("_timing", HERE / "_timing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_timing"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load(benchmark: str, results_dir: str | os.PathLike[str] = RESULTS) -> dict[str, Any]:
    """The JSON file of one benchmark: ``results_dir/<benchmark>.json``."""
    return json.loads((Path(results_dir) / f"{benchmark}.json").read_text())


def fmt_value(value: float, unit: str) -> str:
    """A figure with its unit: times as the scripts print them, sizes in MB."""
    if unit == "s":
        return _timing().fmt_time(value)
    return f"{value:.1f} {unit}" if abs(value) < 10 else f"{value:.0f} {unit}"


def _label(row: dict[str, Any]) -> str:
    """The row's name (its case alone where that already starts with the measurement),
    then what it divides by what; wrapped."""
    case, measurement = row["case"], row["measurement"]
    first = case if case.split()[0].split("(")[0] == measurement.split()[0] else row["row"]
    first = textwrap.fill(first, 58)
    second = textwrap.fill(f"{row['lateinit']['label']} vs {row['peer']['label']}", 62)
    return f"{first}\n{second}"


def _footer(data: dict[str, Any]) -> str:
    env = data.get("environment", {})
    parts = [
        str(env.get("date", "?"))[:10],
        f"torch {env.get('torch', '?')}",
        f"python {env.get('python', '?')}",
        f"{env.get('cpus', '?')} CPUs",
        f"torch threads {env.get('torch_threads', '?')}",
    ]
    if env.get("clock"):
        parts.append(f"{env['clock']} clock")
    if env.get("load_average"):
        parts.append(f"load average {env['load_average'][0]:.2f} at start")
    if env.get("commit"):
        parts.append(f"commit {env['commit']}" + (" + changes" if env.get("dirty") else ""))
    if env.get("quick"):
        parts.append("--quick (figures not meaningful)")
    text = "; ".join(parts)
    if data.get("note"):
        text += "\n" + textwrap.fill(f"note: {data['note']}", 190)
    return text


def figure(data: dict[str, Any]) -> Any:
    """The matplotlib ``Figure`` of one benchmark's results (``load``'s dict)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    benchmark = data["benchmark"]
    rows = [r for r in data["rows"] if r.get("headline", True) and r.get("ratio") is not None]
    n = len(rows)
    fig = Figure(figsize=(11, 1.9 + 0.62 * max(n, 1)), layout="constrained")
    ax = fig.add_subplot()
    ys = list(range(n - 1, -1, -1))  # first row on top
    ratios = [r["ratio"] for r in rows]
    targets = [r["target"] for r in rows if r.get("target") is not None]
    top = max([1.0, *ratios, *targets])
    low = min([1.0, *ratios, *targets])
    # ratios far apart (infer.py: 0.16 and 4.2) read better on a log scale, with the
    # bars growing from parity; a ratio near zero (no RSS growth) needs the linear one
    log = low >= 0.02 and top / low > 8
    colors = [COLORS[r.get("met")] for r in rows]
    if log:
        ax.set_xscale("log")
        widths = [x - 1.0 for x in ratios]
        ax.barh(ys, widths, left=1.0, height=0.62, color=colors, zorder=2)
        ax.set_xlim(low / 1.6, top * (top * 1.6 / low) ** 0.6)
        ticks = [t for t in (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if low / 1.6 <= t]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    else:
        ax.barh(ys, ratios, height=0.62, color=colors, zorder=2)
        ax.set_xlim(0, top * 1.6)
    for y, r in zip(ys, rows, strict=True):
        if r.get("target") is not None:
            ax.plot([r["target"]] * 2, [y - 0.42, y + 0.42], color=TARGET_COLOR, lw=2.2, zorder=3)
        unit, ratio = r["unit"], r["ratio"]
        inverse = f" = 1/{1 / ratio:.1f}" if 0.01 <= ratio < 0.5 else ""
        text = (
            f"{ratio:.3f}{inverse}  ({fmt_value(r['lateinit']['value'], unit)} vs "
            f"{fmt_value(r['peer']['value'], unit)})"
        )
        right = max(ratio, r.get("target") or 0.0, 1.0)  # clear of the parity line
        x = right * 1.08 if log else right + 0.012 * top
        ax.text(x, y, text, va="center", ha="left", fontsize=8.5, zorder=4)
    ax.axvline(1.0, color="black", lw=0.9, zorder=1)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_yticks(ys, [_label(r) for r in rows], fontsize=7.5)
    ax.grid(axis="x", color="#e0e0e0", zorder=0)
    ax.set_axisbelow(True)
    units = sorted({r["unit"] for r in rows})
    what = " or ".join(WHAT.get(u, u) for u in units)
    clock = data.get("environment", {}).get("clock")
    median = f"medians, {clock} clock" if clock and "s" in units else "medians"
    scale = ", log scale" if log else ""
    ax.set_xlabel(
        f"lateinit / peer ({what}, {median}{scale}): below 1, lateinit is cheaper",
        fontsize=9,
    )
    ax.set_title(TITLES.get(benchmark, benchmark), fontsize=11, loc="left", pad=10)
    handles = [
        Patch(color=COLORS[True], label="target met"),
        Patch(color=COLORS[False], label="target missed"),
        Patch(color=COLORS[None], label="reported (no target)"),
        Line2D([], [], color=TARGET_COLOR, lw=2.2, label="target (largest ratio allowed)"),
        Line2D([], [], color="black", lw=0.9, label="parity (1.0)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=7.5, frameon=False)
    fig.suptitle(_footer(data), fontsize=7, color="#555555", x=0.01, ha="left")
    return fig


def svg(benchmark: str, results_dir: str | os.PathLike[str] = RESULTS) -> str:
    """The SVG text of one benchmark's figure, from ``results_dir/<benchmark>.json``.

    Deterministic: the same file gives the same text. It starts at ``<svg`` (no XML
    declaration), ready to be embedded in HTML; its ids start with ``<benchmark>-``.
    """
    import matplotlib

    data = load(benchmark, results_dir)
    rc = {"svg.hashsalt": f"lateinit-{benchmark}", "svg.fonttype": "none"}
    with matplotlib.rc_context(rc):
        fig = figure(data)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # every id (matplotlib's "figure_1", "patch_3", ... too) prefixed with the
    # benchmark's name, so that the figures of one HTML page share none
    prefix = f"{benchmark}-"
    for old, new in ((' id="', f' id="{prefix}'), ("url(#", f"url(#{prefix}")):
        text = text.replace(old, new)
    return text.replace('xlink:href="#', f'xlink:href="#{prefix}')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="folder of the JSON files (%(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the SVG files (default: --results)"
    )
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    out = args.out or args.results
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(args.results.glob("*.json"))
    if not files:
        print(f"no JSON files in {args.results}", file=sys.stderr)
        return 1
    for path in files:
        target = out / f"{path.stem}.svg"
        target.write_text(svg(path.stem, args.results))
        print(f"{path} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
