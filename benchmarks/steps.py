"""Training-step time of real networks, lateinit vs plain ``torch.nn``, side by side.

The steady-state promise of docs/design.md ("Promises": once READY, a lateinit network
trains as fast as the same network of plain ``torch.nn`` modules) measured on two networks
a practitioner actually trains, rather than on an MLP (see ``overhead.py`` for that):

- **CNN**: ``lateinit.zoo.resnet18(num_classes=10)`` against a torchvision-style
  ResNet-18 written here in plain ``torch.nn`` (7x7/2 conv, BN, ReLU, 3x3/2 max pool,
  BasicBlocks [2, 2, 2, 2] with 1x1 conv + BN downsample, global average pool, Linear),
  on 64x64 images, batch 8.
- **LSTM**: ``Sequential(LSTM(128, layout="NTC"), Lambda(last step), Dense(10))`` against
  ``Sequential(torch.nn.LSTM(64, 128, batch_first=True), LastStep(), Linear(128, 10))``,
  sequences of 32 steps of 64 features, batch 16.

A training step is ``zero_grad``, forward, ``F.cross_entropy``, ``backward``,
``torch.optim.SGD.step`` (momentum 0.9), both networks in train mode. The lateinit network
is made READY by one real training step (its optimizer built before it, as a user would);
the script then asserts that nothing of lateinit is left on its hot path (no per-instance
``forward``, no hooks, every parameter exactly ``torch.nn.Parameter``, every buffer a plain
tensor), copies its weights into the torch twin, and checks that both give the same
output. The two steps are then timed interleaved (``_timing.interleaved``, ABBA order) on
the process CPU-time clock and the wall clock. Target: ratio lateinit/torch <= 1.03.

Run: ``python benchmarks/steps.py`` (about 2 minutes on 2 CPU cores), or ``--quick`` for
a smoke run of a few seconds (32x32 images, few samples: figures mean nothing);
``--json PATH`` also writes the rows as data (for ``benchmarks/plot.py``). The exit
status is 0 whether the target is met or not: this is a measurement, not a test; it is 1
if a check before timing fails (then the two networks are not comparable).
"""

from __future__ import annotations

import argparse
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
    start_run,
)
from lateinit import nn as lnn
from lateinit import zoo

TARGET = 1.03
LR = 1e-3
MOMENTUM = 0.9


# -- the torch.nn twins -----------------------------------------------------------------
class BasicBlock(torch.nn.Module):
    """torchvision's ResNet BasicBlock: two 3x3 conv + BN, identity or 1x1 conv + BN
    shortcut, ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c_out)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c_out)
        self.downsample = (
            torch.nn.Sequential(
                torch.nn.Conv2d(c_in, c_out, 1, stride, bias=False), torch.nn.BatchNorm2d(c_out)
            )
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TorchResNet18(torch.nn.Module):
    """torchvision's ``resnet18`` architecture in plain ``torch.nn`` (torchvision is not
    a dependency): 11,689,512 parameters at 1000 classes."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(64)
        self.relu = torch.nn.ReLU()
        self.maxpool = torch.nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for stage in range(4):
            c_out = 64 * 2**stage
            first = BasicBlock(c_in, c_out, 1 if stage == 0 else 2)
            setattr(
                self, f"layer{stage + 1}", torch.nn.Sequential(first, BasicBlock(c_out, c_out, 1))
            )
            c_in = c_out
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class LastStep(torch.nn.Module):
    """The output of the last time step of a batch-first ``torch.nn.LSTM``."""

    def forward(self, out_and_states: tuple[torch.Tensor, object]) -> torch.Tensor:
        return out_and_states[0][:, -1]


def last_step(x: torch.Tensor) -> torch.Tensor:
    """The output of the last time step of an ``(N, T, C)`` sequence."""
    return x[:, -1]


# -- the cases --------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One network built both ways, the batch it is fed, and how to sample it."""

    name: str
    detail: str
    build_lateinit: Callable[[], torch.nn.Module]
    build_torch: Callable[[], torch.nn.Module]
    make_batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    copy_weights: Callable[[torch.nn.Module, torch.nn.Module], None]
    repeats: int  # samples per variant
    number: int  # steps per sample
    rounds: int  # rounds for the min of medians


