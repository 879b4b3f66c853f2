"""``examples/train_ddp.py``: two CPU processes train a deferred LeNet with DDP."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_ddp.py"


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no gloo backend for CPU processes",
)
def test_train_ddp_two_processes_stay_identical_and_learn():
    args = ["--epochs", "2", "--train-size", "2000", "--test-size", "500", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "parameters identical on all 2 ranks: True" in out, out
    accuracy = float(re.search(r"^test accuracy: ([\d.]+)$", out, re.M).group(1))
    assert accuracy > 0.3, out  # 10 classes: chance is 0.1; two short epochs
    assert "Warning" not in out, out
