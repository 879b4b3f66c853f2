"""Parameter files: lateinit ``save_parameters``/``load_parameters`` against raw safetensors
and ``torch.save``/``torch.load``, on a ~1 GB parameter set.

The parameter set is an MLP of square layers (``--width`` 4096: 16 layers of 4096x4096
float32 weights + biases, 1.07 GB at ``--size-mb 1024``). Every variant runs in a fresh
process (one sample = one subprocess, variants interleaved in ABBA order), which builds
its network first, untimed, then times one operation and reports its wall time and its
peak RSS growth during that operation (``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs`` just before; a sampling thread where that is unavailable).

Saving (each writes its own file in the same folder):

- **lateinit save_parameters**: READY network -> safetensors file, written under a
  temporary name, ``fsync``-ed, renamed (crash-safe);
- **safetensors save_file**: the plain torch twin's ``state_dict()`` -> ``save_file``
  (raw; safetensors 0.8 writes a temporary file and renames too, without ``fsync``);
- **safetensors save_file + fsync** (reference: the raw write made durable);
- **torch.save** of the ``state_dict`` (pickle/zip).

Loading (files written beforehand and read once, so every variant reads from the page
cache; values always end up in a network):

- **lateinit load_parameters (deferred)**: a fresh network with no input sizes; the shapes
  come from the file, the parameters are created with the file's values;
- **lateinit load_parameters (READY)**: values replaced in place;
- **safetensors load_file + load_state_dict**: the raw reference: ``load_file`` (memory
  map) then the torch twin's ``load_state_dict`` copies the values in;
- **safetensors load_file (lazy mmap)**: ``load_file`` alone, for reference: it maps the
  file and reads nothing until a value is used, so it is not a complete load;
- **torch.load(weights_only) + load_state_dict**.

Checksums (``save_parameters(checksums=...)``, ``load_parameters(verify=...)``, called
through ``lateinit.io``): the lateinit save without fsync, the deferred load and the READY
load, each with and without checksums. Their verdicts come from one process per
operation that alternates the two variants sample by sample (ABBA, ``--checksum-samples``
of each, the untimed setup of each sample as above: a fresh deferred network per load, the
saved file removed after each save), since a ratio of medians of a few fresh processes
drifts with the machine's load as much as the checksums cost; the same pairs among the
fresh-process variants are printed beside them as a reference.

Targets (docs/design.md, Promises): lateinit save and load within 1.2x of raw
safetensors (save_file; and load_file + load_state_dict); peak RSS growth while loading
<= 1.2x the file size.
Checksums: saving with them and loading with verification within 1.15x of the same
operation without them.

Sharded (``--sharded`` runs only these): the same parameter set split over 4 shards
(safetensors ``save_file``, each with lateinit's checksums in its metadata) plus a Hugging
Face ``model.safetensors.index.json``: lateinit ``load_parameters(index)`` into a deferred
and a READY network, against ``load_file`` of every shard + ``load_state_dict`` (into
fresh memory and into a READY twin). Same targets: within 1.2x, peak RSS growth <= 1.1x.

Run: ``python benchmarks/io.py`` (~7 minutes on 2 shared cores, 4-5 GB of free disk in
``--dir``, default a temporary folder), ``--quick`` for a smoke run (64 MB, figures
meaningless); ``--json PATH`` also writes the target rows as data (for
``benchmarks/plot.py``). Exit status 0 whether targets are met or not: a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _timing import Results, add_json_option, command_line, environment_facts, format_environment

SAVES = {
    "lateinit save_parameters": "save_lateinit",
    "lateinit save_parameters(sync=False)": "save_lateinit_nosync",
    "lateinit save_parameters(sync=False, checksums=False)": "save_lateinit_nosync_nosums",
    "safetensors save_file": "save_raw",
    "safetensors save_file + fsync": "save_raw_fsync",
    "torch.save": "save_torch",
}
LOADS = {
    "lateinit load_parameters (deferred)": "load_lateinit_deferred",
    "lateinit load_parameters (READY)": "load_lateinit_ready",
    "lateinit load_parameters (deferred, verify=False)": "load_lateinit_deferred_noverify",
    "lateinit load_parameters (READY, verify=False)": "load_lateinit_ready_noverify",
    "safetensors load_file + load_state_dict": "load_raw",
    "safetensors load_file + load_state_dict (fresh memory)": "load_raw_fresh",
    "safetensors load_file(backend=pread)": "load_raw_pread",
    "safetensors load_file (lazy mmap)": "load_raw_lazy",
    "torch.load(weights_only) + load_state_dict": "load_torch",
}
SHARDED = {
    "lateinit load_parameters, 4 shards (deferred)": "load_lateinit_sharded_deferred",
    "lateinit load_parameters, 4 shards (READY)": "load_lateinit_sharded_ready",
    "safetensors load_file x4 + load_state_dict (fresh memory)": "load_raw_sharded_fresh",
    "safetensors load_file x4 + load_state_dict": "load_raw_sharded",
}
SHARDS = 4
SHARDED_RSS_TARGET = 1.1
TARGET = 1.2
CHECKSUM_TARGET = 1.15  # checksums written / verified vs not, side by side


# -- worker: one operation in this process -----------------------------------------------


def _status(field: str) -> float:
    """A ``kB`` field of /proc/self/status, in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakRSS:
    """Peak RSS growth over a block: VmHWM reset via clear_refs, else a sampling thread."""

    def __enter__(self) -> PeakRSS:
        self.base = _status("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.sampler = None
        except OSError:
            self.peak = self.base
            self.done = threading.Event()
            self.sampler = threading.Thread(target=self._sample, daemon=True)
            self.sampler.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.002):
            self.peak = max(self.peak, _status("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        if self.sampler is None:
            self.peak = _status("VmHWM")
        else:
            self.done.set()
            self.sampler.join()
            self.peak = max(self.peak, _status("VmRSS"))
        self.growth = self.peak - self.base


def _nets(width: int, layers: int) -> tuple[Callable, Callable]:
    import torch

    from lateinit import nn

    def ours(ready: bool):
        net = nn.Sequential(*(nn.Dense(width) for _ in range(layers)))
        if ready:
            net.infer_shape((1, width))
            net.initialize("zeros")  # READY, every page touched
        return net

    def twin(touch: bool = True):
        with torch.device("meta"):
            net = torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers)))
        net = net.to_empty(device="cpu")
        if touch:  # else the memory is reserved but not yet backed by pages
            for p in net.parameters():
                p.detach().zero_()
        return net

    return ours, twin


