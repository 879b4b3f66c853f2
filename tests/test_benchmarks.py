"""The benchmark scripts run and report; their figures are never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_overhead_quick_runs_and_prints_ratios() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ratio_lines = re.findall(r"^ratio (steady step|first call) \[.*\]: \d+\.\d+", proc.stdout, re.M)
    assert ratio_lines.count("steady step") == 2, proc.stdout  # dispatch- and compute-bound
    assert ratio_lines.count("first call") >= 2, proc.stdout
    assert "target <= 1.03" in proc.stdout
    assert "target <= 1.5" in proc.stdout
    assert "WARNING" not in proc.stdout, proc.stdout  # both networks compute the same thing
