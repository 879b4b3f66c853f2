"""Data-free shape inference: lateinit ``infer_shape`` against torch's meta-device recipes.

For a Llama-style 7B configuration (32 layers, dim 4096, 32 heads, hidden 11008, vocab
32000) and a 70B one (80 layers, dim 8192, 64 heads, 8 key/value heads, hidden 28672,
vocab 32000), the time and memory it takes to learn every parameter's shape without
data, three ways:

(a) **lateinit**: ``zoo.llama(...)`` (no input sizes), then
    ``net.infer_shape(lateinit.Spec((None, 16), torch.long))``;
(b) **torch.nn.Lazy\\***: the same architecture with ``torch.nn.LazyLinear`` for every
    projection (``Embedding`` and ``RMSNorm`` are plain torch modules: torch has no lazy
    versions; rotary positions and causal SDPA as in ``zoo/llama.py``), built under
    ``with torch.device('meta')`` and dry-run on a meta batch of token ids ``(1, 16)``;
(c) **torch.nn**: the same with ``torch.nn.Linear`` and every size given, built under
    ``torch.device('meta')`` (no pass needed: the sizes are written in the code). A
    fourth, reference variant adds one meta forward to it: the cost of an unmemoized
    meta pass over the whole network.

Wall time: the variants alternate sample by sample (``_timing.interleaved``), each
sample builds a fresh network; medians are reported (process CPU time beside). Every
variant is run once, untimed, before sampling: the first meta op of a process that goes
through a Python reference implementation (``rms_norm`` in lateinit's pass, the
``Embedding``'s ``normal_`` in a torch construction under ``torch.device('meta')``)
imports ``torch._dynamo`` (~1.2 s, ~80 MB), so the first run in a process is much
slower. That first, *cold* run is measured too, in fresh subprocesses, with the peak RSS
growth (``/proc/self/status`` ``VmHWM``, reset through ``/proc/self/clear_refs``) of
construction + shape pass, both cold and after a tiny warm-up in the same process
(*warm*: the network's own memory).

Targets (docs/design.md, Promises): the 7B ``infer_shape`` under 100 ms and under 50 MB
of RSS growth; at
least 5x faster than the ``torch.nn.Lazy*`` meta dry run; time linear in the number of
layers (the 7B configuration at 8/16/32/64 layers: least-squares slope per layer, and the
marginal per-layer cost 32->64 over 8->16, 1.0 when linear, 4.0 when quadratic; target
<= 1.5); and (issue 11) the 7B construction + ``infer_shape`` at most 1.5x plain
``torch.nn`` construction on meta with every size given (the ratio of the medians of
whole interleaved samples, (a) over (c)). The script also checks the parameter counts
(6,738,415,616 for the 7B) and that ``infer_shape`` allocated nothing (every parameter
still deferred, SHAPED).

Run: ``python benchmarks/infer.py`` (3-5 minutes on 2 shared cores), ``--quick`` for a
smoke run on tiny configurations (figures meaningless), ``--profile`` to print where
lateinit's time goes (also printed when a target is missed). The exit status is 0
whether targets are met or not: this is a measurement, not a test. ``--json PATH`` also
writes the comparisons with torch (Lazy*, ``torch.nn`` on meta) as data (for
``benchmarks/plot.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

import lateinit
from _timing import (
    Comparison,
    Results,
    add_json_option,
    command_line,
    environment_facts,
    fmt_time,
    format_environment,
    interleaved,
    load_average,
)
from lateinit import zoo
from lateinit.zoo.llama import rotary

LLAMA2_7B_PARAMS = 6_738_415_616
SEQ = 16
DRY_BATCH = 1  # the torch dry runs' batch (lateinit's is None: any size)
TIME_TARGET = 0.100  # s, 7B infer_shape
RSS_TARGET = 50e6  # bytes, 7B
SPEEDUP_TARGET = 5.0  # lateinit at least 5x faster than the Lazy* dry run
LINEAR_TARGET = 1.5  # marginal per-layer cost 32->64 over 8->16 (1 linear, 4 quadratic)
VS_PLAIN_TARGET = 1.5  # 7B construction + infer_shape over torch.nn construction on meta


def tokens_spec() -> lateinit.Spec:
    return lateinit.Spec((None, SEQ), torch.long)


# -- configurations ---------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """A Llama-style decoder's shape (``zoo.llama``'s arguments)."""

    name: str
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    hidden_dim: int
    n_kv_heads: int | None = None

    @property
    def label(self) -> str:
        kv = f", {self.n_kv_heads} kv heads" if self.n_kv_heads else ""
        return (
            f"{self.n_layers} layers, dim {self.dim}, {self.n_heads} heads{kv}, "
            f"hidden {self.hidden_dim}, vocab {self.vocab_size}"
        )

    @property
    def expected_params(self) -> int:
        """Embedding + output + final norm + per layer (q, k, v, o, w1, w2, w3, 2 norms)."""
        kv_dim = (self.n_kv_heads or self.n_heads) * (self.dim // self.n_heads)
        per_layer = 2 * self.dim * self.dim + 2 * self.dim * kv_dim
        per_layer += 3 * self.dim * self.hidden_dim + 2 * self.dim
        return 2 * self.vocab_size * self.dim + self.dim + self.n_layers * per_layer

    def with_layers(self, n: int) -> Config:
        return replace(self, n_layers=n)


CONFIGS = {
    "7B": Config("7B", 32000, 4096, 32, 32, 11008),
    "70B": Config("70B", 32000, 8192, 80, 64, 28672, 8),
}
QUICK_CONFIGS = {
    "7B": Config("tiny-7B", 512, 64, 4, 4, 172),
    "70B": Config("tiny-70B", 512, 128, 8, 8, 344, 2),
}
SCALE_LAYERS = (8, 16, 32, 64)
QUICK_SCALE_LAYERS = (1, 2, 4, 8)


# -- the torch twins (b) and (c) ----------------------------------------------------------
Linear = Callable[[int, int], torch.nn.Module]


def lazy_linear(n_in: int, n_out: int) -> torch.nn.Module:
    return torch.nn.LazyLinear(n_out, bias=False)


def plain_linear(n_in: int, n_out: int) -> torch.nn.Module:
    return torch.nn.Linear(n_in, n_out, bias=False)


class TorchAttention(torch.nn.Module):
    """``zoo.llama.Attention`` in plain torch (same ops: rotary, GQA repeat, causal SDPA)."""

    def __init__(self, linear: Linear, dim: int, n_heads: int, n_kv_heads: int) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        self.wq = linear(dim, n_heads * self.head_dim)
        self.wk = linear(dim, n_kv_heads * self.head_dim)
        self.wv = linear(dim, n_kv_heads * self.head_dim)
        self.wo = linear(n_heads * self.head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape

        def heads(t: torch.Tensor, n: int) -> torch.Tensor:
            return t.view(batch, seq, n, self.head_dim).transpose(1, 2)

        q = rotary(heads(self.wq(x), self.n_heads))
        k = rotary(heads(self.wk(x), self.n_kv_heads))
        v = heads(self.wv(x), self.n_kv_heads)
        if self.n_kv_heads != self.n_heads:
            repeat = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(batch, seq, -1))


class TorchFeedForward(torch.nn.Module):
    def __init__(self, linear: Linear, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = linear(dim, hidden_dim)
        self.w3 = linear(dim, hidden_dim)
        self.w2 = linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TorchDecoderLayer(torch.nn.Module):
    def __init__(
        self, linear: Linear, dim: int, n_heads: int, n_kv_heads: int, hidden_dim: int
    ) -> None:
        super().__init__()
        self.attention_norm = torch.nn.RMSNorm(dim, eps=1e-5)
        self.attention = TorchAttention(linear, dim, n_heads, n_kv_heads)
        self.ffn_norm = torch.nn.RMSNorm(dim, eps=1e-5)
        self.feed_forward = TorchFeedForward(linear, dim, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


class TorchLlama(torch.nn.Module):
    """``zoo.llama.Llama`` (rotary positions) in plain torch, with ``linear`` for every
    projection: ``lazy_linear`` for (b), ``plain_linear`` for (c)."""

    def __init__(self, cfg: Config, linear: Linear) -> None:
        super().__init__()
        kv = cfg.n_kv_heads or cfg.n_heads
        self.tok_embeddings = torch.nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = torch.nn.Sequential(
            *(
                TorchDecoderLayer(linear, cfg.dim, cfg.n_heads, kv, cfg.hidden_dim)
                for _ in range(cfg.n_layers)
            )
        )
        self.norm = torch.nn.RMSNorm(cfg.dim, eps=1e-5)
        self.output = linear(cfg.dim, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.output(self.norm(self.layers(self.tok_embeddings(tokens))))


# -- the variants ------------------------------------------------------------------------
def build_lateinit(cfg: Config) -> torch.nn.Module:
    return zoo.llama(
        cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.hidden_dim, cfg.n_kv_heads
    )


def infer_lateinit(net: torch.nn.Module) -> Any:
    return net.infer_shape(tokens_spec())


def build_lazy(cfg: Config) -> torch.nn.Module:
    with torch.device("meta"):
        return TorchLlama(cfg, lazy_linear)


def build_plain(cfg: Config) -> torch.nn.Module:
    with torch.device("meta"):
        return TorchLlama(cfg, plain_linear)


def meta_forward(net: torch.nn.Module) -> Any:
    with torch.no_grad():
        return net(torch.zeros((DRY_BATCH, SEQ), dtype=torch.long, device="meta"))


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    how: str
    build: Callable[[Config], torch.nn.Module]
    shape_pass: Callable[[torch.nn.Module], Any] | None
    pass_name: str


VARIANTS = {
    "lateinit": Variant(
        "lateinit",
        "(a) lateinit",
        "zoo.llama() + infer_shape(Spec((None, 16), long))",
        build_lateinit,
        infer_lateinit,
        "infer_shape",
    ),
    "lazy": Variant(
        "lazy",
        "(b) torch Lazy*",
        "LazyLinear on meta + meta dry run (1, 16)",
        build_lazy,
        meta_forward,
        "dry run",
    ),
    "plain": Variant(
        "plain",
        "(c) torch.nn",
        "nn.Linear(in, out) on meta (sizes given)",
        build_plain,
        None,
        "-",
    ),
    "plain+fwd": Variant(
        "plain+fwd",
        "(ref) (c) + meta fwd",
        "(c) + one meta forward (1, 16): an unmemoized pass",
        build_plain,
        meta_forward,
        "meta forward",
    ),
}
FRESH_VARIANTS = ("lateinit", "lazy", "plain")
PEER_LABELS = {  # the torch variants as peers of lateinit in the JSON rows
    "lazy": "torch.nn.Lazy* on meta + dry run",
    "plain": "torch.nn on meta, every size given",
}


@dataclass
class Phases:
    """Per-sample phase times of one variant (seconds), on both clocks."""

    construct_wall: list[float] = field(default_factory=list)
    construct_cpu: list[float] = field(default_factory=list)
    pass_wall: list[float] = field(default_factory=list)
    pass_cpu: list[float] = field(default_factory=list)

    def median(self, what: str, clock: str) -> float:
        if what == "total":
            a, b = getattr(self, f"construct_{clock}"), getattr(self, f"pass_{clock}")
            return statistics.median(x + y for x, y in zip(a, b, strict=True))
        return statistics.median(getattr(self, f"{what}_{clock}"))


def run_once(variant: Variant, cfg: Config, phases: Phases | None = None) -> Any:
    """Build a fresh network and run its shape pass; record both phases. Returns what
    must stay alive until the clocks stop (the network and its output)."""
    w0, c0 = time.perf_counter(), time.process_time()
    net = variant.build(cfg)
    w1, c1 = time.perf_counter(), time.process_time()
    out = variant.shape_pass(net) if variant.shape_pass is not None else None
    w2, c2 = time.perf_counter(), time.process_time()
    if phases is not None:
        phases.construct_wall.append(w1 - w0)
        phases.construct_cpu.append(c1 - c0)
        phases.pass_wall.append(w2 - w1)
        phases.pass_cpu.append(c2 - c1)
    return net, out


# -- checks ----------------------------------------------------------------------------
def count_params(net: torch.nn.Module) -> int:
    """Parameters (each once), by shape: works on SHAPED lateinit parameters and on meta
    tensors alike, allocates nothing."""
    return sum(math.prod(p.shape) for p in net.parameters())


def check_config(cfg: Config, full_7b: bool) -> list[tuple[bool, str]]:
    """Build the config all ways and compare parameter counts, output shapes, and that
    lateinit's ``infer_shape`` left every parameter deferred and SHAPED."""
    results: list[tuple[bool, str]] = []
    net, spec = run_once(VARIANTS["lateinit"], cfg)
    n_lateinit = count_params(net)
    params = list(net.parameters())
    shaped = all(lateinit.is_deferred(p) and p.is_shaped for p in params)
    results.append(
        (
            shaped,
            f"[{cfg.name}] after infer_shape all {len(params)} lateinit parameters are "
            "SHAPED (deferred, no storage)",
        )
    )
    want_spec = lateinit.Spec((None, SEQ, cfg.vocab_size), torch.float32)
    results.append((spec == want_spec, f"[{cfg.name}] infer_shape returned {spec}"))
    helper = getattr(lateinit, "count_params", None)
    if helper is not None:
        n_helper = helper(net)
        results.append(
            (
                n_helper == n_lateinit,
                f"[{cfg.name}] lateinit.count_params {n_helper:,} == sum of shapes",
            )
        )
    lazy, lazy_out = run_once(VARIANTS["lazy"], cfg)
    plain = VARIANTS["plain"].build(cfg)
    n_lazy, n_plain = count_params(lazy), count_params(plain)
    results.append(
        (
            n_lateinit == n_lazy == n_plain == cfg.expected_params,
            f"[{cfg.name}] parameters lateinit {n_lateinit:,}, torch.nn.Lazy* {n_lazy:,}, "
            f"torch.nn {n_plain:,}, formula {cfg.expected_params:,}",
        )
    )
    results.append(
        (
            tuple(lazy_out.shape) == (DRY_BATCH, SEQ, cfg.vocab_size),
            f"[{cfg.name}] Lazy* dry run output {tuple(lazy_out.shape)}",
        )
    )
    if full_7b:
        results.append(
            (
                n_lateinit == LLAMA2_7B_PARAMS,
                f"[7B] parameter count after infer_shape {n_lateinit:,} == "
                f"{LLAMA2_7B_PARAMS:,} (Llama-2-7B)",
            )
        )
    return results