def worker(op: str, folder: Path, width: int, layers: int, samples: int = 0) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(1)
    ours, twin = _nets(width, layers)
    if op.startswith("checksums_"):
        return _checksum_pairs(op.removeprefix("checksums_"), folder, ours, samples)
    files = {k: folder / f"{k}.safetensors" for k in ("lateinit", "raw")}
    files["torch"] = folder / "torch.pt"
    out = folder / f"out-{op}"
    action: Callable[[], object]
    if op in ("save_lateinit", "save_lateinit_nosync", "save_lateinit_nosync_nosums"):
        from lateinit.io import save_parameters

        net = ours(True)
        sync, sums = op == "save_lateinit", not op.endswith("nosums")
        action = lambda: save_parameters(net, out, sync=sync, checksums=sums)  # noqa: E731
    elif op in ("save_raw", "save_raw_fsync", "save_torch"):
        state = twin().state_dict()

        def action() -> None:
            if op == "save_torch":
                torch.save(state, out)
                return
            save_file(state, out)
            if op == "save_raw_fsync":
                fd = os.open(out, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)

    elif op.startswith("load_lateinit_sharded_"):
        from lateinit.io import load_parameters

        net = ours(op.endswith("ready"))
        index = folder / "sharded" / "model.safetensors.index.json"
        action = lambda: load_parameters(net, index)  # noqa: E731
    elif op in ("load_raw_sharded", "load_raw_sharded_fresh"):
        model = twin(touch=op == "load_raw_sharded")
        shards = sorted((folder / "sharded").glob("*.safetensors"))

        def action() -> None:
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(load_file(shard))
            model.load_state_dict(state)

    elif op.startswith("load_lateinit_"):
        from lateinit.io import load_parameters

        net = ours("ready" in op)
        verify = not op.endswith("noverify")
        action = lambda: load_parameters(net, files["lateinit"], verify=verify)  # noqa: E731
    elif op in ("load_raw", "load_raw_fresh"):
        model = twin(touch=op == "load_raw")
        action = lambda: model.load_state_dict(load_file(files["raw"]))  # noqa: E731
    elif op == "load_raw_pread":
        kept_pread: list[object] = []
        action = lambda: kept_pread.append(load_file(files["raw"], backend="pread"))  # noqa: E731
    elif op == "load_raw_lazy":
        kept: list[object] = []
        action = lambda: kept.append(load_file(files["raw"]))  # noqa: E731
    elif op == "load_torch":
        model = twin()
        action = lambda: model.load_state_dict(  # noqa: E731
            torch.load(files["torch"], weights_only=True)
        )
    elif op == "prepare":
        net = ours(True)
        net.save_parameters(files["lateinit"])
        state = twin().state_dict()
        save_file(state, files["raw"])
        torch.save(state, files["torch"])
        files.update(_write_shards(folder / "sharded", state))
        for path in files.values():  # into the page cache
            with open(path, "rb") as fh:
                while fh.read(1 << 24):
                    pass
        return {"file_mb": files["lateinit"].stat().st_size / 2**20}
    else:
        raise SystemExit(f"unknown op {op}")
    import gc

    gc.collect()
    with PeakRSS() as rss:
        start = time.perf_counter()
        action()
        seconds = time.perf_counter() - start
    if out.exists():
        out.unlink()
    return {"seconds": seconds, "rss_mb": rss.growth}


