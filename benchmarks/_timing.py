"""Side-by-side timing helpers shared by the benchmark scripts.

On a small, noisy machine two variants measured one after the other see different
noise. :func:`interleaved` instead alternates the variants sample by sample (in ABBA
order, so neither always runs first), and :class:`Comparison` turns the two series into
robust figures: the ratio of the medians, and the ratio of the *min of medians* (the
series is cut into consecutive rounds, each round's median taken, and the smallest kept:
noise only ever adds time, so the quietest round is the best estimate of the true cost).

Example:
    >>> import time
    >>> samples = interleaved({"a": lambda: None, "b": lambda: time.sleep(0)}, repeats=6)
    >>> sorted(samples), sorted(samples["cpu"]), len(samples["wall"]["a"])
    (['cpu', 'wall'], ['a', 'b'], 6)
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "CLOCKS",
    "Comparison",
    "Results",
    "add_json_option",
    "add_run_options",
    "clocks_from",
    "command_line",
    "environment",
    "environment_facts",
    "format_environment",
    "fmt_time",
    "interleaved",
    "load_average",
    "min_of_medians",
    "round_medians",
    "start_run",
]


#: The clocks every sample is read on: ``cpu`` is the CPU time of the whole process
#: (user + system, all threads), which a process preempted by other work on a shared
#: machine does not accumulate; ``wall`` is elapsed real time.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    repeats: int,
    *,
    number: int = 1,
    warmup: int = 1,
) -> dict[str, dict[str, list[float]]]:
    """Time several callables side by side; return seconds per call, per clock.

    Args:
        fns: the variants, by name. Each call of a variant is one unit of work.
        repeats: samples taken per variant.
        number: calls per sample (a sample's time is divided by ``number``); use more
            than one for work of a millisecond or less, so the clock's cost vanishes.
        warmup: untimed calls of each variant before sampling starts.

    Variants alternate sample by sample, in ABBA order (A B, B A, A B, ...) so that
    neither is always first after a switch. Each sample is read on every clock of
    :data:`CLOCKS`. The garbage collector runs before each sample and is off while it is
    timed; objects alive before the first sample are frozen (``gc.freeze``) so that
    collecting stays cheap. What a call returns is kept until its sample's clocks stop,
    so freeing it (e.g. a whole network) is not timed.

    Returns:
        ``{clock: {name: [seconds per call of sample 0, sample 1, ...]}}``.
    """
    if repeats < 1 or number < 1:
        raise ValueError("repeats and number must be >= 1")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in CLOCKS}
    cpu_clock, wall_clock = CLOCKS["cpu"], CLOCKS["wall"]
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()  # a full collection with torch loaded takes ~0.1 s; now only new objects
    try:
        for i in range(repeats):
            for name in names if i % 2 == 0 else reversed(names):
                fn = fns[name]
                gc.collect()
                gc.disable()
                kept = None
                wall0, cpu0 = wall_clock(), cpu_clock()
                for _ in range(number):
                    kept = fn()
                cpu1, wall1 = cpu_clock(), wall_clock()
                del kept
                gc.enable()
                samples["cpu"][name].append((cpu1 - cpu0) / number)
                samples["wall"][name].append((wall1 - wall0) / number)
    finally:
        gc.unfreeze()
        if gc_was_enabled:
            gc.enable()
        else:
            gc.disable()
    return samples


def round_medians(samples: Sequence[float], rounds: int) -> list[float]:
    """Cut ``samples`` into ``rounds`` consecutive chunks (as equal as possible) and
    return each chunk's median."""
    rounds = max(1, min(rounds, len(samples)))
    size, extra = divmod(len(samples), rounds)
    out, start = [], 0
    for r in range(rounds):
        stop = start + size + (1 if r < extra else 0)
        out.append(statistics.median(samples[start:stop]))
        start = stop
    return out


def min_of_medians(samples: Sequence[float], rounds: int) -> float:
    """The smallest of the per-round medians (see :func:`round_medians`)."""
    return min(round_medians(samples, rounds))


@dataclass
class Comparison:
    """Two interleaved series of the same work, and their ratio against a target.

    ``a`` is the variant under test (its time is the numerator), ``b`` the reference;
    ``samples`` holds both series on every clock (``{clock: {label: series}}``, as
    :func:`interleaved` returns), ``clock`` names the one the headline figures use.
    """

    name: str
    detail: str
    a_label: str
    b_label: str
    samples: dict[str, dict[str, list[float]]]
    target: float
    rounds: int = 5
    clock: str = "cpu"

    @property
    def a(self) -> list[float]:
        return self.samples[self.clock][self.a_label]

    @property
    def b(self) -> list[float]:
        return self.samples[self.clock][self.b_label]

    @property
    def a_median(self) -> float:
        return statistics.median(self.a)

    @property
    def b_median(self) -> float:
        return statistics.median(self.b)

    @property
    def ratio(self) -> float:
        """Ratio of the medians, ``median(a) / median(b)``: the headline figure."""
        return self.a_median / self.b_median

    def ratio_on(self, clock: str) -> float:
        """The ratio of the medians read on another clock."""
        s = self.samples[clock]
        return statistics.median(s[self.a_label]) / statistics.median(s[self.b_label])

    @property
    def ratio_min_of_medians(self) -> float:
        """``min_of_medians(a) / min_of_medians(b)``: the quietest rounds of each."""
        return min_of_medians(self.a, self.rounds) / min_of_medians(self.b, self.rounds)

    @property
    def round_ratios(self) -> list[float]:
        """The ratio of medians within each round: their spread shows the noise."""
        return [
            x / y
            for x, y in zip(
                round_medians(self.a, self.rounds), round_medians(self.b, self.rounds), strict=True
            )
        ]

    @property
    def met(self) -> bool:
        """Whether the headline ratio (of the medians) is within the target."""
        return self.ratio <= self.target


# -- what every benchmark script prints and accepts ----------------------------------------


def fmt_time(seconds: float) -> str:
    """Three or four significant digits: ``371.2 µs``, ``1.76 ms``, ``463.7 ms``, ``1.15 s``."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            return f"{value:.1f} {unit}" if value >= 100 else f"{value:.2f} {unit}"
    raise AssertionError("unreachable")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, ``"2.10 2.45 1.98"``."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


#: What a run measures, for :func:`git_commit`'s dirty flag (git pathspecs): the library
#: and the benchmark scripts, not the results, plots or notes.
MEASURED = ("src", "benchmarks/*.py", ":!benchmarks/plot.py")


def git_commit() -> dict[str, Any] | None:
    """The commit of the working tree this file is in, or None when git or the repository
    is unavailable: ``{"commit": short hash, "dirty": bool}``, dirty when tracked files
    of what is measured (:data:`MEASURED`: ``src/``, the benchmark scripts) differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *MEASURED],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())} if head else None


