"""``benchmarks/train.py --quick`` runs, checks its variants and prints its ratio lines;
its figures are never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench_json import check_results, ratios

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_train_quick_runs_and_prints_ratios(tmp_path) -> None:
    json_path = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "train.py"), "--quick", "--json", str(json_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=BENCHMARKS.parent,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out  # 1 means a check before timing failed
    nets = ("LeNet", "ResNet-18")
    lines = re.findall(r"^ratio train \[(LeNet|ResNet-18): .*\] (cpu|wall): \d+\.\d+ ", out, re.M)
    assert sorted(lines) == sorted((n, c) for n in nets for c in ("cpu", "wall")), out
    overhead = re.findall(r"^ratio trainer-overhead \[(LeNet|ResNet-18): ", out, re.M)
    assert sorted(overhead) == sorted(nets * 2), out
    assert out.count("target <= 1.03") == 4, out
    assert out.count("hot path clean") == 2, out
    # the checks before timing: same output, and one Trainer step (summed loss / batch)
    # equals one plain torch step (mean loss) from the same weights
    assert out.count("same weights after one Trainer step and one torch step") == 2, out
    counts = re.findall(r"parameters lateinit ([\d,]+), torch ([\d,]+)", out)
    assert len(counts) == 2 and all(a == b for a, b in counts), out
    # --json: one row per printed ratio line, the same figures
    data = check_results(json_path, "train")
    printed = re.findall(
        r"^ratio (train|trainer-overhead) \[(\S+): (.*)\] (cpu|wall): (\d+\.\d+) ", out, re.M
    )
    kinds = {"train": "training step", "trainer-overhead": "Trainer overhead"}
    assert ratios(data, lambda r: (r["measurement"], r["case"], r["clock"])) == {
        (kinds[kind], f"{net} ({detail})", clock): ratio
        for kind, net, detail, clock, ratio in printed
    }
    for r in data["rows"]:
        assert r["lateinit"]["label"] == "lateinit.Trainer"
        reported = r["measurement"] == "Trainer overhead"
        assert r["target"] == (None if reported else 1.03), r
        assert r["peer"]["label"].endswith("torch.optim.SGD"), r
