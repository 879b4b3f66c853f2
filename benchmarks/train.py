"""Training with ``lateinit.Trainer`` vs a hand-written plain-torch loop, side by side.

What a Gluon-style user runs, against what a torch user writes:

- **trainer**: the lateinit network (``zoo.lenet()`` / ``zoo.resnet18(num_classes=10)``,
  no input sizes) and a ``Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-3,
  "momentum": 0.9})`` built before any shape is known; a step is Gluon's loop: forward,
  ``F.cross_entropy(..., reduction="sum")``, ``backward()``, ``trainer.step(batch_size)``
  (gradients divided by the batch size, SGD, then the gradients cleared: Gluon's
  ``grad_req="write"``, so no ``zero_grad``).
- **torch**: the same architecture in plain ``torch.nn`` (the ResNet-18 twin of
  ``steps.py``; a LeNet twin written here) and ``torch.optim.SGD(lr=1e-3, momentum=0.9)``;
  a step is ``opt.zero_grad()``, forward, mean-reduced ``F.cross_entropy``,
  ``backward()``, ``opt.step()``.
- **lateinit+SGD** (reference for the Trainer's own cost): the lateinit network with a
  plain ``torch.optim.SGD`` and a mean-reduced loss.

Cases: LeNet (d2l's, sigmoid, average pooling) on batch 64 of 1x28x28; ResNet-18 on
batch 8 of 3x64x64; 10 classes. Before timing, the script makes the lateinit network
READY with one real Trainer step, checks that nothing of lateinit is left on its hot path,
copies its weights into the twin, checks that both give the same output, and that one
Trainer step and one plain-torch step from the same weights give the same weights
(summed loss / batch size == mean loss). The variants are then timed interleaved
(``_timing.interleaved``, ABBA order) on the process CPU-time clock and the wall clock.
Target: ratio trainer/torch <= 1.03.

Run: ``python benchmarks/train.py`` (about 3 minutes on 2 CPU cores), or ``--quick`` for a
smoke run of a few seconds (figures mean nothing); ``--json PATH`` also writes the rows as
data (for ``benchmarks/plot.py``). The exit status is 0 whether the target
is met or not; 1 if a check before timing fails.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from _timing import (
    Comparison,
    Results,
    add_run_options,
    clocks_from,
    command_line,
    fmt_time,
    interleaved,
    load_average,
    start_run,
)
from lateinit import Trainer, zoo
from steps import TorchResNet18, assert_hot_path_clean, copy_in_order, n_params

TARGET = 1.03
LR = 1e-3
MOMENTUM = 0.9
CLASSES = 10


class TorchLeNet(torch.nn.Sequential):
    """``zoo.lenet()`` in plain ``torch.nn`` (61,706 parameters on 1x28x28)."""

    def __init__(self, num_classes: int = CLASSES) -> None:
        super().__init__(
            torch.nn.Conv2d(1, 6, 5, padding=2),
            torch.nn.Sigmoid(),
            torch.nn.AvgPool2d(2, 2),
            torch.nn.Conv2d(6, 16, 5),
            torch.nn.Sigmoid(),
            torch.nn.AvgPool2d(2, 2),
            torch.nn.Flatten(),
            torch.nn.Linear(16 * 5 * 5, 120),
            torch.nn.Sigmoid(),
            torch.nn.Linear(120, 84),
            torch.nn.Sigmoid(),
            torch.nn.Linear(84, num_classes),
        )


@dataclass(frozen=True)
class Case:
    name: str
    detail: str
    build_lateinit: Callable[[], torch.nn.Module]
    build_torch: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]  # the batch's shape
    repeats: int  # samples per variant
    number: int  # steps per sample
    rounds: int  # rounds for the min of medians


def lenet_case(repeats: int, number: int, rounds: int) -> Case:
    return Case(
        "LeNet",
        "batch 64, 1x28x28",
        lambda: zoo.lenet(num_classes=CLASSES),
        TorchLeNet,
        (64, 1, 28, 28),
        repeats,
        number,
        rounds,
    )


def resnet_case(resolution: int, repeats: int, number: int, rounds: int) -> Case:
    return Case(
        "ResNet-18",
        f"batch 8, 3x{resolution}x{resolution}",
        lambda: zoo.resnet18(num_classes=CLASSES),
        lambda: TorchResNet18(num_classes=CLASSES),
        (8, 3, resolution, resolution),
        repeats,
        number,
        rounds,
    )


# -- the steps -----------------------------------------------------------------------------
def trainer_step(net: torch.nn.Module, trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> None:
    """Gluon's loop: summed loss, ``trainer.step(batch_size)``, no ``zero_grad`` (the step
    clears the gradients it used)."""
    F.cross_entropy(net(x), y, reduction="sum").backward()
    trainer.step(x.shape[0])


def torch_step(
    net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    """Plain torch: mean loss, ``opt.step()``."""
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()


def make_trainer(net: torch.nn.Module) -> Trainer:
    return Trainer(net.collect_params(), "sgd", {"learning_rate": LR, "momentum": MOMENTUM})


def make_sgd(net: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)


@dataclass
class Ready:
    lnet: torch.nn.Module
    trainer: Trainer
    lopt: torch.optim.Optimizer
    tnet: torch.nn.Module
    topt: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


def make_ready(case: Case, console: Console) -> Ready:
    """The lateinit network READY (through its Trainer) and its twin with the same weights;
    checked comparable."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*case.input_shape, generator=g)
    y = torch.randint(0, CLASSES, (case.input_shape[0],), generator=g)
    lnet = case.build_lateinit()
    trainer = make_trainer(lnet)  # before any shape is known, as a user would
    trainer_step(lnet, trainer, x, y)  # the first batch: shapes, parameters, then the step
    assert not trainer.pending, f"{case.name}: parameters still pending: {trainer.pending}"
    assert trainer.optimizer is not None
    assert_hot_path_clean(lnet, trainer.optimizer)
    tnet = case.build_torch()
    nl, nt = n_params(lnet), n_params(tnet)
    assert nl == nt, f"{case.name}: parameter counts differ: {nl:,} vs {nt:,}"
    console.print(
        f"  {case.name}: parameters lateinit {nl:,}, torch {nt:,}; hot path clean (no "
        f"per-instance forward, no hooks, plain Parameters/buffers)"
    )
    # same output on copied weights
    copy_in_order(lnet, tnet)
    lnet.eval()
    tnet.eval()
    with torch.no_grad():
        a, b = lnet(x), tnet(x)
    lnet.train()
    tnet.train()
    err = (a - b).abs().max().item()
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), f"{case.name}: outputs differ by {err}"
    # one Trainer step (summed loss / batch) == one plain-torch step (mean loss)
    topt = make_sgd(tnet)
    for p in lnet.parameters():  # no momentum yet on either side
        trainer.optimizer.state.pop(p, None)
    before = [p.detach().clone() for p in lnet.parameters()]
    trainer_step(lnet, trainer, x, y)
    torch_step(tnet, topt, x, y)
    diff = _max_diff(lnet, tnet)
    pairs = zip(lnet.parameters(), before, strict=True)
    moved = max((p.detach() - b).abs().max().item() for p, b in pairs)
    assert moved > 0, f"{case.name}: the Trainer step changed nothing"
    assert diff <= 1e-4 * moved + 1e-7, f"{case.name}: one step differs by {diff} ({moved=})"
    console.print(
        f"  {case.name}: same output on copied weights (max abs diff {err:.1e}); same "
        f"weights after one Trainer step and one torch step (max abs diff {diff:.1e}, "
        f"step size {moved:.1e})"
    )
    return Ready(lnet, trainer, make_sgd(lnet), tnet, topt, x, y)


