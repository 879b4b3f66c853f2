"""``benchmarks/io.py --quick`` runs and prints every variant and target line; its
figures are never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_io_quick_runs_and_prints_every_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "io.py"), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    names = [
        "lateinit save_parameters",
        "safetensors save_file",
        "torch.save",
        "lateinit load_parameters (deferred)",
        "lateinit load_parameters (READY)",
        "lateinit save_parameters(sync=False, checksums=False)",
        "lateinit load_parameters (deferred, verify=False)",
        "lateinit load_parameters (READY, verify=False)",
        "safetensors load_file + load_state_dict",
        "torch.load(weights_only) + load_state_dict",
    ]
    for name in names:
        assert re.search(rf"^{re.escape(name)}: median [\d.]+ s .*peak RSS growth", out, re.M), (
            name,
            out,
        )
    verdicts = re.findall(r"^target (.+): .*goal <= 1\.2: (met|MISSED|\(reported\))$", out, re.M)
    assert len(verdicts) == 10, out
    checksums = re.findall(r"^target (.+): ratio [\d.]+; goal <= 1\.15: (met|MISSED)$", out, re.M)
    assert len(checksums) == 3, out
    assert list(tmp_path.iterdir()) == []  # the benchmark cleans up its files
