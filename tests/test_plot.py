"""Pictures of networks: ``net.plot(...)``, ``lateinit.plot.plot`` and ``lateinit plot``."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import torch

import lateinit
from lateinit import Spec, cli, nn, zoo
from lateinit.plot import plot

SVG = "{http://www.w3.org/2000/svg}"


def small_net() -> nn.Sequential:
    # Dense(8) on 5 features: 5*8 + 8 = 48 parameters; Dense(2) on 8: 8*2 + 2 = 18.
    return nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))


def texts(svg: str) -> list[str]:
    """Every line of text drawn, in document order (the XML must parse)."""
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def boxes(svg: str) -> dict[str, tuple[str, ET.Element]]:
    """data-path -> (kind, group) for every layer box and frame."""
    return {
        g.get("data-path", ""): (g.get("class", ""), g)
        for g in ET.fromstring(svg).iter(f"{SVG}g")
        if g.get("data-path")
    }


def rect(group: ET.Element) -> tuple[float, float, float, float]:
    r = group.find(f"{SVG}rect")
    assert r is not None
    return tuple(float(r.get(k, "nan")) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]


def states(net: torch.nn.Module) -> list[tuple[Any, ...]]:
    """Each parameter's and buffer's identity, class, lifecycle state and shape."""
    tensors = [*net.named_parameters(), *net.named_buffers()]
    return [(n, id(t), type(t), str(lateinit.state(t)), tuple(t.shape)) for n, t in tensors]


# ---------------------------------------------------------------------------------------
# The picture.


def test_every_layer_with_its_shape_and_count() -> None:
    svg = small_net().plot(Spec((None, 5)))
    lines = texts(svg)
    assert lines[:2] == ["Sequential on (None, 5)", "66 parameters · 264 B (float32)"]
    assert lines[2:] == [
        "input",
        "(None, 5)",
        "0 · Dense(5 -> 8, relu)",
        "(None, 8) · 48 params",
        "1 · Dense(8 -> 2)",
        "(None, 2) · 18 params",
        "output",
        "(None, 2)",
    ]
    found = boxes(svg)
    assert {p: kind for p, (kind, _) in found.items()} == {"0": "layer", "1": "layer"}
    # top to bottom, one arrow between consecutive boxes (input, 0, 1, output)
    assert rect(found["0"][1])[1] < rect(found["1"][1])[1]
    assert len(list(ET.fromstring(svg).iter(f"{SVG}line"))) == 3


def test_nested_containers_are_frames_around_their_children() -> None:
    net = nn.Sequential(nn.Dense(4), nn.Sequential(nn.Dense(3), nn.Dense(2)))
    svg = plot(net, (2, 6))
    found = boxes(svg)
    assert found["1"][0] == "frame" and found["1.0"][0] == "layer" == found["1.1"][0]
    frame = found["1"][1]
    assert {g.get("data-path") for g in frame.iter(f"{SVG}g")} == {"1", "1.0", "1.1"}
    assert frame.findtext(f"{SVG}text") == "1 · Sequential"
    fx, fy, fw, fh = rect(frame)
    for child in ("1.0", "1.1"):
        x, y, w, h = rect(found[child][1])
        assert fx < x and x + w < fx + fw and fy < y and y + h < fy + fh
    assert f"(2, 2) · {4 * 3 + 3 + 3 * 2 + 2} params" in texts(svg)  # its subtree's count


def test_max_depth_limits_the_boxes() -> None:
    net = zoo.resnet18()
    spec = Spec((None, 3, 64, 64))
    full, shallow, one = plot(net, spec), plot(net, spec, max_depth=1), plot(net, spec, max_depth=0)
    assert "4.body.0" in boxes(full) and boxes(full)["4"][0] == "frame"
    assert set(boxes(shallow)) == {str(i) for i in range(len(net))}
    assert boxes(shallow)["4"][0] == "layer"  # collapsed: its subtree's count in one box
    assert "(None, 64, 16, 16) · 73,984 params" in texts(shallow)
    assert texts(one)[2:] == [
        "input",
        "(None, 3, 64, 64)",
        "Sequential",
        "(None, 1000) · 11,689,512 params",
        "output",
        "(None, 1000)",
    ]


def test_boxes_follow_the_call_order() -> None:
    class Net(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.late = nn.Dense(2)  # registered first, called second
            self.early = nn.Dense(3)
            self.unused = nn.Dense(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.late(self.early(x))

    lines = texts(plot(Net(), (1, 5)))
    order = [line.split(" · ")[0] for line in lines if "Dense" in line]
    assert order == ["early", "late", "unused"]
    assert "not called · ? params" in lines  # never called: its input size is unknown


def test_without_inputs_unknown_shapes_show_a_question_mark() -> None:
    lines = texts(nn.Sequential(nn.Dense(4), nn.Dense(2, in_units=4)).plot())
    assert lines[0] == "Sequential"
    assert lines[1].startswith("? parameters (1 with unknown dims")
    assert lines[2:] == [
        "0 · Dense(-1 -> 4)",
        "shape ? · ? params",
        "1 · Dense(4 -> 2)",
        "shape ? · 10 params",
    ]


def test_show_shapes_and_show_params() -> None:
    lines = texts(small_net().plot(Spec((None, 5)), show_shapes=False))
    assert "48 params" in lines and "(None, 8)" not in " ".join(lines[4:-2])
    lines = texts(small_net().plot(Spec((None, 5)), show_params=False))
    assert "(None, 8)" in lines and not any("params" in line for line in lines[2:])
    lines = texts(small_net().plot(Spec((None, 5)), show_shapes=False, show_params=False))
    assert lines[4:6] == ["0 · Dense(5 -> 8, relu)", "1 · Dense(8 -> 2)"]


def test_names_are_escaped_and_control_characters_dropped() -> None:
    class Odd(nn.Block):
        def extra_repr(self) -> str:
            return 'a < b & "c"\nnext\x00line'

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    net = nn.Sequential()
    net.add_module("x<y&z", nn.Dense(2))
    net.add_module("odd", Odd())
    svg = net.plot((1, 3))
    lines = texts(svg)  # parses
    assert "x<y&z · Dense(3 -> 2)" in lines
    assert 'odd · Odd(a < b & "c" next line)' in lines
    assert "x&lt;y&amp;z" in svg


def test_long_labels_are_cut_with_the_whole_label_as_tooltip() -> None:
    svg = zoo.resnet18().plot((2, 3, 32, 32))
    group = boxes(svg)["0"][1]
    label = group.findall(f"{SVG}text")[0].text or ""
    assert label.endswith("…") and len(label) == 64
    assert group.findtext(f"{SVG}title") == (
        "0 · Conv2D(3 -> 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)\n"
        "(2, 64, 16, 16) · 9,408 params"
    )


def test_any_torch_module_and_a_clear_type_error() -> None:
    svg = plot(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()), (2, 3))
    assert "0 · Linear(in_features=3, out_features=4, bias=True)" in texts(svg)
    lazy = torch.nn.Sequential(torch.nn.LazyLinear(4))  # unknown, as in its summary
    assert texts(plot(lazy, (2, 3)))[1] == "? parameters (2 with unknown dims)"
    with pytest.raises(TypeError, match=r"expects a torch\.nn\.Module"):
        plot("not a network", (2, 3))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# Inspecting never mutates.


def test_a_declared_network_stays_declared() -> None:
    net = zoo.resnet18()  # BatchNorm buffers too
    before = states(net)
    assert {s[3] for s in before} == {"DECLARED", "SHAPED"}
    forwards = {id(m): m.__dict__.get("forward") for m in net.modules()}
    rng = torch.random.get_rng_state()
    svg = net.plot(Spec((None, 3, 32, 32)))
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert "11,689,512 parameters · 44.6 MiB (float32)" in texts(svg)
    assert states(net) == before
    assert {id(m): m.__dict__.get("forward") for m in net.modules()} == forwards
    assert lateinit.state(net[0].weight) == lateinit.State.DECLARED
    net(torch.rand(2, 3, 32, 32))  # and it still takes its first batch as usual
    assert all(lateinit.state(p) == lateinit.State.READY for p in net.parameters())


def test_a_7b_llama_from_a_spec_in_well_under_seconds() -> None:
    net = zoo.llama()
    before = states(net)
    plot(nn.Dense(2), (1, 3))  # warm up: torch's first meta pass imports and caches
    start = time.perf_counter()
    svg = net.plot(Spec((1, 16), torch.int64))  # every one of its 389 modules
    elapsed = time.perf_counter() - start
    assert elapsed < 5, elapsed  # about 0.05 s; loose for a loaded machine
    assert texts(svg)[:2] == [
        "Llama on (1, 16) int64",
        "6,738,415,616 parameters · 25.1 GiB (float32)",
    ]
    assert "(1, 16, 32000) · 131,072,000 params" in texts(svg)
    assert states(net) == before


def test_a_real_batch_and_a_ready_network() -> None:
    net = small_net()
    before = states(net)
    svg = net.plot(torch.rand(3, 5))
    assert "(3, 8) · 48 params" in texts(svg)
    assert states(net) == before  # a real batch is only read for its shape
    net.initialize()
    net(torch.rand(2, 5))
    values = [p.detach().clone() for p in net.parameters()]
    ready = states(net)
    assert "(4, 2) · 18 params" in texts(net.plot(torch.rand(4, 5)))
    assert states(net) == ready
    assert all(torch.equal(a, b) for a, b in zip(values, net.parameters(), strict=True))


# ---------------------------------------------------------------------------------------
# Files.


def test_path_writes_the_svg(tmp_path: Path) -> None:
    target = tmp_path / "net.svg"
    svg = small_net().plot(Spec((None, 5)), path=target)
    assert target.read_text(encoding="utf-8") == svg
    upper = tmp_path / "NET.SVG"
    small_net().plot(Spec((None, 5)), path=str(upper))
    assert upper.exists()


@pytest.mark.parametrize(("name", "fixed"), [("net.png", "net.svg"), ("net", "net.svg")])
def test_another_suffix_is_refused_and_nothing_is_written(
    tmp_path: Path, name: str, fixed: str
) -> None:
    net = small_net()
    before = states(net)
    fix = rf"Fix: give a path ending in \.svg, such as '{re.escape(str(tmp_path / fixed))}'"
    with pytest.raises(ValueError, match=rf"writes SVG only, and .*{name}' does not .*{fix}"):
        net.plot(Spec((None, 5)), path=tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    assert states(net) == before


def test_the_suffix_error_names_the_fixed_path() -> None:
    with pytest.raises(ValueError, match=r"such as 'model\.svg'"):
        small_net().plot((1, 5), path="model.pdf")


# ---------------------------------------------------------------------------------------
# The zoo.


def test_zoo_models_render() -> None:
    lines = texts(zoo.resnet18(num_classes=10).plot((1, 3, 64, 64)))
    assert any(line.startswith("4.body.0 · Conv2D(64 -> 64, kernel_size=(3, 3)") for line in lines)
    assert "(1, 10)" in lines
    tiny = zoo.llama(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    lines = texts(tiny.plot(Spec((2, 8), torch.int64)))
    assert "layers.1.attention.wq · Dense(32 -> 32)" in lines
    assert "(2, 8, 100)" in lines


# ---------------------------------------------------------------------------------------
# lateinit plot


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(["plot", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "resnet.svg"
    argv = ["lateinit.zoo:resnet18", "--input", "1x3x64x64", "--depth", "1", "-o", str(target)]
    status, out, err = run_cli(argv, capsys)
    assert status == 0, err
    assert out == "" and err == ""
    lines = texts(target.read_text(encoding="utf-8"))
    assert lines[:2] == [
        "Sequential on (1, 3, 64, 64)",
        "11,689,512 parameters · 44.6 MiB (float32)",
    ]
    assert not any(line.startswith("4.body") for line in lines)  # --depth 1


def test_cli_writes_stdout_with_kwargs_and_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    kwargs = '{"vocab_size": 100, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64}'
    argv = ["lateinit.zoo:llama", "--kwargs", kwargs, "--input", "Nx8:int64", "--dtype", "bfloat16"]
    status, out, err = run_cli(argv, capsys)
    assert status == 0, err
    lines = texts(out)
    assert lines[0] == "Llama on (None, 8) int64"
    assert lines[1].endswith("(bfloat16)")
    assert "(None, 8, 100) bfloat16" in lines


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["nosuchmodule_xyz:build"], "no module named 'nosuchmodule_xyz'"),
        (["lateinit.zoo:nope"], "has no attribute 'nope'"),
        (["lateinit.zoo:mlp", "--input", "2xa"], "'a' is not a size"),
        (["lateinit.zoo:mlp", "--kwargs", "{bad"], "is not valid JSON"),
        (["lateinit.zoo:resnet18", "--input", "2x20"], "ShapeMismatchError: layer '0'"),
        (["lateinit.zoo:llama", "--input", "1x16"], "1x16:int64"),
        (
            ["lateinit.zoo:mlp", "--input", "2x20", "-o", "net.png"],
            "Fix: give a path ending in .svg",
        ),
        (
            ["lateinit.zoo:mlp", "-o", "no/such/dir/net.svg"],
            "cannot write -o 'no/such/dir/net.svg'",
        ),
    ],
)
def test_cli_errors_are_one_clear_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(argv, capsys)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("lateinit plot: error: ")
    assert expected in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_help_lists_plot(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "plot" in capsys.readouterr().out
    assert cli.main(["plot", "--help"]) == 0
    out = capsys.readouterr().out
    assert "MODULE:FACTORY" in out and "--output" in out and "--depth" in out