# -- fresh-process runs (cold first run, peak RSS) ----------------------------------------
def _status_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(variant_key: str, config_key: str, mode: str, quick: bool) -> int:
    """One fresh-process run: print a JSON line with the times and peak RSS growth of
    construction and of the shape pass. ``mode`` is ``cold`` (the first meta work in this
    process) or ``warm`` (after the same variant on the tiny configuration)."""
    torch.set_num_threads(1)
    variant = VARIANTS[variant_key]
    cfg = (QUICK_CONFIGS if quick else CONFIGS)[config_key]
    if mode == "warm":
        keep = run_once(variant, QUICK_CONFIGS[config_key])
        del keep
    gc.collect()
    reset = _reset_peak()
    base = _status_kb()
    w0, c0 = time.perf_counter(), time.process_time()
    net = variant.build(cfg)
    w1, c1 = time.perf_counter(), time.process_time()
    after_build = _status_kb()
    reset2 = _reset_peak()
    pass_base = _status_kb()
    out = variant.shape_pass(net) if variant.shape_pass is not None else None
    w2, c2 = time.perf_counter(), time.process_time()
    after_pass = _status_kb()
    kib = 1024
    peak_build = after_build["VmHWM"] - base["VmRSS"]
    peak_pass = after_pass["VmHWM"] - (pass_base["VmRSS"] if reset2 else base["VmRSS"])
    peak_total = max(after_build["VmHWM"], after_pass["VmHWM"]) - base["VmRSS"]
    print(
        json.dumps(
            {
                "construct_s": w1 - w0,
                "pass_s": w2 - w1,
                "construct_cpu_s": c1 - c0,
                "pass_cpu_s": c2 - c1,
                "rss_base_b": base["VmRSS"] * kib,
                "growth_construct_b": peak_build * kib,
                "growth_pass_b": peak_pass * kib,
                "growth_total_b": peak_total * kib,
                "hwm_reset": reset and reset2,
                "params": count_params(net),
                "out": str(getattr(out, "shape", out)),
            }
        )
    )
    return 0