def _checksum_pairs(
    kind: str, folder: Path, ours: Callable, samples: int
) -> dict[str, list[float]]:
    """``kind`` ("save", "deferred", "ready") with checksums and without, alternating in
    this one process in ABBA order, ``samples`` of each after one untimed call of each:
    the seconds of every sample, ``{"with": [...], "without": [...]}``."""
    import gc

    from lateinit.io import load_parameters, save_parameters

    path = folder / "lateinit.safetensors"
    out = folder / "out-checksums.safetensors"
    ready = None if kind == "deferred" else ours(True)

    def once(checked: bool) -> float:
        net = ours(False) if kind == "deferred" else ready  # untimed, as in a fresh process
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            if kind == "save":
                save_parameters(net, out, sync=False, checksums=checked)
            else:
                load_parameters(net, path, verify=checked)
            return time.perf_counter() - start
        finally:
            gc.enable()
            if kind == "save":
                out.unlink()

    once(True)  # untimed warm-up of each variant
    once(False)
    series: dict[bool, list[float]] = {True: [], False: []}
    for i in range(samples):
        for checked in (True, False) if i % 2 == 0 else (False, True):
            series[checked].append(once(checked))
    return {"with": series[True], "without": series[False]}


def _write_shards(folder: Path, state: dict) -> dict[str, Path]:
    """``state`` split over SHARDS files (safetensors ``save_file``, lateinit checksums in
    the metadata, as a lateinit save writes them) and a Hugging Face index."""
    import xxhash
    from safetensors.torch import save_file

    folder.mkdir()
    keys = list(state)
    per = -(-len(keys) // SHARDS)
    weight_map, paths = {}, {}
    for i in range(SHARDS):
        name = f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i * per : (i + 1) * per]}
        sums = {k: xxhash.xxh3_64_hexdigest(t.numpy().tobytes()) for k, t in part.items()}
        save_file(part, folder / name, {"lateinit.xxh3_64": json.dumps(sums)})
        weight_map.update(dict.fromkeys(part, name))
        paths[name] = folder / name
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return paths


# -- driver -------------------------------------------------------------------------------