def bench(case: Case, console: Console) -> dict[str, dict[str, list[float]]]:
    r = make_ready(case, console)
    return interleaved(
        {
            "trainer": lambda: trainer_step(r.lnet, r.trainer, r.x, r.y),
            "torch": lambda: torch_step(r.tnet, r.topt, r.x, r.y),
            "lateinit+SGD": lambda: torch_step(r.lnet, r.lopt, r.x, r.y),
        },
        case.repeats,
        number=case.number,
        warmup=max(3, case.number),
    )


# -- report ------------------------------------------------------------------------------
@dataclass
class Row:
    comparison: Comparison
    number: int
    target: float | None  # None: reported only


def render(rows: list[Row], headline: str, console: Console) -> None:
    table = Table(title="training step with lateinit.Trainer vs plain torch, side by side")
    cols = ("network", "case", "vs", "clock", "trainer", "reference", "ratio")
    cols += ("min-of-medians", "per round", "target", "")
    for col in cols:
        right = col not in ("network", "case", "vs", "clock", "")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        c = row.comparison
        rr = c.round_ratios
        if row.target is None:
            verdict, style = "(reported)", "dim"
        else:
            verdict = "met" if c.ratio <= row.target else "MISSED"
            style = "green" if verdict == "met" else "bold red"
        table.add_row(
            c.name,
            c.detail,
            c.b_label,
            c.clock + (" (headline)" if c.clock == headline else ""),
            fmt_time(c.a_median),
            fmt_time(c.b_median),
            f"{c.ratio:.3f}",
            f"{c.ratio_min_of_medians:.3f}",
            f"{min(rr):.2f}-{max(rr):.2f} ({len(rr)})",
            "-" if row.target is None else f"<= {row.target:g}",
            f"[{style}]{verdict}[/]",
        )
    console.print(table)
    console.print(
        "trainer, reference: median time per training step. ratio = median(trainer) / "
        "median(reference); vs torch = a plain torch.nn twin with torch.optim.SGD (the "
        "target), vs lateinit+SGD = the same lateinit network with torch.optim.SGD (the "
        "Trainer's own cost). min-of-medians: each variant's quietest round. per round: "
        f"range of the per-round ratios (number of rounds). The verdict that counts is the "
        f"{headline}-clock ratio.",
        soft_wrap=False,
    )
    for row in rows:
        c = row.comparison
        kind = "train" if row.target is not None else "trainer-overhead"
        verdict = (
            f"target <= {row.target:g}: {'met' if c.ratio <= row.target else 'MISSED'}"
            if row.target is not None
            else "(reported)"
        )
        print(
            f"ratio {kind} [{c.name}: {c.detail}] {c.clock}: {c.ratio:.3f} "
            f"(min of medians {c.ratio_min_of_medians:.3f}; trainer {fmt_time(c.a_median)}, "
            f"{c.b_label} {fmt_time(c.b_median)}, {len(c.a)} samples of {row.number} "
            f"step(s) each) {verdict}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    parser.add_argument(
        "--only", choices=("lenet", "resnet"), default=None, help="run one network only"
    )
    args = parser.parse_args(argv)

    console = start_run(args, "lateinit Trainer training benchmark")

    def n(samples: int) -> int:
        return max(2, round(samples * args.scale))

    if args.quick:
        cases = {"lenet": lenet_case(n(3), 2, 1), "resnet": resnet_case(32, n(2), 1, 1)}
    else:
        cases = {"lenet": lenet_case(n(100), 5, 8), "resnet": resnet_case(64, n(120), 1, 6)}
    if args.only:
        cases = {args.only: cases[args.only]}

    rows: list[Row] = []
    try:
        for case in cases.values():
            console.print(f"measuring {case.name} ({case.detail}) ...")
            samples = bench(case, console)
            clocks = clocks_from(args.clock)
            for reference, target in (("torch", TARGET), ("lateinit+SGD", None)):
                for clock in clocks:
                    comparison = Comparison(
                        case.name,
                        case.detail,
                        "trainer",
                        reference,
                        samples,
                        TARGET,
                        case.rounds,
                        clock,
                    )
                    rows.append(Row(comparison, case.number, target))
    except AssertionError as err:
        console.print(f"[bold red]CHECK FAILED, the variants are not comparable:[/] {err}")
        return 1
    render(rows, args.clock, console)
    console.print(
        "load average at the end " + load_average(),
        soft_wrap=False,
    )
    if args.json:
        data = Results("train", args.environment, command_line())
        peers = {
            "torch": "torch.nn + torch.optim.SGD",
            "lateinit+SGD": "lateinit + torch.optim.SGD",
        }
        for row in rows:
            c = row.comparison
            data.add_comparison(
                c,
                measurement="training step" if row.target is not None else "Trainer overhead",
                case=f"{c.name} ({c.detail})",
                lateinit_label="lateinit.Trainer",
                peer_label=peers[c.b_label],
                target=math.inf if row.target is None else row.target,
                headline_clock=args.clock,
                detail={"steps_per_sample": row.number},
            )
        data.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
