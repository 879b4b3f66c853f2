"""The examples run and do what they say (in-process, small settings)."""

from __future__ import annotations

import doctest
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str) -> ModuleType:
    """Import an example script (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture(scope="module")
def lenet() -> ModuleType:
    return _load("train_lenet")


def test_train_lenet_reaches_90_percent(lenet, capsys):
    threads = torch.get_num_threads()
    argv = ["--train-size", "3000", "--test-size", "1000", "--epochs", "4", "--seed", "1"]
    assert lenet.main(argv) == 0
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads  # main restores the thread count
    found = re.findall(r"^test accuracy: (\d\.\d\d)$", out, re.M)
    assert len(found) == 1, out
    assert float(found[0]) > 0.9, out
    # the Trainer was built before any shape was known; every parameter joined
    assert "parameters: 5 ready, 5 pending" in out, out
    assert "parameters: 10 ready, 0 pending" in out, out
    assert "epoch 4/4" in out, out  # the progress bar


def test_make_dataset_is_reproducible_and_balanced(lenet):
    x, y = lenet.make_dataset(500, seed=3)
    assert x.shape == (500, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (500,) and y.dtype == torch.int64
    assert set(y.tolist()) == set(range(len(lenet.CLASSES)))
    x2, y2 = lenet.make_dataset(500, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = lenet.make_dataset(500, seed=4)
    assert not torch.equal(x, x3)
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1  # standardized


def test_train_lenet_doctests(lenet):
    result = doctest.testmod(lenet, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
