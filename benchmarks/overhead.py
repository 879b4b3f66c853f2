"""Overhead of lateinit against plain ``torch.nn``, measured side by side in one run.

Two promises of docs/design.md ("Promises") are measured on an MLP built both ways:

1. **Steady state**: once READY, a lateinit network trains as fast as the same network of
   plain ``torch.nn`` modules. One training step (``zero_grad``, forward, cross-entropy,
   backward, ``SGD.step``) of each, interleaved sample by sample, with the same weights
   and the same batch. Target: ratio lateinit/torch <= 1.03.
2. **First call**: construction plus the deferred first batch (one training step)
   against plain ``torch.nn`` construction plus one training step, each from scratch.
   Target: ratio <= 1.5 for the compute-bound MLP and for the same MLP fed 2 rows
   (*init-bound*: creating its 21M parameters outweighs the step), and <= 1.3 for the
   dispatch-bound one (issue 12). For that one the script also times each phase
   (construction, ``initialize()``, the SGD constructor, the first forward, backward and
   step) of three variants side by side: lateinit deferred, lateinit with every size
   given (nothing left for the first pass to infer), and torch.

Cases: *dispatch-bound* (batch 2, 20 -> 256 -> 10: Python and dispatch overhead
dominate) and *compute-bound* (batch 256, 1024 -> 4096 -> 4096 -> 10: the matmuls
dominate), with ReLU between layers. Times are process CPU time by default (``--clock
wall`` for elapsed time): with one torch thread it is the work done, and it does not
grow when other processes take the cores; the other clock's ratio is shown beside.

Run: ``python benchmarks/overhead.py`` (about 2 minutes on 2 CPU cores), or
``--quick`` for a smoke run of a few seconds (smaller compute-bound MLP, few repeats:
its figures mean nothing); ``--json PATH`` also writes the rows as data (for
``benchmarks/plot.py``). The exit status is 0 whether targets are met or not: this is
a measurement, not a test.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from _timing import (
    Comparison,
    Results,
    add_run_options,
    command_line,
    fmt_time,
    interleaved,
    start_run,
)
from lateinit import nn as lnn

STEADY_TARGET = 1.03
FIRST_CALL_TARGET = 1.5
DISPATCH_FIRST_CALL_TARGET = 1.3  # issue 12
PHASES = ("construction", "initialize()", "SGD constructor", "first forward", "backward + step")
LR = 1e-3


@dataclass(frozen=True)
class MLPCase:
    """An MLP ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` (ReLU between) fed ``batch``
    rows."""

    name: str
    batch: int
    sizes: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"batch {self.batch}, " + "-".join(str(s) for s in self.sizes)


DISPATCH = MLPCase("dispatch-bound", 2, (20, 256, 10))
COMPUTE = MLPCase("compute-bound", 256, (1024, 4096, 4096, 10))
COMPUTE_QUICK = MLPCase("compute-bound", 64, (256, 1024, 1024, 10))
# The compute-bound MLP fed 2 rows: creating its 21M parameters outweighs the step.
INIT = MLPCase("init-bound", 2, COMPUTE.sizes)
INIT_QUICK = MLPCase("init-bound", 2, COMPUTE_QUICK.sizes)


@dataclass(frozen=True)
class Plan:
    """Repeats per measurement (samples per variant, calls per sample, rounds for the
    min of medians)."""

    steady_dispatch: tuple[int, int, int] = (400, 25, 8)
    steady_compute: tuple[int, int, int] = (50, 1, 5)
    first_dispatch: tuple[int, int, int] = (300, 1, 6)
    first_compute: tuple[int, int, int] = (12, 1, 3)
    first_init: tuple[int, int, int] = (20, 1, 4)
    phases: int = 2000  # first calls per variant, timed phase by phase

    def scaled(self, factor: float) -> Plan:
        def s(t: tuple[int, int, int]) -> tuple[int, int, int]:
            return (max(2, round(t[0] * factor)), t[1], min(t[2], max(1, round(t[0] * factor))))

        return Plan(
            s(self.steady_dispatch),
            s(self.steady_compute),
            s(self.first_dispatch),
            s(self.first_compute),
            s(self.first_init),
            max(10, round(self.phases * factor)),
        )


FULL_PLAN = Plan()
QUICK_PLAN = Plan((20, 5, 2), (3, 1, 1), (20, 1, 2), (3, 1, 1), (3, 1, 1), 20)


# -- the two networks -----------------------------------------------------------------
def build_torch_mlp(sizes: Sequence[int]) -> torch.nn.Sequential:
    """``nn.Sequential(Linear, ReLU, Linear, ..., Linear)`` with every size given."""
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def build_lateinit_mlp(sizes: Sequence[int]) -> lnn.Sequential:
    """``Sequential(Dense(h, activation="relu"), ..., Dense(out))``, no input sizes."""
    net = lnn.Sequential()
    for i, units in enumerate(sizes[1:]):
        net.add(lnn.Dense(units, activation="relu" if i < len(sizes) - 2 else None))
    return net


def make_batch(case: MLPCase, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random input ``(batch, sizes[0])`` and class targets in ``[0, sizes[-1])``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(case.batch, case.sizes[0], generator=g)
    y = torch.randint(0, case.sizes[-1], (case.batch,), generator=g)
    return x, y


def train_step(
    net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    """One realistic training step: zero_grad, forward, loss, backward, optimizer step."""
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()


def first_call_torch(case: MLPCase, x: torch.Tensor, y: torch.Tensor) -> object:
    """Plain torch.nn from nothing: construct (allocate + initialize), then one step."""
    net = build_torch_mlp(case.sizes)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    train_step(net, opt, x, y)
    return net, opt


def first_call_lateinit(case: MLPCase, x: torch.Tensor, y: torch.Tensor) -> object:
    """lateinit from nothing: declare, ``initialize()``, optimizer before any shape is
    known, then the first step (infers shapes, creates and initializes parameters)."""
    net = build_lateinit_mlp(case.sizes)
    net.initialize()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    train_step(net, opt, x, y)
    return net, opt


def build_lateinit_mlp_sized(sizes: Sequence[int]) -> lnn.Sequential:
    """The lateinit MLP with every input size given (``in_units``): SHAPED from the start,
    so ``initialize()`` creates everything and the first pass has nothing to infer."""
    net = lnn.Sequential()
    for i, (n_in, units) in enumerate(itertools.pairwise(sizes)):
        act = "relu" if i < len(sizes) - 2 else None
        net.add(lnn.Dense(units, activation=act, in_units=n_in))
    return net


def _phased_first_call(
    build: Any, initialize: bool, x: torch.Tensor, y: torch.Tensor
) -> list[float]:
    """One first call from nothing, timed phase by phase (see ``PHASES``), in seconds."""
    clock = time.perf_counter
    t0 = clock()
    net = build()
    t1 = clock()
    if initialize:
        net.initialize()
    t2 = clock()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    t3 = clock()
    opt.zero_grad()
    out = net(x)
    t4 = clock()
    F.cross_entropy(out, y).backward()
    opt.step()
    t5 = clock()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]


def bench_phases(case: MLPCase, repeats: int) -> dict[str, list[float]]:
    """Where a first call's time goes: each phase's median (seconds, wall clock) for
    lateinit deferred, lateinit with every size given, and torch, interleaved."""
    x, y = make_batch(case)
    variants = {
        "lateinit": (lambda: build_lateinit_mlp(case.sizes), True),
        "lateinit, every size given": (lambda: build_lateinit_mlp_sized(case.sizes), True),
        "torch.nn": (lambda: build_torch_mlp(case.sizes), False),
    }
    samples: dict[str, list[list[float]]] = {k: [] for k in variants}
    for i in range(repeats + repeats // 10):
        for name, (build, init) in variants.items():
            phases = _phased_first_call(build, init, x, y)
            if i >= repeats // 10:  # the first tenth warms up
                samples[name].append(phases)
    return {
        name: [statistics.median(column) for column in zip(*rows, strict=True)]
        for name, rows in samples.items()
    }


def render_phases(phases: dict[str, list[float]], console: Console) -> None:
    table = Table(title="dispatch-bound first call, phase by phase (median wall time)")
    table.add_column("phase")
    for name in phases:
        table.add_column(name, justify="right")
    for i, phase in enumerate(PHASES):
        table.add_row(phase, *(fmt_time(v[i]) for v in phases.values()))
    table.add_row("total", *(fmt_time(sum(v)) for v in phases.values()), end_section=True)
    torch_total = sum(phases["torch.nn"])
    table.add_row("/ torch.nn", *(f"{sum(v) / torch_total:.3f}" for v in phases.values()))
    console.print(table)


def leftovers(net: torch.nn.Module) -> list[str]:
    """What of lateinit is still on the hot path of a READY network (should be empty):
    per-instance ``forward`` wrappers, parameters that are not plain
    ``torch.nn.Parameter``, module hooks."""
    found = []
    for name, module in net.named_modules():
        where = name or "<root>"
        if "forward" in module.__dict__:
            found.append(f"{where}: per-instance forward wrapper")
        hooks = (
            module._forward_hooks,
            module._forward_pre_hooks,
            module._backward_hooks,
            module._backward_pre_hooks,
        )
        if any(hooks):
            found.append(f"{where}: module hooks")
    for name, p in net.named_parameters():
        if type(p) is not torch.nn.Parameter:
            found.append(f"{name}: {type(p).__name__}, not a plain torch.nn.Parameter")
    return found


def ready_pair(case: MLPCase) -> tuple[tuple, tuple, torch.Tensor, torch.Tensor, list[str]]:
    """Both networks READY, with the same weights, and their optimizers.

    The lateinit one is made READY by a first training step (its optimizer built before
    it, as a user would); the torch one gets a copy of its weights. Returns
    ``((lnet, lopt), (tnet, topt), x, y, problems)``.
    """
    x, y = make_batch(case)
    lnet = build_lateinit_mlp(case.sizes)
    lopt = torch.optim.SGD(lnet.parameters(), lr=LR)
    train_step(lnet, lopt, x, y)
    tnet = build_torch_mlp(case.sizes)
    linears = [m for m in tnet if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for dense, linear in zip(lnet, linears, strict=True):
            linear.weight.copy_(dense.weight)
            linear.bias.copy_(dense.bias)
    topt = torch.optim.SGD(tnet.parameters(), lr=LR)
    problems = leftovers(lnet)
    with torch.no_grad():
        if not torch.allclose(lnet(x), tnet(x), rtol=1e-5, atol=1e-6):
            problems.append("outputs differ between the two networks")
    return (lnet, lopt), (tnet, topt), x, y, problems


# -- measurements ---------------------------------------------------------------------
def bench_steady(
    case: MLPCase, repeats: int, number: int, rounds: int, clock: str = "cpu"
) -> Comparison:
    """Steady-state training step of both READY networks, interleaved."""
    (lnet, lopt), (tnet, topt), x, y, problems = ready_pair(case)
    if problems:
        print(f"[{case.name}] WARNING, not comparing like with like: " + "; ".join(problems))
    samples = interleaved(
        {
            "lateinit": lambda: train_step(lnet, lopt, x, y),
            "torch": lambda: train_step(tnet, topt, x, y),
        },
        repeats,
        number=number,
        warmup=max(3, number),
    )
    return Comparison(
        "steady step",
        f"{case.name} ({case.label})",
        "lateinit",
        "torch",
        samples,
        STEADY_TARGET,
        rounds,
        clock,
    )


def bench_first_call(
    case: MLPCase,
    repeats: int,
    number: int,
    rounds: int,
    target: float | None,
    clock: str = "cpu",
) -> Comparison:
    """Construction + first training step from nothing, both ways, interleaved."""
    x, y = make_batch(case)
    samples = interleaved(
        {
            "lateinit": lambda: first_call_lateinit(case, x, y),
            "torch": lambda: first_call_torch(case, x, y),
        },
        repeats,
        number=number,
        warmup=1,
    )
    return Comparison(
        "first call",
        f"{case.name} ({case.label})",
        "lateinit",
        "torch",
        samples,
        float("inf") if target is None else target,
        rounds,
        clock,
    )


# -- report ---------------------------------------------------------------------------
def verdict(c: Comparison) -> str:
    if c.target == float("inf"):
        return "(no target)"
    return "met" if c.met else "MISSED"


def render(results: list[Comparison], console: Console) -> None:
    """Print the table, then one plain ``ratio ...`` line per measurement."""
    clock = results[0].clock if results else "cpu"
    other = "wall" if clock == "cpu" else "cpu"
    table = Table(title=f"lateinit / torch.nn, measured side by side ({clock} time)")
    columns = [
        ("measurement", "left", True),
        ("case (MLP sizes)", "left", True),
        ("lateinit", "right", True),
        ("torch", "right", True),
        ("ratio", "right", True),
        ("min-of-medians", "right", True),
        ("per round", "right", True),
        (f"{other}-clock", "right", True),
        ("target", "right", True),
        ("", "left", True),
    ]
    for col, justify, no_wrap in columns:
        table.add_column(col, justify=justify, no_wrap=no_wrap)  # type: ignore[arg-type]
    for c in results:
        rr = c.round_ratios
        v = verdict(c)
        style = {"met": "green", "MISSED": "bold red"}.get(v)
        table.add_row(
            c.name,
            c.detail,
            fmt_time(c.a_median),
            fmt_time(c.b_median),
            f"{c.ratio:.3f}",
            f"{c.ratio_min_of_medians:.3f}",
            f"{min(rr):.2f}-{max(rr):.2f} ({len(rr)})",
            f"{c.ratio_on(other):.3f}",
            "-" if c.target == float("inf") else f"<= {c.target:g}",
            f"[{style}]{v}[/]" if style else v,
        )
    console.print(table)
    console.print(
        f"lateinit, torch: median {clock} time per step (steady) or per construction + "
        f"first step (first call). ratio = median(lateinit) / median(torch), the verdict. "
        f"min of medians: the samples cut into rounds, each variant's quietest round. per "
        f"round: range of the per-round ratios (number of rounds), i.e. the noise. "
        f"{other}-clock: the ratio of medians on the {other} clock.",
        soft_wrap=False,
    )
    # Plain lines, one per measurement: easy to grep and to paste.
    for c in results:
        target = "no target" if c.target == float("inf") else f"target <= {c.target:g}"
        print(
            f"ratio {c.name} [{c.detail}]: {c.ratio:.3f} "
            f"(min of medians {c.ratio_min_of_medians:.3f}, {other} {c.ratio_on(other):.3f}; "
            f"lateinit {fmt_time(c.a_median)}, torch {fmt_time(c.b_median)}, {clock} time, "
            f"{len(c.a)} samples each) {target}: {verdict(c)}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    args = parser.parse_args(argv)

    console = start_run(args, "lateinit overhead benchmark")
    plan = (QUICK_PLAN if args.quick else FULL_PLAN).scaled(args.scale)
    compute = COMPUTE_QUICK if args.quick else COMPUTE
    init_bound = INIT_QUICK if args.quick else INIT

    clk = args.clock
    steps = [
        (DISPATCH, "steady-state step", lambda: bench_steady(DISPATCH, *plan.steady_dispatch, clk)),
        (compute, "steady-state step", lambda: bench_steady(compute, *plan.steady_compute, clk)),
        (
            compute,
            "first call",
            lambda: bench_first_call(compute, *plan.first_compute, FIRST_CALL_TARGET, clk),
        ),
        (
            init_bound,
            "first call",
            lambda: bench_first_call(init_bound, *plan.first_init, FIRST_CALL_TARGET, clk),
        ),
        (
            DISPATCH,
            "first call",
            lambda: bench_first_call(
                DISPATCH, *plan.first_dispatch, DISPATCH_FIRST_CALL_TARGET, clk
            ),
        ),
    ]
    results = []
    for case, what, run in steps:
        console.print(f"measuring {what}, {case.name} ({case.label}) ...")
        results.append(run())
    console.print(f"measuring first call phase by phase, {DISPATCH.name} ...")
    phases = bench_phases(DISPATCH, plan.phases)
    render(results, console)
    render_phases(phases, console)
    for name, values in phases.items():
        print(
            f"phases [{name}]: "
            + ", ".join(f"{p} {fmt_time(v)}" for p, v in zip(PHASES, values, strict=True))
            + f"; total {fmt_time(sum(values))}"
        )
    if args.json:
        data = Results("overhead", args.environment, command_line())
        other = "wall" if args.clock == "cpu" else "cpu"
        for c in results:
            detail: dict[str, Any] = {f"ratio_{other}": c.ratio_on(other)}
            if c.name == "first call" and c.detail.startswith(DISPATCH.name):
                detail["phases_s"] = {
                    name: dict(zip(PHASES, values, strict=True)) for name, values in phases.items()
                }
            data.add_comparison(c, peer_label="torch.nn", detail=detail)
        data.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