def copy_in_order(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy parameters, then the BatchNorm buffers (running statistics and
    ``num_batches_tracked``), pairing them in registration order (the two ResNets declare
    them in the same order); every pair must have the same shape."""
    with torch.no_grad():
        pairs = list(zip(src.parameters(), dst.parameters(), strict=True))
        pairs += list(zip(src.buffers(), dst.buffers(), strict=True))
        for s, d in pairs:
            if s.shape != d.shape:
                raise AssertionError(f"shapes differ: {tuple(s.shape)} vs {tuple(d.shape)}")
            d.copy_(s)


def copy_lstm(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """lateinit LSTM -> torch LSTM (the same names, ``weight_ih_l0``..., and gate order),
    Dense -> Linear."""
    lstm, _, dense = src
    tlstm, _, linear = dst
    tlstm.load_state_dict(lstm.state_dict())
    with torch.no_grad():
        linear.weight.copy_(dense.weight)
        linear.bias.copy_(dense.bias)


def cnn_case(resolution: int, repeats: int, number: int, rounds: int) -> Case:
    batch, classes = 8, 10

    def make_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(batch, 3, resolution, resolution, generator=g)
        return x, torch.randint(0, classes, (batch,), generator=g)

    return Case(
        "ResNet-18",
        f"batch {batch}, 3x{resolution}x{resolution}, {classes} classes",
        lambda: zoo.resnet18(num_classes=classes),
        lambda: TorchResNet18(num_classes=classes),
        make_batch,
        copy_in_order,
        repeats,
        number,
        rounds,
    )


def lstm_case(repeats: int, number: int, rounds: int) -> Case:
    batch, seq, features, hidden, classes = 16, 32, 64, 128, 10

    def make_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(batch, seq, features, generator=g)
        return x, torch.randint(0, classes, (batch,), generator=g)

    return Case(
        "LSTM",
        f"batch {batch}, seq {seq}, {features} -> {hidden} -> {classes}, NTC",
        lambda: lnn.Sequential(
            lnn.LSTM(hidden, layout="NTC"), lnn.Lambda(last_step), lnn.Dense(classes)
        ),
        lambda: torch.nn.Sequential(
            torch.nn.LSTM(features, hidden, batch_first=True),
            LastStep(),
            torch.nn.Linear(hidden, classes),
        ),
        make_batch,
        copy_lstm,
        repeats,
        number,
        rounds,
    )


# -- the step and the checks --------------------------------------------------------------
def train_step(
    net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    """One training step: zero_grad, forward, cross-entropy, backward, SGD step."""
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()


def make_sgd(net: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)


def assert_hot_path_clean(net: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    """Nothing of lateinit left on the hot path of a READY network, and the optimizer
    (built before the first batch) holds the network's parameters."""
    for name, module in net.named_modules():
        where = name or "<root>"
        assert "forward" not in module.__dict__, f"{where}: per-instance forward left"
        hooks = (
            module._forward_hooks,
            module._forward_pre_hooks,
            module._backward_hooks,
            module._backward_pre_hooks,
        )
        assert not any(hooks), f"{where}: module hooks"
    for name, p in net.named_parameters():
        assert type(p) is torch.nn.Parameter, f"{name}: {type(p).__name__}, not a Parameter"
    for name, b in net.named_buffers():
        assert type(b) is torch.Tensor, f"{name}: {type(b).__name__}, not a plain Tensor"
    held = [p for group in opt.param_groups for p in group["params"]]
    assert {id(p) for p in held} == {id(p) for p in net.parameters()}, "optimizer params"


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@dataclass
class Ready:
    lnet: torch.nn.Module
    lopt: torch.optim.Optimizer
    tnet: torch.nn.Module
    topt: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor


def make_ready(case: Case, console: Console) -> Ready:
    """Both networks READY, with the same weights, checked comparable."""
    g = torch.Generator().manual_seed(0)
    x, y = case.make_batch(g)
    lnet = case.build_lateinit()
    lopt = make_sgd(lnet)  # before any shape is known, as a user would
    train_step(lnet, lopt, x, y)  # the first batch: shapes inferred, parameters created
    assert_hot_path_clean(lnet, lopt)
    tnet = case.build_torch()
    case.copy_weights(lnet, tnet)
    topt = make_sgd(tnet)
    nl, nt = n_params(lnet), n_params(tnet)
    console.print(
        f"  {case.name}: parameters lateinit {nl:,}, torch {nt:,}; "
        f"hot path clean (no per-instance forward, no hooks, plain Parameters/buffers)"
    )
    assert nl == nt, f"{case.name}: parameter counts differ: {nl:,} vs {nt:,}"
    lnet.eval()
    tnet.eval()
    with torch.no_grad():
        a, b = lnet(x), tnet(x)
    lnet.train()
    tnet.train()
    err = (a - b).abs().max().item()
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), f"{case.name}: outputs differ by {err}"
    console.print(f"  {case.name}: same output on copied weights (max abs diff {err:.1e})")
    return Ready(lnet, lopt, tnet, topt, x, y)


