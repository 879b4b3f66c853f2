"""The ``lateinit`` command line: ``lateinit tour`` and the usage errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lateinit import cli

# What the tour must show: the seed story, then the three exercises.
STORY = [
    "Dense(-1 -> 256, relu)",
    "Dense(-1 -> 10)",
    "0.weight (256, -1) float32 DECLARED",
    "1.weight (10, -1) float32 DECLARED",
    "DeferredInitializationError: Parameter '0.weight' of Dense with shape (256, -1)",
    "net.infer_shape(...)",
    "in_units=...",
    "Dense(20 -> 256, relu)",
    "0.weight (256, 20)",
    "0.bias (256,)",
    "1.weight (10, 256)",
    "1.bias (10,)",
]
EXERCISES = [
    "Input size given",
    "0.weight is deferred: False",
    "1.weight is deferred: True",
    "0.weight (256, 20) float32 READY",
    "Mismatching sizes",
    "ShapeMismatchError: layer '0' (Dense) got an input of shape (2, 30)",
    "in_units=20",
    "same output as before: True",
    "Inputs of varying size",
    "input layers: Dense(20 -> 64) Dense(30 -> 64)",
    "same trunk weight: True",
    "twin shares trunk's weight: True",
    "share_parameters",
]

TIMEOUT_S = 60  # generous: the tour takes a few seconds, most of it importing torch
_BOX = re.compile(r"[│╭╮╰╯─]")


def flat(text: str) -> str:
    """The text without panel borders, on one line with single spaces (undoes wrapping)."""
    return " ".join(_BOX.sub(" ", text).split())


def assert_tells_the_story(out: str) -> None:
    text = flat(out)
    missing = [s for s in STORY + EXERCISES if s not in text]
    assert not missing, f"missing from the tour: {missing}\n{out}"
    # The steps come in the story's order.
    positions = [text.index(s) for s in ("(256, -1)", "(256, 20)", "Input size given")]
    assert positions == sorted(positions)
    assert text.index("Mismatching sizes") < text.index("Inputs of varying size")


def test_tour_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tour"]) == 0
    out = capsys.readouterr().out
    assert_tells_the_story(out)
    assert "tour stopped" not in out
    assert "Traceback" not in out


def test_tour_shows_exactly_the_code_it_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: every code line shows whole
    assert cli.main(["tour"]) == 0
    out = capsys.readouterr().out
    for step in cli.TOUR:
        for code_line in step.code.splitlines():
            if code_line.strip():
                assert f"│ {code_line}".rstrip() + " " in out, code_line


def test_tour_is_repeatable(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tour"]) == 0
    first = capsys.readouterr().out
    assert cli.main(["tour"]) == 0
    assert capsys.readouterr().out == first


def test_tour_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lateinit", "tour"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert_tells_the_story(result.stdout)
    assert "\x1b[" not in result.stdout  # not a terminal: plain text


def test_tour_as_the_console_script() -> None:
    script = Path(sys.executable).parent / ("lateinit.exe" if os.name == "nt" else "lateinit")
    if not script.exists():
        pytest.skip("the lateinit console script is not installed beside this Python")
    result = subprocess.run(
        [str(script), "tour"], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    assert_tells_the_story(result.stdout)


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["tour", "--bogus"]])
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: lateinit" in err
    assert "tour" in err or "--bogus" in err  # the commands, or what was wrong


def test_usage_error_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lateinit"], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 2
    assert "usage: lateinit" in result.stderr


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "tour" in capsys.readouterr().out


def _run_steps(steps: list[cli.Step], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from rich.console import Console

    status = cli.run_tour(Console(width=200), steps)
    return status, flat(capsys.readouterr().out)


def test_a_step_that_raises_stops_the_tour(capsys: pytest.CaptureFixture[str]) -> None:
    steps = [cli.Step("boom", "x = 1\n{}['missing']", "never shown"), cli.Step("next", "", "")]
    status, out = _run_steps(steps, capsys)
    assert status == 1
    assert "KeyError" in out and "tour stopped" in out and "bug in lateinit" in out
    assert "never shown" not in out and "next" not in out


def test_a_step_missing_its_error_stops_the_tour(capsys: pytest.CaptureFixture[str]) -> None:
    steps = [cli.Step("quiet", "print('fine')", "", raises="ShapeMismatchError")]
    status, out = _run_steps(steps, capsys)
    assert status == 1
    assert "ShapeMismatchError was expected but nothing was raised" in out


def test_a_step_raising_another_error_stops_the_tour(capsys: pytest.CaptureFixture[str]) -> None:
    steps = [cli.Step("wrong", "1 / 0", "", raises="ShapeMismatchError")]
    status, out = _run_steps(steps, capsys)
    assert status == 1
    assert "ShapeMismatchError was expected but ZeroDivisionError was raised" in out


def test_steps_share_one_namespace_and_show_the_last_expression(
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = [
        cli.Step("one", "value = 6 * 7\nprint('printed', value)", ""),
        cli.Step("two", "value + 1", ""),
        cli.Step("three", "None", ""),
    ]
    status, out = _run_steps(steps, capsys)
    assert status == 0
    assert "printed 42" in out and "43" in out
    assert "(nothing printed)" in out  # a last expression of None shows nothing


def test_summary_refuses_an_input_the_model_reads_without_a_batch_dim(capsys):
    """1x3x224 for a 2-D CNN would be read as one unbatched 1-channel image (a wrong
    summary): the first --input dim is the batch, so it exits non-zero naming the layer."""
    from lateinit.cli import main

    assert main(["summary", "lateinit.zoo:resnet18", "--input", "1x3x224"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "layer '0' (Conv2D)" in err and "first (batch) dim" in err, err
    assert main(["summary", "lateinit.zoo:lenet", "--input", "2x1x28x28"]) == 0
