"""``benchmarks/steps.py --quick`` runs, checks its networks and prints its ratio lines;
its figures are never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench_json import check_results, load_script, ratios
from lateinit import nn

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_steps_quick_runs_and_prints_ratios(tmp_path) -> None:
    json_path = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "steps.py"), "--quick", "--json", str(json_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=BENCHMARKS.parent,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out  # 1 means a check before timing failed
    lines = re.findall(r"^ratio step \[(ResNet-18|LSTM): .*\] (cpu|wall): \d+\.\d+ ", out, re.M)
    assert sorted(lines) == sorted(
        (net, clock) for net in ("ResNet-18", "LSTM") for clock in ("cpu", "wall")
    ), out
    assert out.count("target <= 1.03") == 4, out
    assert "hot path clean" in out and "same output on copied weights" in out, out
    # both networks have the same number of parameters (the script asserts it too)
    counts = re.findall(r"parameters lateinit ([\d,]+), torch ([\d,]+)", out)
    assert len(counts) == 2 and all(a == b for a, b in counts), out
    # --json: one row per printed ratio line, the same figures
    data = check_results(json_path, "steps")
    printed = re.findall(r"^ratio step \[(\S+): (.*)\] (cpu|wall): (\d+\.\d+) ", out, re.M)
    assert ratios(data, lambda r: (r["case"], r["clock"])) == {
        (f"{net} ({detail})", clock): ratio for net, detail, clock, ratio in printed
    }
    assert all(r["headline"] == (r["clock"] == "cpu") for r in data["rows"])
    assert {r["peer"]["label"] for r in data["rows"]} == {"torch.nn"}
    assert {r["target"] for r in data["rows"]} == {1.03}


def test_hot_path_check_is_not_vacuous() -> None:
    """The check the script runs before timing rejects a network that is not READY."""
    steps = load_script("steps")
    net = nn.Sequential(nn.Dense(4), nn.Dense(2))
    opt = steps.make_sgd(net)
    with pytest.raises(AssertionError, match="per-instance forward"):
        steps.assert_hot_path_clean(net, opt)
    steps.train_step(net, opt, torch.rand(3, 5), torch.tensor([0, 1, 0]))
    steps.assert_hot_path_clean(net, opt)  # READY after one real batch
