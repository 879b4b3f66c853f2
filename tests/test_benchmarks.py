"""The benchmark scripts run and report; their figures are never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench_json import check_results, load_script, ratios

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_overhead_quick_runs_and_prints_ratios(tmp_path) -> None:
    json_path = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--quick", "--json", str(json_path)],
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

    # --json: the same rows as data, from the same numbers as the printed lines
    data = check_results(json_path, "overhead")
    printed = re.findall(
        r"^ratio (steady step|first call) \[(.*)\]: (\d+\.\d+) .*; lateinit (.+?), torch (.+?), ",
        proc.stdout,
        re.M,
    )
    assert ratios(data, lambda r: (r["measurement"], r["case"])) == {
        (m, case): ratio for m, case, ratio, *_ in printed
    }
    fmt_time = load_script("_timing").fmt_time
    figures = {(r["measurement"], r["case"]): r for r in data["rows"]}
    for m, case, _, lateinit, torch in printed:
        row = figures[(m, case)]
        assert (fmt_time(row["lateinit"]["value"]), fmt_time(row["peer"]["value"])) == (
            lateinit,
            torch,
        )
        assert row["peer"]["label"] == "torch.nn" and row["unit"] == "s"
        dispatch_first = m == "first call" and case.startswith("dispatch-bound")
        expected = 1.3 if dispatch_first else {"steady step": 1.03, "first call": 1.5}[m]
        assert row["target"] == expected
        if dispatch_first:  # the phase-by-phase breakdown, the same figures as printed
            phases = row["detail"]["phases_s"]
            assert set(phases) == {"lateinit", "lateinit, every size given", "torch.nn"}
            for name, values in phases.items():
                timed = [v for k, v in values.items() if k != "initialize()"]
                assert len(values) == 5 and all(v > 0 for v in timed)
                shown = ", ".join(f"{k} {fmt_time(v)}" for k, v in values.items())
                assert f"phases [{name}]: {shown}; total " in proc.stdout
    env = data["environment"]
    assert env["clock"] == "cpu" and env["torch_threads"] == 1
    # the printed environment line shows the same facts
    assert f"date {env['date']}; torch {env['torch']}" in proc.stdout


def _small_results(folder: Path) -> None:
    """A small results file, written by the scripts' own writer (``_timing.Results``)."""
    timing = load_script("_timing")
    env = {
        "date": "2026-12-01T01:00:00",
        "torch": "2.13.0+cpu",
        "python": "3.11.7",
        "cpus": 2,
        "machine": "x86_64",
        "torch_threads": 1,
        "clock": "cpu",
        "load_average": [1.0, 1.5, 2.0],
        "quick": False,
        "commit": "abc1234",
        "dirty": False,
    }
    data = timing.Results("demo", env, "python benchmarks/demo.py --json x.json")
    data.add("step", "small", "lateinit", 0.0101, "torch.nn", 0.0100, "s", target=1.03)
    data.add("step", "large", "lateinit", 0.500, "torch.nn", 0.400, "s", target=1.03)
    data.add("first call", "tiny", "lateinit", 4.7e-4, "torch.nn", 2.3e-4, "s")
    data.add("step", "tiny", "lateinit", 1e-4, "torch.nn", 1e-4, "s", clock="wall", headline=False)
    data.add("RSS", "load", "lateinit load", 1025.0, "the file's size", 1024.0, "MB", target=1.2)
    data.write(folder / "demo.json")


def test_plot_renders_a_deterministic_svg(tmp_path) -> None:
    _small_results(tmp_path)
    plot = load_script("plot")
    text = plot.svg("demo", results_dir=tmp_path)
    assert plot.svg("demo", tmp_path) == text  # deterministic: same JSON, same text
    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    words = " ".join(t for t in root.itertext())
    # one bar per headline row, each with its ratio and both figures
    for written in ("1.010", "1.250", "2.043", "10.10 ms vs 10.00 ms", "1025 MB vs 1024 MB"):
        assert written in words, (written, words)
    assert "1.000" not in words  # the wall-clock row is not a headline row
    assert "Date" not in text and "<dc:date>" not in text
    # ids are prefixed with the benchmark's name (several figures on one page)
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert ids and all(i.startswith("demo-") for i in ids), ids
    # the command line writes the same figure into --out
    out = tmp_path / "svg"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "plot.py"),
            "--results",
            str(tmp_path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "demo.svg").read_text() == text


@pytest.mark.parametrize("name", ["overhead", "steps", "io", "infer", "train"])
def test_committed_results_are_consistent_and_plot(name: str) -> None:
    """The results committed in benchmarks/results (full runs) have the layout, and
    each renders."""
    path = BENCHMARKS / "results" / f"{name}.json"
    check_results(path, name, quick=False)
    ET.fromstring(load_script("plot").svg(name))
