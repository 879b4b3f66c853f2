"""Checks of the JSON files the benchmark scripts write with ``--json`` (shared by
``tests/test_benchmarks.py`` and ``tests/test_bench_*.py``). Structure and consistency
only: a time is never asserted."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

ENVIRONMENT_KEYS = {
    "date",
    "torch",
    "python",
    "cpus",
    "machine",
    "torch_threads",
    "clock",
    "load_average",
    "quick",
    "commit",
    "dirty",
}
ROW_KEYS = {
    "benchmark",
    "row",
    "measurement",
    "case",
    "clock",
    "headline",
    "lateinit",
    "peer",
    "unit",
    "ratio",
    "target",
    "met",
    "detail",
}


def load_script(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) with its folder on the path, as
    when it runs, so that its ``from _timing import ...`` works."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARKS))
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
        del sys.modules[spec.name]
    return module


def check_results(path: Path, benchmark: str, *, quick: bool = True) -> dict[str, Any]:
    """Load ``path`` and check its layout: the environment's facts, and for every row
    both figures, the unit, ``ratio == lateinit / peer`` and ``met == ratio <= target``.
    Returns the data."""
    data = json.loads(path.read_text())
    assert data["schema"] == 1 and data["benchmark"] == benchmark, data
    assert data["command"].startswith(f"python benchmarks/{benchmark}.py"), data["command"]
    assert "--json" in data["command"], data["command"]
    env = data["environment"]
    assert set(env) == ENVIRONMENT_KEYS, env
    assert env["quick"] is quick
    assert env["clock"] in ("cpu", "wall")
    assert len(env["load_average"]) == 3 and len(data["load_average_end"]) == 3
    assert isinstance(env["cpus"], int) and env["torch"] and env["python"]
    assert env["date"][:2] == "20" and "T" in env["date"], env["date"]
    assert env["commit"] is None or isinstance(env["commit"], str)
    assert data["note"] is None or isinstance(data["note"], str)
    rows = data["rows"]
    assert rows and any(r["headline"] for r in rows)
    for r in rows:
        assert set(r) == ROW_KEYS, r
        assert r["benchmark"] == benchmark
        assert r["row"] == f"{r['measurement']}: {r['case']}"
        assert r["unit"] in ("s", "MB"), r
        assert r["clock"] in ("cpu", "wall", None), r
        for side in ("lateinit", "peer"):
            assert set(r[side]) == {"label", "value"} and r[side]["label"], r
            assert isinstance(r[side]["value"], float) and r[side]["value"] >= 0, r
        assert r["lateinit"]["label"] != r["peer"]["label"], r
        if r["peer"]["value"] == 0:
            assert r["ratio"] is None, r
            continue
        assert math.isclose(r["ratio"], r["lateinit"]["value"] / r["peer"]["value"], rel_tol=1e-9)
        if r["target"] is None:
            assert r["met"] is None, r
        else:
            assert r["target"] > 0 and r["met"] == (r["ratio"] <= r["target"]), r
    return data


def ratios(data: dict[str, Any], key, fmt: str = ".3f", headline_only: bool = False):
    """``{key(row): ratio formatted with fmt}`` for the rows with a ratio."""
    out = {}
    for r in data["rows"]:
        if r["ratio"] is None or (headline_only and not r["headline"]):
            continue
        k = key(r)
        if k is not None:
            assert k not in out, k
            out[k] = format(r["ratio"], fmt)
    return out
