"""progress= on initialize, save_parameters and load_parameters (lateinit.progress):
a bar on stderr, never anything on stdout; automatic only on a terminal after 2 s."""

from __future__ import annotations

import io
import os

import pytest
import torch

from lateinit import nn, progress


def _net():
    return nn.Sequential(nn.Dense(256, in_units=128), nn.Dense(10))


def _all_three(path, **kw):
    net = _net()
    net.initialize(**kw)
    net(torch.ones(1, 128))
    net.save_parameters(path, **kw)
    nn.Sequential(nn.Dense(256), nn.Dense(10)).load_parameters(path, **kw)


def test_progress_true_draws_bars_on_stderr_only(tmp_path, capsys):
    _all_three(os.fspath(tmp_path / "n.safetensors"), progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    for what in ("initializing", "saving n.safetensors", "loading n.safetensors"):
        assert what in err, err
    assert "MB" in err or "kB" in err


@pytest.mark.parametrize("setting", [None, False])
def test_no_bar_for_short_work_or_when_turned_off(tmp_path, capsys, setting):
    _all_three(os.fspath(tmp_path / "n.safetensors"), progress=setting)
    assert capsys.readouterr() == ("", "")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_automatic_bar_appears_on_a_terminal_once_work_is_long(monkeypatch):
    monkeypatch.setattr(progress, "AUTO_DELAY", 0.0)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress.Progress(10, "working") as bar:
        bar.advance(5)
        bar.advance(5)
    assert "working" in terminal.getvalue()
    piped = io.StringIO()  # not a terminal: silent even when long
    monkeypatch.setattr("sys.stderr", piped)
    with progress.Progress(10, "working") as bar:
        bar.advance(10)
    assert piped.getvalue() == ""


def test_progress_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        _net().initialize(progress="yes")