def environment_facts(clock: str | None = None, quick: bool | None = None) -> dict[str, Any]:
    """Where a run is made, as data: date, torch, python, CPUs, torch threads, the
    headline clock (None where a script has none), the load average, ``--quick`` and the
    git commit. :func:`environment` prints the same facts as one line."""
    import torch

    repo = git_commit()
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "clock": clock,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "quick": quick,
        "commit": repo["commit"] if repo else None,
        "dirty": repo["dirty"] if repo else None,
    }


def format_environment(facts: Mapping[str, Any]) -> str:
    """The one-line form of :func:`environment_facts`."""
    quick = {True: "; --quick", False: "", None: ""}[facts.get("quick")]
    commit = ""
    if facts.get("commit"):
        commit = f"; commit {facts['commit']}" + (" (dirty)" if facts.get("dirty") else "")
    return (
        f"date {facts['date']}; torch {facts['torch']}; python {facts['python']}; "
        f"{facts['cpus']} CPUs ({facts['machine']}); torch threads {facts['torch_threads']}; "
        + (f"clock {facts['clock']}; " if facts.get("clock") is not None else "")
        + "load average "
        + " ".join(f"{x:.2f}" for x in facts["load_average"])
        + quick
        + commit
    )


def environment(clock: str | None = None) -> str:
    """One line on where a run was made: date, torch, python, CPUs, torch threads, the
    headline clock (if given) and the load average."""
    return format_environment(environment_facts(clock))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of the side-by-side step benchmarks: ``--quick``, ``--threads``,
    ``--scale`` and ``--clock``."""
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: seconds, figures not meaningful"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the number of samples (1.0)"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="clock of the verdict: cpu = process CPU time (default; robust when other "
        "processes share the cores), wall = elapsed time",
    )
    add_json_option(parser)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: also write the results as data (:class:`Results`)."""
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the results (environment, one entry per row) as JSON to PATH",
    )


