"""``benchmarks/io.py --quick`` runs and prints every variant and target line; its
figures are never asserted here."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

from bench_json import check_results, ratios

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_io_quick_runs_and_prints_every_line(tmp_path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    json_path = tmp_path / "x.json"
    cmd = [sys.executable, str(BENCHMARKS / "io.py"), "--quick", "--dir", str(folder)]
    proc = subprocess.run(
        [*cmd, "--json", str(json_path)],
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
    # their verdicts come from both variants alternating in one process (4 samples each
    # with --quick); the fresh-process pairs are printed beside them, as a reference
    for name in [
        "lateinit save_parameters(sync=False)",
        "lateinit save_parameters(sync=False, checksums=False)",
        "lateinit load_parameters (deferred)",
        "lateinit load_parameters (deferred, verify=False)",
        "lateinit load_parameters (READY)",
        "lateinit load_parameters (READY, verify=False)",
    ]:
        line = rf"^{re.escape(name)}, in one process: median [\d.]+ s \(samples( [\d.]+,?){{4}}\)$"
        assert re.search(line, out, re.M), (name, out)
    references = re.findall(
        r"^target (.+), fresh processes \(reference\): ratio [\d.]+; goal <= 1\.15: "
        r"\(reported\)$",
        out,
        re.M,
    )
    assert references == [label for label, _ in checksums], out
    assert list(folder.iterdir()) == []  # the benchmark cleans up its files
    # --json: one row per printed target line, the same figures
    data = check_results(json_path, "io")
    times = dict(re.findall(r"^target (.+): ratio (\d+\.\d+); goal", out, re.M))
    assert ratios(data, lambda r: r["case"] if r["unit"] == "s" else None) == times
    rss = dict(re.findall(r"^target peak RSS growth, (.+): (\d+\.\d+)x the file", out, re.M))
    assert ratios(data, lambda r: r["case"] if r["unit"] == "MB" else None, ".2f") == rss
    for r in data["rows"]:
        assert r["lateinit"]["label"].startswith("lateinit "), r
        if r["unit"] == "s":  # the medians of the samples it also lists
            for side in ("lateinit", "peer"):
                samples = r["detail"]["samples"][r[side]["label"]]
                assert r[side]["value"] == statistics.median(samples), r
    verdicts_in_one_process = [
        r for r in data["rows"] if r["measurement"] == "checksums" and r["target"] == 1.15
    ]
    assert len(verdicts_in_one_process) == 3
    for r in verdicts_in_one_process:
        assert r["lateinit"]["label"].endswith(", in one process"), r
        assert len(r["detail"]["side_by_side_ratios"]) == 4, r
    assert "--quick" in data["command"] and data["environment"]["quick"] is True