@dataclass
class Fresh:
    """Fresh-process results of one (config, variant, mode): one dict per process."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)

    def total(self) -> float:
        return statistics.median(r["construct_s"] + r["pass_s"] for r in self.runs)


def run_fresh(
    plan: list[tuple[str, str, str]], repeats: dict[str, int], quick: bool, console: Console
) -> dict[tuple[str, str, str], Fresh]:
    """Run each (config, variant, mode) of ``plan`` in fresh subprocesses, interleaved
    (repetition by repetition)."""
    results = {key: Fresh() for key in plan}
    script = os.path.abspath(__file__)
    for rep in range(max(repeats.values())):
        for config_key, variant_key, mode in plan:
            if rep >= repeats[config_key]:
                continue
            cmd = [sys.executable, script, "--child", variant_key, config_key, mode]
            proc = subprocess.run(
                cmd + (["--quick"] if quick else []),
                capture_output=True,
                text=True,
                timeout=600,
            )
            fresh = results[(config_key, variant_key, mode)]
            try:
                fresh.runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            except (IndexError, json.JSONDecodeError):
                msg = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                fresh.errors.append(f"exit {proc.returncode}: {msg}")
                console.print(f"WARNING fresh run {config_key} {variant_key} {mode}: {msg}")
    return results


# -- in-process measurements --------------------------------------------------------------
def bench_variants(
    cfg: Config, keys: Sequence[str], repeats: int
) -> tuple[dict[str, Phases], dict[str, dict[str, list[float]]]]:
    """All variants on fresh networks, interleaved sample by sample."""
    phases = {k: Phases() for k in keys}
    fns = {k: (lambda k=k: run_once(VARIANTS[k], cfg, phases[k])) for k in keys}
    samples = interleaved(fns, repeats, warmup=1)
    for p in phases.values():  # drop the warm-up call (recorded first)
        for series in (p.construct_wall, p.construct_cpu, p.pass_wall, p.pass_cpu):
            del series[0]
    return phases, samples


def bench_scaling(cfg: Config, layers: Sequence[int], repeats: int) -> dict[int, Phases]:
    """lateinit construction + infer_shape at several depths, interleaved."""
    phases = {n: Phases() for n in layers}
    variant = VARIANTS["lateinit"]
    fns = {str(n): (lambda n=n: run_once(variant, cfg.with_layers(n), phases[n])) for n in layers}
    interleaved(fns, repeats, warmup=1)
    for p in phases.values():
        for series in (p.construct_wall, p.construct_cpu, p.pass_wall, p.pass_cpu):
            del series[0]
    return phases


@dataclass
class Linearity:
    what: str
    layers: tuple[int, ...]
    medians: tuple[float, ...]

    @property
    def slope(self) -> float:
        """Least-squares seconds per layer."""
        xs, ys = self.layers, self.medians
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )

    @property
    def intercept(self) -> float:
        return statistics.fmean(self.medians) - self.slope * statistics.fmean(self.layers)

    @property
    def marginal_ratio(self) -> float:
        """Per-layer cost between the two deepest over that between the two shallowest
        depths: 1 when linear, (n3 + n4) / (n1 + n2) (4 for 8/16/32/64) when quadratic."""
        (n1, n2, *_, n3, n4), (t1, t2, *_, t3, t4) = self.layers, self.medians
        low = (t2 - t1) / (n2 - n1)
        return math.inf if low <= 0 else ((t4 - t3) / (n4 - n3)) / low

    @property
    def end_ratio(self) -> float:
        return self.medians[-1] / self.medians[0]


def profile_lateinit(cfg: Config, console: Console, runs: int = 5, top: int = 14) -> None:
    """cProfile lateinit's construction and ``infer_shape`` (warm, fresh networks) and
    print where the time goes: own time (tottime) and cumulative, as shares."""
    variant = VARIANTS["lateinit"]
    run_once(variant, cfg)  # warm
    nets = []
    prof_build = cProfile.Profile()
    for _ in range(runs):
        prof_build.enable()
        net = variant.build(cfg)
        prof_build.disable()
        nets.append(net)
    prof_infer = cProfile.Profile()
    for net in nets:
        prof_infer.enable()
        infer_lateinit(net)
        prof_infer.disable()
    for what, prof in (("construction", prof_build), ("infer_shape", prof_infer)):
        stats = pstats.Stats(prof)
        total = stats.total_tt  # type: ignore[attr-defined]
        raw = stats.stats  # type: ignore[attr-defined]
        console.print(
            f"profile [{cfg.name}] lateinit {what}: {runs} runs, {total / runs * 1e3:.1f} ms "
            "per run under cProfile (profiling inflates Python-heavy code)"
        )
        lateinit_only = {k: v for k, v in raw.items() if "lateinit/" in k[0]}
        for key, title, table in (
            (2, "own time (tottime)", raw),
            (3, "cumulative time, lateinit's functions", lateinit_only),
        ):
            rows = sorted(table.items(), key=lambda kv: kv[1][key], reverse=True)[:top]
            console.print(f"  top {top} by {title}:")
            for (filename, line, func), (_cc, nc, tt, ct, _callers) in rows:
                where = _short(filename)
                val = tt if key == 2 else ct
                console.print(
                    f"    {val / total * 100:5.1f}%  {val / runs * 1e3:7.2f} ms/run  "
                    f"{nc / runs:8.0f} calls/run  {where}:{line}({func})",
                    soft_wrap=True,
                )


def _short(filename: str) -> str:
    for marker in ("site-packages/", "src/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- report ------------------------------------------------------------------------------
def fmt_mb(b: float) -> str:
    return f"{b / 1e6:.1f} MB"


def verdict(ok: bool | None, goal: str = "-") -> str:
    if ok is None:
        return "(reported)" if goal == "-" else "(too noisy)"
    return "met" if ok else "MISSED"


def styled(v: str) -> str:
    style = {"met": "green", "MISSED": "bold red"}.get(v)
    return f"[{style}]{v}[/]" if style else v


Timed = dict[str, tuple[dict[str, Phases], dict[str, dict[str, list[float]]]]]
FreshResults = dict[tuple[str, str, str], Fresh]


def render_times(
    configs: dict[str, Config], timed: Timed, fresh: FreshResults, console: Console
) -> None:
    """The main table, then one plain line per variant (and per fresh-process mode)."""
    table = Table(title="Learning every parameter's shape without data (wall time, medians)")
    for col in (
        "config",
        "variant",
        "construction",
        "shape pass",
        "total",
        "total (cpu)",
        "cold total",
        "RSS warm",
        "RSS cold",
    ):
        table.add_column(col, justify="left" if col in ("config", "variant") else "right")
    lines = []
    for key, cfg in configs.items():
        phases, _ = timed[key]
        for vkey, variant in VARIANTS.items():
            p = phases[vkey]
            cold, warm = fresh.get((key, vkey, "cold")), fresh.get((key, vkey, "warm"))
            has_pass = variant.shape_pass is not None
            table.add_row(
                cfg.name,
                variant.label,
                fmt_time(p.median("construct", "wall")),
                fmt_time(p.median("pass", "wall")) if has_pass else "-",
                fmt_time(p.median("total", "wall")),
                fmt_time(p.median("total", "cpu")),
                fmt_time(cold.total()) if cold and cold.runs else "-",
                fmt_mb(warm.median("growth_total_b")) if warm and warm.runs else "-",
                fmt_mb(cold.median("growth_total_b")) if cold and cold.runs else "-",
            )
            pass_wall = fmt_time(p.median("pass", "wall")) if has_pass else "-"
            pass_cpu = fmt_time(p.median("pass", "cpu")) if has_pass else "-"
            lines.append(
                f"time [{cfg.name}] {variant.label}: construction "
                f"{fmt_time(p.median('construct', 'wall'))}, {variant.pass_name} {pass_wall}, "
                f"total {fmt_time(p.median('total', 'wall'))} (wall, median of "
                f"{len(p.pass_wall)}; cpu: construction "
                f"{fmt_time(p.median('construct', 'cpu'))}, {variant.pass_name} {pass_cpu}, "
                f"total {fmt_time(p.median('total', 'cpu'))})"
            )
            for mode, fr in (("cold", cold), ("warm", warm)):
                if not (fr and fr.runs):
                    continue
                fr_pass = fmt_time(fr.median("pass_s")) if has_pass else "-"
                fr_growth = fmt_mb(fr.median("growth_pass_b")) if has_pass else "-"
                reset = "" if all(r["hwm_reset"] for r in fr.runs) else "; VmHWM not reset"
                lines.append(
                    f"fresh [{cfg.name}] {variant.label} {mode}: construction "
                    f"{fmt_time(fr.median('construct_s'))}, {variant.pass_name} {fr_pass}, "
                    f"total {fmt_time(fr.total())}; peak RSS growth: construction "
                    f"{fmt_mb(fr.median('growth_construct_b'))}, {variant.pass_name} "
                    f"{fr_growth}, total {fmt_mb(fr.median('growth_total_b'))} (median of "
                    f"{len(fr.runs)}: "
                    + ", ".join(
                        f"{fmt_time(r['construct_s'] + r['pass_s'])}/{fmt_mb(r['growth_total_b'])}"
                        for r in fr.runs
                    )
                    + f"{reset})"
                )
    console.print(table)
    legend = "; ".join(f"{v.label}: {v.how}" for v in VARIANTS.values())
    console.print(
        f"{legend}. shape pass: infer_shape, dry run or meta forward. construction / shape "
        "pass / total: median wall time over fresh networks, the variants interleaved, after "
        "one untimed run of each; total (cpu): process CPU time. cold total: the first run "
        "in a fresh process (its first meta op with a Python reference implementation, "
        "rms_norm or normal_, imports torch._dynamo: ~1.2 s, ~80 MB). RSS warm / cold: "
        "peak RSS growth (VmHWM) of construction + shape pass in a fresh process after a "
        "tiny warm-up of the same variant / as its very first work. The torch passes use "
        "batch 1; lateinit's Spec has a None batch, so it runs its (memoized) pass for two "
        "sizes.",
        soft_wrap=False,
    )
    for line in lines:
        print(line)


Target = tuple[str, str, str, bool | None]  # name, measured, goal, met (None: reported)


def compute_targets(
    configs: dict[str, Config],
    timed: Timed,
    fresh: FreshResults,
    repeats: dict[str, int],
    scale_name: str,
    depths: Sequence[int],
    scaling: dict[int, Phases],
    data: Results | None = None,
) -> list[Target]:
    """The target lines; with ``data``, also the rows that compare lateinit with torch
    (Lazy* speedups, ``torch.nn`` construction on meta, RSS growth) as JSON rows."""
    c7 = configs["7B"]
    ph7, _ = timed["7B"]
    li7 = ph7["lateinit"]
    targets: list[Target] = [
        (
            f"{c7.name} infer_shape (warm)",
            f"{fmt_time(li7.median('pass', 'wall'))} (cpu {fmt_time(li7.median('pass', 'cpu'))})",
            f"< {fmt_time(TIME_TARGET)}",
            li7.median("pass", "wall") < TIME_TARGET,
        ),
        (
            f"{c7.name} construction + infer_shape (warm)",
            f"{fmt_time(li7.median('total', 'wall'))} (cpu {fmt_time(li7.median('total', 'cpu'))})",
            "-",
            None,
        ),
    ]
    _, samples7 = timed["7B"]
    vs_plain = Comparison(
        "vs torch.nn construction",
        c7.name,
        "lateinit",
        "plain",
        samples7,
        VS_PLAIN_TARGET,
        min(5, repeats["7B"]),
        "wall",
    )
    rr = vs_plain.round_ratios
    targets.append(
        (
            f"{c7.name} construction + infer_shape vs torch.nn construction (meta, every "
            "size given)",
            f"{vs_plain.ratio:.2f}x ({fmt_time(vs_plain.a_median)} vs "
            f"{fmt_time(vs_plain.b_median)}; min-of-medians {vs_plain.ratio_min_of_medians:.2f}x, "
            f"rounds {min(rr):.2f}-{max(rr):.2f}x, cpu {vs_plain.ratio_on('cpu'):.2f}x)",
            f"<= {VS_PLAIN_TARGET:g}x",
            vs_plain.met,
        )
    )
    cold = fresh.get(("7B", "lateinit", "cold"))
    lazy_cold = fresh.get(("7B", "lazy", "cold"))
    if cold and cold.runs:
        extra = f"; Lazy* cold total {fmt_time(lazy_cold.total())}" if lazy_cold else ""
        targets.append(
            (
                f"{c7.name} infer_shape, cold (fresh process)",
                f"{fmt_time(cold.median('pass_s'))} (total {fmt_time(cold.total())}{extra})",
                "-",
                None,
            )
        )
    warm = fresh.get(("7B", "lateinit", "warm"))
    if warm and warm.runs:
        growth = warm.median("growth_total_b")
        targets.append(
            (
                f"{c7.name} RSS growth (warm process)",
                f"{fmt_mb(growth)} (infer_shape alone {fmt_mb(warm.median('growth_pass_b'))})",
                f"< {fmt_mb(RSS_TARGET)}",
                growth < RSS_TARGET,
            )
        )
    if cold and cold.runs:
        targets.append(
            (
                f"{c7.name} RSS growth (cold process)",
                f"{fmt_mb(cold.median('growth_total_b'))} (infer_shape alone "
                f"{fmt_mb(cold.median('growth_pass_b'))})",
                "-",
                None,
            )
        )
    for key, cfg in configs.items():
        phases, samples = timed[key]
        rounds = min(5, repeats[key])
        pairs = {
            "end to end": samples,
            "shape pass only": {
                clock: {v: getattr(phases[v], f"pass_{clock}") for v in ("lateinit", "lazy")}
                for clock in ("wall", "cpu")
            },
        }
        for what, series in pairs.items():
            c = Comparison(
                what, cfg.name, "lateinit", "lazy", series, 1 / SPEEDUP_TARGET, rounds, "wall"
            )
            rr = [1 / r for r in c.round_ratios]
            if data is not None:
                goal = {}
                if key == "7B" and what == "shape pass only":
                    goal = {"goal": f"lateinit < {fmt_time(TIME_TARGET)}"}
                    goal["goal_met"] = li7.median("pass", "wall") < TIME_TARGET
                for clock in ("wall", "cpu"):
                    data.add_comparison(
                        replace(c, clock=clock),
                        measurement=f"vs Lazy*, {what}",
                        case=f"{cfg.name} ({cfg.label})",
                        lateinit_label="lateinit "
                        + ("infer_shape" if "pass" in what else "zoo.llama() + infer_shape"),
                        peer_label="torch.nn.Lazy* on meta, "
                        + ("dry run" if "pass" in what else "construction + dry run"),
                        headline_clock="wall",
                        detail={"speedup": 1 / c.ratio_on(clock), **goal},
                    )
            targets.append(
                (
                    f"{cfg.name} speedup vs Lazy*, {what}",
                    f"{1 / c.ratio:.1f}x ({fmt_time(c.a_median)} vs {fmt_time(c.b_median)}; "
                    f"min-of-medians {1 / c.ratio_min_of_medians:.1f}x, rounds "
                    f"{min(rr):.1f}-{max(rr):.1f}x, cpu {1 / c.ratio_on('cpu'):.1f}x)",
                    f">= {SPEEDUP_TARGET:g}x",
                    c.met,
                )
            )
    if data is not None:
        for key, cfg in configs.items():
            _, samples = timed[key]
            for clock in ("wall", "cpu"):
                c = Comparison(
                    "vs torch.nn construction",
                    cfg.name,
                    "lateinit",
                    "plain",
                    samples,
                    VS_PLAIN_TARGET if key == "7B" else math.inf,  # the 70B: reported
                    min(5, repeats[key]),
                    clock,
                )
                data.add_comparison(
                    c,
                    case=f"{cfg.name} ({cfg.label})",
                    lateinit_label="lateinit zoo.llama() + infer_shape",
                    peer_label=PEER_LABELS["plain"],
                    headline_clock="wall",
                )
            warm_li = fresh.get((key, "lateinit", "warm"))
            for peer in ("plain", "lazy"):
                warm_peer = fresh.get((key, peer, "warm"))
                if not (warm_li and warm_li.runs and warm_peer and warm_peer.runs):
                    continue
                goal = {}
                if key == "7B":
                    growth = warm_li.median("growth_total_b")
                    goal = {"goal": f"lateinit < {fmt_mb(RSS_TARGET)}"}
                    goal["goal_met"] = growth < RSS_TARGET
                data.add(
                    "peak RSS growth, warm process",
                    f"{cfg.name} ({cfg.label})",
                    "lateinit zoo.llama() + infer_shape",
                    warm_li.median("growth_total_b") / 1e6,
                    PEER_LABELS[peer],
                    warm_peer.median("growth_total_b") / 1e6,
                    "MB",
                    detail={"processes": len(warm_li.runs), **goal},
                )
    names = {"total": "total", "construct": "construction", "pass": "infer_shape"}
    for what, name in names.items():
        lin = {
            clock: Linearity(
                what, tuple(depths), tuple(scaling[n].median(what, clock) for n in depths)
            )
            for clock in ("cpu", "wall")
        }
        li = lin["cpu"]
        ratio = li.marginal_ratio
        noisy = not (0 < ratio < math.inf)  # a depth interval got no dearer: noise dominates
        targets.append(
            (
                f"linear in layers ({scale_name}): {name}",
                f"ratio {ratio:.2f} (wall {lin['wall'].marginal_ratio:.2f}); "
                f"{fmt_time(li.slope)}/layer + {fmt_time(li.intercept)}; "
                f"t({depths[-1]})/t({depths[0]}) {li.end_ratio:.1f}",
                f"ratio <= {LINEAR_TARGET:g}",
                None if noisy else ratio <= LINEAR_TARGET,
            )
        )
    return targets


def render_targets(
    targets: list[Target],
    scale_name: str,
    depths: Sequence[int],
    scaling: dict[int, Phases],
    console: Console,
) -> None:
    table = Table(title="Targets (docs/design.md, Promises), wall time")
    for col in ("target", "measured", "goal", ""):
        table.add_column(col, justify="right" if col == "goal" else "left", no_wrap=True)
    for name, measured, goal, ok in targets:
        table.add_row(name, measured, goal, styled(verdict(ok, goal)))
    console.print(table)
    quadratic = (depths[-1] + depths[-2]) / (depths[0] + depths[1])
    console.print(
        "speedup: median(Lazy*) / median(lateinit); end to end = construction + shape pass; "
        "min-of-medians: each variant's quietest round; rounds: the per-round spread. linear "
        "(process CPU time: a difference of medians magnifies wall-clock noise; wall beside): "
        f"ratio = per-layer cost from {depths[-2]} to {depths[-1]} layers over that from "
        f"{depths[0]} to {depths[1]} (1 = linear, {quadratic:g} = quadratic); per layer + "
        "intercept: least-squares fit over all depths.",
        soft_wrap=False,
    )
    for n in depths:
        p = scaling[n]
        print(
            f"layers [{scale_name.split(' at ')[0]}, {n} layers]: construction "
            f"{fmt_time(p.median('construct', 'wall'))}, infer_shape "
            f"{fmt_time(p.median('pass', 'wall'))}, total {fmt_time(p.median('total', 'wall'))} "
            f"(wall; cpu total {fmt_time(p.median('total', 'cpu'))})"
        )
    for name, measured, goal, ok in targets:
        print(f"target {name}: {measured}; goal {goal}: {verdict(ok, goal)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on tiny configs")
    parser.add_argument(
        "--repeats", type=int, default=None, help="samples per 7B variant (15; 70B: half)"
    )
    parser.add_argument(
        "--fresh",
        type=int,
        default=None,
        help="fresh processes per 7B variant and mode (3; 70B: a third)",
    )
    parser.add_argument("--profile", action="store_true", help="always profile lateinit")
    parser.add_argument(
        "--child", nargs=3, metavar=("VARIANT", "CONFIG", "MODE"), help=argparse.SUPPRESS
    )
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child, quick=args.quick)

    torch.set_num_threads(1)
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    depths = QUICK_SCALE_LAYERS if args.quick else SCALE_LAYERS
    n7 = args.repeats or (4 if args.quick else 15)
    repeats = {"7B": n7, "70B": 3 if args.quick else max(3, n7 // 2)}
    fresh_n = args.fresh or (1 if args.quick else 3)
    fresh_repeats = {"7B": fresh_n, "70B": 0 if args.quick else max(1, fresh_n // 3)}
    console = Console(width=None if sys.stdout.isatty() else 170)
    quick = " (--quick: tiny configs, figures meaningless)" if args.quick else ""
    load_start = load_average()
    facts = environment_facts("wall", args.quick)
    title = f"lateinit data-free shape inference benchmark{quick}"
    console.print(title + "\n" + format_environment(facts))
    started = time.perf_counter()

    # 1. checks (also the first, untimed meta run of every variant in this process)
    checks: list[tuple[bool, str]] = []
    for cfg in configs.values():
        checks += check_config(cfg, full_7b=False)
    checks += check_config(CONFIGS["7B"], full_7b=True)  # the real 7B, also with --quick
    for ok, what in checks:
        print(f"check: {what}: ok" if ok else f"WARNING check failed: {what}")

    # 2. fresh processes: the cold first run, and peak RSS
    plan = [
        (config_key, variant_key, mode)
        for config_key in configs
        if fresh_repeats[config_key]
        for mode in ("cold", "warm")
        for variant_key in FRESH_VARIANTS
    ]
    console.print(f"measuring {len(plan)} cases in fresh processes, {fresh_repeats} each ...")
    fresh = run_fresh(plan, fresh_repeats, args.quick, console)

    # 3. in this process, warm, interleaved
    timed: Timed = {}
    for key, cfg in configs.items():
        console.print(f"measuring {cfg.name} ({cfg.label}), {repeats[key]} samples ...")
        timed[key] = bench_variants(cfg, list(VARIANTS), repeats[key])
    scale_cfg = configs["7B"]
    scale_name = f"{scale_cfg.name} at {'/'.join(map(str, depths))}"
    console.print(f"measuring lateinit, {scale_name} layers, {n7} samples ...")
    scaling = bench_scaling(scale_cfg, depths, n7)
    load_end = load_average()

    render_times(configs, timed, fresh, console)
    data = Results("infer", facts, command_line())
    targets = compute_targets(configs, timed, fresh, repeats, scale_name, depths, scaling, data)
    render_targets(targets, scale_name, depths, scaling, console)
    console.print(
        f"load average at start {load_start}, at end {load_end}; "
        f"wall time {time.perf_counter() - started:.0f} s"
    )
    data.write(args.json)
    if args.profile or (any(ok is False for *_, ok in targets) and not args.quick):
        profile_lateinit(configs["7B"], console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