def start_run(args: argparse.Namespace, title: str) -> Console:
    """Set up a run with :func:`add_run_options`' options (torch threads, seed 0) and
    print its title and :func:`environment` line; returns the console to report on.
    The environment's facts are kept in ``args.environment`` (for :class:`Results`)."""
    import torch
    from rich.console import Console

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    console = Console(width=None if sys.stdout.isatty() else 170)
    quick = " (--quick: smoke run, figures not meaningful)" if args.quick else ""
    args.environment = environment_facts(args.clock, args.quick)
    console.print(f"{title}{quick}\n" + format_environment(args.environment))
    return console


def clocks_from(headline: str) -> tuple[str, ...]:
    """Every clock of :data:`CLOCKS`, the headline one first."""
    return (headline, *(c for c in sorted(CLOCKS) if c != headline))


# -- results as data (``--json PATH``) ------------------------------------------------------

#: Version of the JSON layout :meth:`Results.write` produces (``benchmarks/plot.py`` reads it).
SCHEMA = 1


@dataclass
class Results:
    """The rows a benchmark run prints, kept as data and written by ``--json PATH``.

    Every row compares lateinit with one peer (``torch.nn``, ``Lazy*``, safetensors,
    ``torch.save``, ...) on one measurement: both figures in ``unit``, their ratio
    ``lateinit / peer`` (lower is better for lateinit), and the largest ratio the row's
    target allows (None when the row is only reported). The scripts fill it from the
    very values they print, so the file and the printed table cannot disagree.

    Example:
        >>> r = Results("demo", {"date": "2026-12-01T00:00:00"}, command="demo.py")
        >>> row = r.add("step", "tiny", "lateinit", 2.0, "torch.nn", 4.0, "s", target=1.03)
        >>> row["ratio"], row["met"], row["row"]
        (0.5, True, 'step: tiny')
    """

    benchmark: str
    environment: dict[str, Any]
    command: str = ""
    note: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        measurement: str,
        case: str,
        lateinit_label: str,
        lateinit: float,
        peer_label: str,
        peer: float,
        unit: str,
        *,
        target: float | None = None,
        met: bool | None = None,
        clock: str | None = None,
        headline: bool = True,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add one row; ``ratio`` is ``lateinit / peer`` (None if ``peer`` is 0), ``met``
        defaults to ``ratio <= target``. ``headline`` is False for a row read on the
        other clock (the plot shows headline rows only). Returns the row."""
        ratio = lateinit / peer if peer else None
        if target is not None and math.isinf(target):
            target = None
        if met is None and target is not None and ratio is not None:
            met = ratio <= target
        row = {
            "benchmark": self.benchmark,
            "row": f"{measurement}: {case}",
            "measurement": measurement,
            "case": case,
            "clock": clock,
            "headline": headline,
            "lateinit": {"label": lateinit_label, "value": lateinit},
            "peer": {"label": peer_label, "value": peer},
            "unit": unit,
            "ratio": ratio,
            "target": target,
            "met": met,
            "detail": dict(detail or {}),
        }
        self.rows.append(row)
        return row

    def add_comparison(
        self,
        c: Comparison,
        *,
        measurement: str | None = None,
        case: str | None = None,
        lateinit_label: str | None = None,
        peer_label: str | None = None,
        target: float | None = None,
        headline: bool | None = None,
        headline_clock: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add a :class:`Comparison` (medians in seconds on its clock, ``a`` being
        lateinit's side), with its min-of-medians ratio, per-round ratios and sample
        count in ``detail``. ``target`` defaults to ``c.target`` (``math.inf``: none);
        ``headline`` to ``c.clock == headline_clock`` (True without one)."""
        if headline is None:
            headline = headline_clock is None or c.clock == headline_clock
        rr = c.round_ratios
        return self.add(
            measurement or c.name,
            case or c.detail,
            lateinit_label or c.a_label,
            c.a_median,
            peer_label or c.b_label,
            c.b_median,
            "s",
            target=c.target if target is None else target,
            clock=c.clock,
            headline=headline,
            detail={
                "min_of_medians_ratio": c.ratio_min_of_medians,
                "round_ratios": [min(rr), max(rr)],
                "rounds": len(rr),
                "samples": len(c.a),
                **(detail or {}),
            },
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "benchmark": self.benchmark,
            "command": self.command,
            "environment": self.environment,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "note": self.note,
            "rows": self.rows,
        }

    def write(self, path: str | os.PathLike[str] | None) -> None:
        """Write the JSON file (nothing when ``path`` is None, i.e. no ``--json``)."""
        if path is None:
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1, ensure_ascii=False) + "\n")


def command_line() -> str:
    """How this run was started, for the JSON file: ``python benchmarks/x.py --opts``
    (the interpreter's path left out)."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path(__file__).resolve().parent.parent)
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])