def _run(op: str, folder: Path, width: int, layers: int, samples: int = 0) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", op, "--dir", str(folder)]
    cmd += ["--width", str(width), "--layers", str(layers), "--samples", str(samples)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {op} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the files")
    parser.add_argument(
        "--checksum-samples",
        type=int,
        default=15,
        help="samples of each variant in the one-process checksum comparisons",
    )
    parser.add_argument(
        "--quick", action="store_true", help="64 MB, 2 repeats, 4 checksum samples (smoke run)"
    )
    parser.add_argument("--sharded", action="store_true", help="only the sharded loads")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=0, help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.worker:
        out = worker(args.worker, args.dir, args.width, args.layers, args.samples)
        print(json.dumps(out))
        return 0
    if args.quick:
        args.size_mb, args.width, args.repeats, args.checksum_samples = 64, 1024, 2, 4
    layers = max(1, round(args.size_mb * 2**20 / (args.width * args.width * 4)))
    import torch

    torch.set_num_threads(1)  # as in every worker
    facts = environment_facts("wall", args.quick)
    print(format_environment(facts))
    data = Results("io", facts, command_line())
    folder = Path(tempfile.mkdtemp(prefix="lateinit-io-", dir=args.dir))
    try:
        file_mb = _run("prepare", folder, args.width, layers)["file_mb"]
        print(
            f"parameter set: {layers} x Dense({args.width}) float32, file {file_mb:.0f} MB; "
            f"{args.repeats} samples per variant, each in a fresh process (torch 1 thread)"
        )
        results: dict[str, list[dict[str, float]]] = {}
        for group in (SHARDED,) if args.sharded else (SAVES, LOADS, SHARDED):
            names = list(group)
            for i in range(args.repeats):
                for name in names if i % 2 == 0 else reversed(names):
                    sample = _run(group[name], folder, args.width, layers)
                    results.setdefault(name, []).append(sample)
        pairs = {}
        if not args.sharded:
            print(
                f"checksums: {args.checksum_samples} samples of each variant, alternating "
                "in one process per operation"
            )
            for kind in ("save", "deferred", "ready"):
                pairs[kind] = _run(
                    f"checksums_{kind}", folder, args.width, layers, args.checksum_samples
                )
        if args.sharded:
            _report_sharded(results, file_mb, data)
        else:
            _report(results, pairs, file_mb, data)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        data.note = (
            f"{layers} x Dense({args.width}) float32, file {file_mb:.0f} MB; {args.repeats} "
            "samples per variant, each in a fresh process; medians of wall time; peak RSS "
            "growth is the largest of the samples"
            + (
                "; --sharded: only the sharded loads"
                if args.sharded
                else f"; checksum verdicts: {args.checksum_samples} samples of each variant "
                "alternating in one process"
            )
        )
        data.write(args.json)
    return 0


def _row(
    data: Results,
    measurement: str,
    label: str,
    a: str,
    b: str,
    value: dict[str, float],
    unit: str,
    target: float | None,
    results: dict[str, list[dict[str, float]]],
) -> None:
    """One target line as a JSON row: ``a`` (lateinit) against ``b``, medians in seconds
    (``unit`` "s") or peak RSS growth in MB."""
    key = "seconds" if unit == "s" else "rss_mb"
    data.add(
        measurement,
        label,
        a,
        value[a],
        b,
        value[b],
        unit,
        target=target,
        clock="wall" if unit == "s" else None,
        detail={"samples": {n: [s[key] for s in results[n]] for n in (a, b)}},
    )


def _rss_row(data: Results, name: str, rss_mb: float, file_mb: float, target: float) -> None:
    data.add(
        "peak RSS growth",
        name,
        name,
        rss_mb,
        "the file's size",
        file_mb,
        "MB",
        target=target,
    )


def _report(
    results: dict[str, list[dict[str, float]]],
    pairs: dict[str, dict[str, list[float]]],
    file_mb: float,
    data: Results,
) -> None:
    med = {n: statistics.median(s["seconds"] for s in r) for n, r in results.items()}
    rss = {n: max(s["rss_mb"] for s in r) for n, r in results.items()}
    for name, samples in results.items():
        times = ", ".join(f"{s['seconds']:.3f}" for s in samples)
        print(
            f"{name}: median {med[name]:.3f} s (samples {times}); "
            f"peak RSS growth {rss[name]:.0f} MB ({rss[name] / file_mb:.2f}x the file)"
        )
    print("Targets (docs/design.md, Promises):")
    checks = [
        (
            "save (fsync) vs raw save_file + fsync",
            "lateinit save_parameters",
            "safetensors save_file + fsync",
        ),
        (
            "save(sync=False) vs raw save_file",
            "lateinit save_parameters(sync=False)",
            "safetensors save_file",
        ),
        (
            "save (fsync) vs raw save_file without fsync (reference)",
            "lateinit save_parameters",
            "safetensors save_file",
        ),
        ("save vs torch.save (reference)", "lateinit save_parameters", "torch.save"),
        (
            "load into deferred vs raw load_file + load_state_dict into fresh memory",
            "lateinit load_parameters (deferred)",
            "safetensors load_file + load_state_dict (fresh memory)",
        ),
        (
            "load into deferred vs raw load_file(backend=pread) (reference)",
            "lateinit load_parameters (deferred)",
            "safetensors load_file(backend=pread)",
        ),
        (
            "load into READY vs raw load_file + load_state_dict",
            "lateinit load_parameters (READY)",
            "safetensors load_file + load_state_dict",
        ),
        (
            "load into READY vs torch.load (reference)",
            "lateinit load_parameters (READY)",
            "torch.load(weights_only) + load_state_dict",
        ),
    ]
    for label, a, b in checks:
        ratio = med[a] / med[b]
        goal = "(reported)" if "reference" in label else ("met" if ratio <= TARGET else "MISSED")
        print(f"target {label}: ratio {ratio:.3f}; goal <= {TARGET}: {goal}")
        target = None if "reference" in label else TARGET
        _row(data, label.split(maxsplit=1)[0].split("(")[0], label, a, b, med, "s", target, results)
    checksum_checks = [
        (
            "save with checksums vs without (sync=False)",
            "save",
            "lateinit save_parameters(sync=False)",
            "lateinit save_parameters(sync=False, checksums=False)",
        ),
        (
            "load into deferred, verified vs verify=False",
            "deferred",
            "lateinit load_parameters (deferred)",
            "lateinit load_parameters (deferred, verify=False)",
        ),
        (
            "load into READY, verified vs verify=False",
            "ready",
            "lateinit load_parameters (READY)",
            "lateinit load_parameters (READY, verify=False)",
        ),
    ]
    for label, kind, a, b in checksum_checks:
        _checksum_row(data, label, a, b, pairs[kind])
        reference = f"{label}, fresh processes (reference)"
        ratio = med[a] / med[b]
        print(f"target {reference}: ratio {ratio:.3f}; goal <= {CHECKSUM_TARGET}: (reported)")
        _row(data, "checksums", reference, a, b, med, "s", None, results)
    for name in ("lateinit load_parameters (deferred)", "lateinit load_parameters (READY)"):
        ratio = rss[name] / file_mb
        goal = "met" if ratio <= TARGET else "MISSED"
        print(f"target peak RSS growth, {name}: {ratio:.2f}x the file; goal <= {TARGET}: {goal}")
        _rss_row(data, name, rss[name], file_mb, TARGET)


def _checksum_row(data: Results, label: str, a: str, b: str, pair: dict[str, list[float]]) -> None:
    """The verdict of one checksum target, from its samples alternating in one process:
    the ratio of the medians; the ratio of the fastest samples and the range of the
    ratios of the samples taken side by side (ABBA neighbours) are printed beside it."""
    a, b = f"{a}, in one process", f"{b}, in one process"
    series = {a: pair["with"], b: pair["without"]}
    med = {n: statistics.median(v) for n, v in series.items()}
    for name, samples in series.items():
        times = ", ".join(f"{t:.3f}" for t in samples)
        print(f"{name}: median {med[name]:.3f} s (samples {times})")
    ratio = med[a] / med[b]
    paired = [x / y for x, y in zip(series[a], series[b], strict=True)]
    fastest = min(series[a]) / min(series[b])
    goal = "met" if ratio <= CHECKSUM_TARGET else "MISSED"
    print(f"target {label}: ratio {ratio:.3f}; goal <= {CHECKSUM_TARGET}: {goal}")
    print(
        f"  ({len(paired)} samples each; ratio of the fastest samples {fastest:.3f}; "
        f"side-by-side ratios {min(paired):.3f}-{max(paired):.3f}, "
        f"median {statistics.median(paired):.3f})"
    )
    data.add(
        "checksums",
        label,
        a,
        med[a],
        b,
        med[b],
        "s",
        target=CHECKSUM_TARGET,
        clock="wall",
        detail={
            "samples": series,
            "method": "one process, the two variants alternating (ABBA)",
            "fastest_ratio": fastest,
            "side_by_side_ratios": paired,
        },
    )


def _report_sharded(
    results: dict[str, list[dict[str, float]]], file_mb: float, data: Results
) -> None:
    med = {n: statistics.median(s["seconds"] for s in r) for n, r in results.items()}
    rss = {n: max(s["rss_mb"] for s in r) for n, r in results.items()}
    for name in SHARDED:
        times = ", ".join(f"{s['seconds']:.3f}" for s in results[name])
        print(
            f"{name}: median {med[name]:.3f} s (samples {times}); "
            f"peak RSS growth {rss[name]:.0f} MB ({rss[name] / file_mb:.2f}x the checkpoint)"
        )
    names = list(SHARDED)
    for ours, raw in ((names[0], names[2]), (names[1], names[3])):
        ratio = med[ours] / med[raw]
        goal = "met" if ratio <= TARGET else "MISSED"
        print(f"target {ours} vs {raw}: ratio {ratio:.3f}; goal <= {TARGET}: {goal}")
        _row(data, "load", f"{ours} vs {raw}", ours, raw, med, "s", TARGET, results)
    for name in names[:2]:
        ratio = rss[name] / file_mb
        goal = "met" if ratio <= SHARDED_RSS_TARGET else "MISSED"
        print(
            f"target peak RSS growth, {name}: {ratio:.2f}x the checkpoint; "
            f"goal <= {SHARDED_RSS_TARGET}: {goal}"
        )
        _rss_row(data, name, rss[name], file_mb, SHARDED_RSS_TARGET)


if __name__ == "__main__":
    sys.exit(main())