def bench(case: Case, console: Console) -> dict[str, dict[str, list[float]]]:
    r = make_ready(case, console)
    return interleaved(
        {
            "lateinit": lambda: train_step(r.lnet, r.lopt, r.x, r.y),
            "torch": lambda: train_step(r.tnet, r.topt, r.x, r.y),
        },
        case.repeats,
        number=case.number,
        warmup=max(3, case.number),
    )


# -- report -------------------------------------------------------------------------------
def render(results: list[tuple[Comparison, int]], headline: str, console: Console) -> None:
    """The table (one row per case and clock), then one plain ``ratio ...`` line per row."""
    table = Table(title="training step, lateinit / torch.nn, READY, measured side by side")
    for col in (
        "network",
        "case",
        "clock",
        "lateinit",
        "torch",
        "ratio",
        "min-of-medians",
        "per round",
        "target",
        "",
    ):
        right = col not in ("network", "case", "clock", "")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for c, _ in results:
        rr = c.round_ratios
        verdict = "met" if c.met else "MISSED"
        style = "green" if c.met else "bold red"
        table.add_row(
            c.name,
            c.detail,
            c.clock + (" (headline)" if c.clock == headline else ""),
            fmt_time(c.a_median),
            fmt_time(c.b_median),
            f"{c.ratio:.3f}",
            f"{c.ratio_min_of_medians:.3f}",
            f"{min(rr):.2f}-{max(rr):.2f} ({len(rr)})",
            f"<= {c.target:g}",
            f"[{style}]{verdict}[/]",
        )
    console.print(table)
    console.print(
        "lateinit, torch: median time per training step. ratio = median(lateinit) / "
        "median(torch). min-of-medians: the samples cut into rounds, each variant's "
        "quietest round. per round: range of the per-round ratios (number of rounds), i.e. "
        f"the noise. The verdict that counts is the {headline}-clock ratio.",
        soft_wrap=False,
    )
    for c, number in results:
        print(
            f"ratio step [{c.name}: {c.detail}] {c.clock}: {c.ratio:.3f} "
            f"(min of medians {c.ratio_min_of_medians:.3f}; lateinit {fmt_time(c.a_median)}, "
            f"torch {fmt_time(c.b_median)}, {len(c.a)} samples of {number} step(s) each) "
            f"target <= {c.target:g}: {'met' if c.met else 'MISSED'}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    parser.add_argument(
        "--resolution", type=int, default=None, help="CNN input size (64; 32 with --quick)"
    )
    parser.add_argument(
        "--only", choices=("cnn", "lstm"), default=None, help="run one network only"
    )
    args = parser.parse_args(argv)

    console = start_run(args, "lateinit training-step benchmark")

    def n(samples: int) -> int:
        return max(2, round(samples * args.scale))

    if args.quick:
        cases = {"cnn": cnn_case(args.resolution or 32, n(3), 1, 1), "lstm": lstm_case(n(4), 2, 1)}
    else:
        cases = {
            "cnn": cnn_case(args.resolution or 64, n(150), 1, 6),
            "lstm": lstm_case(n(200), 10, 8),
        }
    if args.only:
        cases = {args.only: cases[args.only]}

    results: list[tuple[Comparison, int]] = []
    try:
        for case in cases.values():
            console.print(f"measuring {case.name} ({case.detail}) ...")
            samples = bench(case, console)
            for clock in clocks_from(args.clock):
                comparison = Comparison(
                    case.name, case.detail, "lateinit", "torch", samples, TARGET, case.rounds, clock
                )
                results.append((comparison, case.number))
    except AssertionError as err:
        console.print(f"[bold red]CHECK FAILED, the networks are not comparable:[/] {err}")
        return 1
    render(results, args.clock, console)
    if args.json:
        data = Results("steps", args.environment, command_line())
        for c, number in results:
            data.add_comparison(
                c,
                measurement="training step",
                case=f"{c.name} ({c.detail})",
                peer_label="torch.nn",
                headline_clock=args.clock,
                detail={"steps_per_sample": number},
            )
        data.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
