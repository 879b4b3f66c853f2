"""Sharded checkpoints (Hugging Face's model.safetensors.index.json), key_map=, and the
file's dtype for deferred parameters whose dtype was never chosen."""

from __future__ import annotations

import copy
import json
import os
import pickle
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import lateinit
from lateinit import nn
from lateinit.io import ParameterFileError, load_parameters

INDEX = "model.safetensors.index.json"


def net_() -> nn.Sequential:
    """A network that never saw data: every input size is left unset."""
    return nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(6), nn.Dense(3))


def state(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shapes = {
        "0.weight": (8, 5),
        "0.bias": (8,),
        "1.weight": (6, 8),
        "1.bias": (6,),
        "2.weight": (3, 6),
        "2.bias": (3,),
    }
    return {k: torch.randn(s, generator=g).to(dtype) for k, s in shapes.items()}


def write_sharded(
    folder: Any, tensors: dict[str, torch.Tensor], parts: int = 3, index: dict | None = None
) -> tuple[str, list[str]]:
    """Split ``tensors`` over ``parts`` files with safetensors' save_file and write the
    index beside them; returns the index path and the shard paths."""
    os.makedirs(folder, exist_ok=True)
    keys = list(tensors)
    names = [f"model-{i + 1:05d}-of-{parts:05d}.safetensors" for i in range(parts)]
    weight_map = {k: names[i % parts] for i, k in enumerate(keys)}
    for name in names:
        save_file(
            {k: tensors[k] for k in keys if weight_map[k] == name}, os.path.join(folder, name)
        )
    body = index if index is not None else {"metadata": {"total_size": 0}, "weight_map": weight_map}
    path = os.path.join(folder, INDEX)
    with open(path, "w") as fh:
        json.dump(body, fh)
    return path, [os.path.join(folder, n) for n in names]


def snapshot(net: torch.nn.Module) -> list[tuple[Any, ...]]:
    return [
        (n, id(t), lateinit.is_deferred(t), t.dtype, None if lateinit.is_deferred(t) else t.clone())
        for n, t in net.state_dict(keep_vars=True).items()
    ]


def unchanged(before: list[tuple[Any, ...]], net: torch.nn.Module) -> bool:
    after = snapshot(net)
    return all(
        a[:4] == b[:4]
        and (a[4] is None) == (b[4] is None)
        and (a[4] is None or torch.equal(a[4], b[4]))
        for a, b in zip(before, after, strict=True)
    )


def assert_values(net: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    got = net.state_dict()
    assert got.keys() == tensors.keys()
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


# -- 1. sharded checkpoints ---------------------------------------------------------------


@pytest.mark.parametrize("by", ["index", "directory"])
def test_sharded_into_a_deferred_network(tmp_path, by):
    tensors = state()
    index, _ = write_sharded(tmp_path / "ckpt", tensors)
    net = net_()
    net.load_parameters(index if by == "index" else tmp_path / "ckpt")
    assert_values(net, tensors)
    assert net(torch.ones(2, 5)).shape == (2, 3)


def test_directory_with_one_file(tmp_path):
    tensors = state()
    save_file(tensors, str(tmp_path / "weights.safetensors"))
    net = net_().load_parameters(tmp_path)
    assert_values(net, tensors)


def test_sharded_into_a_ready_network_keeps_identity(tmp_path):
    tensors = state()
    index, _ = write_sharded(tmp_path, tensors, parts=2)
    net = net_()
    net(torch.ones(1, 5))
    ids = {k: id(v) for k, v in net.state_dict(keep_vars=True).items()}
    net.load_parameters(index)
    assert_values(net, tensors)
    assert ids == {k: id(v) for k, v in net.state_dict(keep_vars=True).items()}


def test_sharded_lateinit_shards_verify_checksums(tmp_path):
    """Shards written by save_parameters carry checksums: a damaged one names its shard."""
    src = net_()
    src(torch.ones(1, 5))
    # two lateinit files, each a part of the network, plus an index
    nn.Sequential(src[0]).save_parameters(tmp_path / "a.safetensors")  # keys 0.*
    rest = {k: v for k, v in src.state_dict().items() if not k.startswith("0.")}
    save_file(rest, str(tmp_path / "b.safetensors"))
    weight_map = {"0.weight": "a.safetensors", "0.bias": "a.safetensors"}
    weight_map |= dict.fromkeys(rest, "b.safetensors")
    (tmp_path / INDEX).write_text(json.dumps({"weight_map": weight_map}))
    net = net_().load_parameters(tmp_path)
    assert_values(net, src.state_dict())
    raw = bytearray((tmp_path / "a.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "a.safetensors").write_bytes(bytes(raw))
    fresh = net_()
    before = snapshot(fresh)
    with pytest.raises(ParameterFileError, match=r"a\.safetensors.*corrupted"):
        fresh.load_parameters(tmp_path)
    assert unchanged(before, fresh)


@pytest.mark.parametrize("ready", [False, True])
def test_truncated_shard_changes_nothing(tmp_path, ready):
    tensors = state()
    index, shards = write_sharded(tmp_path, tensors)
    with open(shards[-1], "r+b") as fh:
        fh.truncate(os.path.getsize(shards[-1]) - 4)
    net = net_()
    if ready:
        net(torch.ones(1, 5))
    before = snapshot(net)
    with pytest.raises(ParameterFileError, match=os.path.basename(shards[-1])):
        net.load_parameters(index)
    assert unchanged(before, net)


def test_shard_missing_a_key_changes_nothing(tmp_path):
    tensors = state()
    index, shards = write_sharded(tmp_path, tensors)
    # rewrite the last shard without one of its keys; the index still maps it there
    keys = [k for i, k in enumerate(tensors) if i % 3 == 2]
    save_file({k: tensors[k] for k in keys[1:]}, shards[-1])
    net = net_()
    before = snapshot(net)
    with pytest.raises(ParameterFileError, match="disagree") as info:
        net.load_parameters(index)
    message = str(info.value)
    assert os.path.basename(shards[-1]) in message and repr(keys[0]) in message
    assert "does not hold" in message
    assert unchanged(before, net)


def test_shard_holding_a_key_the_index_does_not_map_there(tmp_path):
    tensors = state()
    index, shards = write_sharded(tmp_path, tensors, parts=2)
    body = json.loads(open(index).read())
    body["weight_map"]["2.bias"] = os.path.basename(shards[0])  # really in shard 2
    with open(index, "w") as fh:
        json.dump(body, fh)
    net = net_()
    before = snapshot(net)
    with pytest.raises(ParameterFileError, match="disagree") as info:
        net.load_parameters(index)
    assert "'2.bias'" in str(info.value)
    assert unchanged(before, net)


def test_missing_shard_and_bad_index(tmp_path):
    tensors = state()
    index, shards = write_sharded(tmp_path, tensors)
    os.remove(shards[1])
    net = net_()
    before = snapshot(net)
    with pytest.raises(ParameterFileError, match=os.path.basename(shards[1]) + ".*does not exist"):
        net.load_parameters(index)
    for body in (
        "not json",
        json.dumps({"metadata": {}}),
        json.dumps({"weight_map": {"a": "../x"}}),
    ):
        with open(index, "w") as fh:
            fh.write(body)
        with pytest.raises(ParameterFileError, match="not a valid sharded checkpoint index"):
            net.load_parameters(index)
    assert unchanged(before, net)


def test_directory_without_index_and_several_files(tmp_path):
    tensors = state()
    save_file(tensors, str(tmp_path / "a.safetensors"))
    save_file(tensors, str(tmp_path / "b.safetensors"))
    with pytest.raises(ParameterFileError, match="directory") as info:
        net_().load_parameters(tmp_path)
    assert "'a.safetensors'" in str(info.value) and "'b.safetensors'" in str(info.value)
    assert INDEX in str(info.value)


def test_sharded_progress_is_one_bar(tmp_path, capsys):
    index, _ = write_sharded(tmp_path, state())
    net_().load_parameters(index, progress=True)
    err = capsys.readouterr().err
    assert "3 shards" in err
    assert (
        err.count("loading") >= 1
        and len({line.split(":")[0] for line in err.splitlines() if "loading" in line}) == 1
    )


# -- 2. key_map ---------------------------------------------------------------------------


def hf_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {f"model.layers.{k.split('.')[0]}.proj.{k.split('.')[1]}": v for k, v in tensors.items()}
    out["lm_head.extra"] = torch.zeros(2)
    return out


def test_key_map_regexes_in_order(tmp_path):
    tensors = state()
    index, _ = write_sharded(tmp_path, hf_names(tensors), parts=2)
    net = net_()
    # each pattern works on the result of the previous one; an empty result drops the key
    key_map = {r"^model\.layers\.": "L", r"^L(\d+)\.proj\.": r"\1.", r"^lm_head\..*": ""}
    net.load_parameters(index, key_map=key_map)
    assert_values(net, tensors)


def test_key_map_callable_drops_keys(tmp_path):
    tensors = state()
    path = tmp_path / "one.safetensors"
    save_file(hf_names(tensors), str(path))

    def rename(key: str) -> str | None:
        if key.startswith("lm_head"):
            return None
        _, _, layer, _, what = key.split(".")
        return f"{layer}.{what}"

    net = net_().load_parameters(path, key_map=rename)
    assert_values(net, tensors)


def test_key_map_errors_name_both_keys(tmp_path):
    tensors = state()
    files = hf_names(tensors)
    files["model.layers.1.proj.weight"] = torch.zeros(7, 8)  # wrong shape
    index, _ = write_sharded(tmp_path, files, parts=2)
    key_map = {r"^model\.layers\.(\d+)\.proj\.": r"\1."}
    net = net_()
    net(torch.ones(1, 5))
    before = snapshot(net)
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net.load_parameters(index, key_map=key_map)
    assert "'model.layers.1.proj.weight' (mapped to '1.weight')" in str(info.value)
    files["model.layers.1.proj.weight"] = tensors["1.weight"]
    index, _ = write_sharded(tmp_path / "b", files, parts=2)
    with pytest.raises(ParameterFileError, match="key") as info:
        net.load_parameters(index, key_map=key_map)
    assert "'lm_head.extra'" in str(info.value)  # not renamed: named as in the file
    with pytest.raises(ParameterFileError) as info:
        net.load_parameters(index, key_map={**key_map, r"^lm_head\.extra$": "extra.x"})
    assert "'lm_head.extra' (mapped to 'extra.x')" in str(info.value)
    with pytest.raises(ParameterFileError, match="maps both"):
        net.load_parameters(index, key_map=lambda k: "same")
    assert unchanged(before, net)
    net.load_parameters(index, key_map=key_map, ignore_extra=True)
    assert_values(net, tensors)


def test_key_map_bad_arguments(tmp_path):
    path = tmp_path / "one.safetensors"
    save_file(state(), str(path))
    with pytest.raises(ValueError, match="regular expression"):
        net_().load_parameters(path, key_map={"(": "x"})
    with pytest.raises(TypeError, match="new key"):
        net_().load_parameters(path, key_map=lambda k: 3)
    with pytest.raises(TypeError, match="key_map must be"):
        load_parameters(net_(), path, key_map=3)  # type: ignore[arg-type]


# -- 3. the file's dtype --------------------------------------------------------------------


@pytest.mark.parametrize("sharded", [False, True])
def test_bf16_file_stays_bf16_in_a_network_that_never_saw_data(tmp_path, sharded):
    tensors = state(torch.bfloat16)
    if sharded:
        path, _ = write_sharded(tmp_path, tensors)
    else:
        path = str(tmp_path / "bf16.safetensors")
        save_file(tensors, path)
    net = net_().load_parameters(path)
    assert_values(net, tensors)  # bf16, same values
    assert net(torch.ones(1, 5, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_dtype_argument_overrides_the_file(tmp_path):
    tensors = state(torch.bfloat16)
    path, _ = write_sharded(tmp_path, tensors)
    net = net_().load_parameters(path, dtype=torch.float32)
    for k, v in net.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, tensors[k].float()), k


def test_an_explicit_dtype_is_kept(tmp_path):
    tensors = state(torch.bfloat16)
    path = str(tmp_path / "bf16.safetensors")
    save_file(tensors, path)
    net = nn.Sequential(nn.Dense(8, dtype=torch.float64), nn.Dense(6), nn.Dense(3))
    net.load_parameters(path)
    assert net[0].weight.dtype == torch.float64
    assert torch.equal(net[0].weight, tensors["0.weight"].double())
    assert net[1].weight.dtype == torch.bfloat16  # never chosen: the file's
    net = net_()
    net.initialize(dtype=torch.float16)
    net.load_parameters(path)
    assert {v.dtype for v in net.state_dict().values()} == {torch.float16}
    net = net_().to(torch.float64)
    net.load_parameters(path)
    assert {v.dtype for v in net.state_dict().values()} == {torch.float64}
    net = net_()
    net[2].half()
    net.load_parameters(path)
    assert net[2].weight.dtype == torch.float16 and net[0].weight.dtype == torch.bfloat16


def test_dtype_explicit_survives_copies():
    net = nn.Sequential(nn.Dense(8, dtype=torch.float64), nn.Dense(3))
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert other[0].weight.record.dtype_explicit
        assert not other[1].weight.record.dtype_explicit


def test_ready_network_keeps_its_dtype(tmp_path):
    tensors = state(torch.bfloat16)
    path = str(tmp_path / "bf16.safetensors")
    save_file(tensors, path)
    net = net_()
    net(torch.ones(1, 5))
    net.load_parameters(path)
    assert {v.dtype for v in net.state_dict().values()} == {torch.float32}
