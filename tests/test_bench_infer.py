"""``benchmarks/infer.py --quick`` runs, passes its checks and prints its table lines;
its figures are never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench_json import check_results

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_infer_quick_runs_and_prints_table(tmp_path) -> None:
    json_path = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "infer.py"), "--quick", "--json", str(json_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=BENCHMARKS.parent,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "WARNING" not in out, out  # a failed check, or a fresh-process run that failed
    # the real 7B's parameter count after infer_shape (checked with --quick too)
    assert re.search(
        r"^check: \[7B\] parameter count after infer_shape 6,738,415,616 == 6,738,415,616 .*: ok$",
        out,
        re.M,
    ), out
    assert re.search(
        r"^check: \[7B\] after infer_shape all \d+ lateinit parameters .*: ok$", out, re.M
    )
    # one time line per config and variant, cold and warm fresh runs for the 7B-like config
    for variant in ("(a) lateinit", "(b) torch Lazy*", "(c) torch.nn", "(ref) (c) + meta fwd"):
        assert out.count(f"] {variant}: construction ") == 2, (variant, out)
    for variant in ("(a) lateinit", "(b) torch Lazy*", "(c) torch.nn"):
        for mode in ("cold", "warm"):
            line = re.search(
                rf"^fresh \[tiny-7B\] {re.escape(variant)} {mode}: .*peak RSS growth: .* MB",
                out,
                re.M,
            )
            assert line, (variant, mode, out)
    # the targets table, as plain lines with a verdict each
    verdicts = re.findall(
        r"^target (.+): .*; goal .+: (met|MISSED|\(reported\)|\(too noisy\))$", out, re.M
    )
    names = [name for name, _ in verdicts]
    assert any("infer_shape (warm)" in n for n in names), out
    assert any("RSS growth (warm process)" in n for n in names), out
    assert sum("speedup vs Lazy*" in n for n in names) == 4, out
    assert sum("linear in layers" in n for n in names) == 3, out
    assert len(re.findall(r"^layers \[tiny-7B, \d+ layers\]: ", out, re.M)) == 4, out
    assert "Targets (docs/design.md, Promises)" in out and "load average" in out, out
    # --json: the speedup lines as rows (ratio = lateinit / Lazy* = 1 / speedup), on
    # both clocks, and lateinit against torch.nn construction on meta
    data = check_results(json_path, "infer")
    printed = re.findall(
        r"^target (\S+) speedup vs Lazy\*, (.+?): (\d+\.\d+)x \(.*cpu (\d+\.\d+)x\)", out, re.M
    )
    assert len(printed) == 4, out
    rows = {
        (r["case"].split()[0], r["measurement"].removeprefix("vs Lazy*, "), r["clock"]): r
        for r in data["rows"]
        if r["measurement"].startswith("vs Lazy*")
    }
    assert len(rows) == 8
    for config, what, wall, cpu in printed:
        for clock, speedup in (("wall", wall), ("cpu", cpu)):
            row = rows[(config, what, clock)]
            assert f"{1 / row['ratio']:.1f}" == speedup, (row, speedup)
            assert row["headline"] == (clock == "wall") and row["target"] == 0.2
    assert sum(r["measurement"] == "vs torch.nn construction" for r in data["rows"]) == 4
    # issue 11's target: the 7B construction + infer_shape over torch.nn construction
    # on meta, <= 1.5x, as a target line and as the 7B rows' target in the JSON
    line = re.search(
        r"^target \S+ construction \+ infer_shape vs torch\.nn construction \(meta, every "
        r"size given\): (\d+\.\d+)x .*; goal <= 1\.5x: (met|MISSED)$",
        out,
        re.M,
    )
    assert line, out
    vs_plain = [r for r in data["rows"] if r["measurement"] == "vs torch.nn construction"]
    first = [r for r in vs_plain if r["case"].startswith("tiny-7B")]
    assert [r["target"] for r in first] == [1.5, 1.5], first
    wall = next(r for r in first if r["clock"] == "wall")
    assert f"{wall['ratio']:.2f}" == line.group(1) and wall["met"] == (line.group(2) == "met")
    assert all(r["target"] is None for r in vs_plain if r not in first), vs_plain
    assert data["environment"]["clock"] == "wall"
