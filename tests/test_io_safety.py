"""Parameter files under races, faults and bad input: a load reads one open file (a
concurrent save never mixes two files), values are checked against per-tensor checksums,
every failure leaves the network as it was, READY tensors written are seen by autograd,
and the path given may be a directory, unreadable, a symlink or a long name.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import weakref

import pytest
import torch
import xxhash
from safetensors import safe_open
from safetensors.torch import save_file

import lateinit
import lateinit.io as lio
from lateinit import nn
from lateinit.io import ParameterFileError
from test_io import X, assert_unchanged, full_snapshot, small_net


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = small_net()
    net(X)
    net.eval()
    path = tmp_path / "net.safetensors"
    net.save_parameters(path)
    return net, path


def _header(path) -> tuple[int, dict]:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return 8 + length, json.loads(data[8 : 8 + length])


def _partly_ready(width: int = 4) -> nn.Sequential:
    """Layer 0 READY (read in place), layer 1's weight deferred (read into new memory)."""
    return nn.Sequential(nn.Dense(width, in_units=3), nn.Dense(2)).initialize()


# -- 1. a load racing a save reads one file ------------------------------------------------


def _filled(value: float) -> nn.Sequential:
    net = nn.Sequential(nn.Dense(256, in_units=256), nn.Dense(256), nn.Dense(8))
    net.infer_shape((1, 256))
    net.initialize()
    with torch.no_grad():
        for t in net.state_dict(keep_vars=True).values():
            t.fill_(value)
    return net


def test_load_racing_saves_never_mixes_two_files(tmp_path):
    """One thread saves all-ones / all-twos networks (same shapes) to one path in turn;
    another loads it in a loop into a READY network whose first layer is float64 (its
    values converted into new memory) and whose others are float32 (read in place): every
    load must hold one file's values entirely."""
    path = tmp_path / "shared.safetensors"
    ones, twos = _filled(1.0), _filled(2.0)
    ones.save_parameters(path, sync=False)
    target = _filled(0.0)
    target[0].double()
    stop = threading.Event()
    errors: list[BaseException] = []

    def saver() -> None:
        try:
            while not stop.is_set():
                for net in (ones, twos):
                    lio.save_parameters(net, path, sync=False)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    thread = threading.Thread(target=saver, daemon=True)
    thread.start()
    loads, mixed = 0, []
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline and loads < 5000 and not errors:
            target.load_parameters(path)
            loads += 1
            seen = {(float(t.min()), float(t.max())) for t in target.state_dict().values()}
            if seen not in ({(1.0, 1.0)}, {(2.0, 2.0)}):
                mixed.append(seen)
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert target[0].weight.dtype == torch.float64 and target[1].weight.dtype == torch.float32
    assert loads >= 20
    assert not mixed, f"{len(mixed)} of {loads} loads mixed two files: {mixed[:3]}"


# -- 2. loading into READY tensors is seen by autograd --------------------------------------


@pytest.mark.parametrize(
    "how",
    ["in place", "converted dtype", "load_state_dict (reference)"],
)
def test_load_into_ready_tensors_is_seen_by_a_pending_backward(saved, how):
    _, path = saved
    torch.manual_seed(7)
    net = small_net().eval()
    net(X)
    loss = net(X).square().sum()  # a pending backward through the old values
    if how == "in place":
        net.load_parameters(path)
    elif how == "converted dtype":
        net.load_parameters(path, dtype=torch.float64)
    else:
        net.load_state_dict(small_net().eval().load_parameters(path).state_dict())
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    if how != "converted dtype":
        net(X).square().sum().backward()  # a new forward/backward works


# -- 3. checksums -------------------------------------------------------------------------------


def test_saved_file_holds_a_checksum_of_every_tensor(saved):
    net, path = saved
    with safe_open(path, "pt") as f:
        sums = json.loads(f.metadata()[lio._CHECKSUMS_KEY])
        assert sums.keys() == set(f.keys()) == set(net.state_dict())
        for key in f.keys():
            raw = f.get_tensor(key).contiguous().numpy().tobytes()
            assert sums[key] == xxhash.xxh3_64_hexdigest(raw), key


def _key_at(header: dict, data_offset: int) -> str:
    for key, entry in header.items():
        if key != "__metadata__":
            begin, end = entry["data_offsets"]
            if begin <= data_offset < end:
                return key
    raise AssertionError(data_offset)


@pytest.mark.parametrize("target", ["deferred", "ready", "ready converted"])
def test_flipped_bit_in_tensor_data_is_refused_and_changes_nothing(saved, tmp_path, target):
    _, path = saved
    data = path.read_bytes()
    start, header = _header(path)
    bad = tmp_path / "flipped.safetensors"
    size = len(data) - start
    for offset in (0, 1, size // 3, size // 2, size - 5, size - 1):
        for mask in (0x01, 0x80):
            flipped = bytearray(data)
            flipped[start + offset] ^= mask
            bad.write_bytes(bytes(flipped))
            net = small_net()
            if target != "deferred":
                net(X)
            before = full_snapshot(net)
            kwargs = {"dtype": torch.float64} if target == "ready converted" else {}
            with pytest.raises(ParameterFileError) as info:
                net.load_parameters(bad, **kwargs)
            message = str(info.value)
            assert str(bad) in message and "corrupted" in message, message
            assert repr(_key_at(header, offset)) in message, (offset, message)
            assert "Nothing was changed" in message
            assert_unchanged(before, net)
            lio.load_parameters(net, bad, verify=False, **kwargs)  # the escape hatch


def _multi_chunk(tmp_path, monkeypatch) -> tuple[nn.Sequential, object, int, dict]:
    """A file whose '0.weight' (4800 bytes) spans five 1 KB chunks, the last partial."""
    monkeypatch.setattr(lio, "_CHUNK", 1024)  # hashing chunk (saving, reading new memory)
    monkeypatch.setattr(lio, "_VERIFY_BUFFER", 1024)  # first pass over READY tensors
    torch.manual_seed(0)
    donor = nn.Sequential(nn.Dense(40, in_units=30), nn.Dense(5))
    donor(torch.ones(1, 30))
    path = tmp_path / "chunks.safetensors"
    donor.save_parameters(path)
    start, header = _header(path)
    return donor, path, start, header


def _chunky_target(target: str) -> nn.Sequential:
    net = nn.Sequential(nn.Dense(40), nn.Dense(5))  # deferred
    if target != "deferred":
        net(torch.ones(1, 30))  # READY, its own values
    return net


@pytest.mark.parametrize("target", ["deferred", "ready", "ready converted"])
def test_flipped_bit_in_any_chunk_of_a_tensor_is_refused(tmp_path, monkeypatch, target):
    """Values are hashed chunk by chunk (as read into new memory, or in the first pass
    over READY tensors): a flip in the first, a middle, or the last (partial) chunk of a
    tensor spanning several, or on either side of a chunk boundary, is refused naming
    the tensor, with nothing changed; the intact file then loads every value."""
    donor, path, start, header = _multi_chunk(tmp_path, monkeypatch)
    begin, end = header["0.weight"]["data_offsets"]
    assert end - begin == 4800
    data = path.read_bytes()
    bad = tmp_path / "flipped.safetensors"
    kwargs = {"dtype": torch.float64} if target == "ready converted" else {}
    for offset in (begin, begin + 1023, begin + 1024, begin + 2500, end - 704, end - 1):
        flipped = bytearray(data)
        flipped[start + offset] ^= 0x10
        bad.write_bytes(bytes(flipped))
        net = _chunky_target(target)
        before = full_snapshot(net)
        with pytest.raises(ParameterFileError, match="corrupted") as info:
            net.load_parameters(bad, **kwargs)
        message = str(info.value)
        assert "'0.weight'" in message and "Nothing was changed" in message, (offset, message)
        assert "'0.bias'" not in message and "'1.weight'" not in message, message
        assert_unchanged(before, net)
    net = _chunky_target(target)
    net.load_parameters(path, **kwargs)
    for name, value in donor.state_dict().items():
        assert torch.equal(net.state_dict()[name], value.to(net.state_dict()[name].dtype)), name


@pytest.mark.parametrize("target", ["deferred", "ready"])
def test_file_cut_short_while_being_read_changes_nothing(tmp_path, monkeypatch, target):
    """Another process truncating the file in place after its header was checked: the
    read comes up short in the middle of a tensor (the hashed read into new memory, or
    the first pass over READY tensors), which is an error naming the file, with nothing
    changed."""
    _, path, start, header = _multi_chunk(tmp_path, monkeypatch)
    begin, _ = header["0.weight"]["data_offsets"]
    real_index = lio._read_index

    def index_then_truncate(fh, name):
        index = real_index(fh, name)
        os.truncate(name, start + begin + 2500)  # part-way through '0.weight'
        return index

    monkeypatch.setattr(lio, "_read_index", index_then_truncate)
    net = _chunky_target(target)
    before = full_snapshot(net)
    with pytest.raises(ParameterFileError, match="ended early") as info:
        net.load_parameters(path)
    assert str(path) in str(info.value)
    assert "Nothing was changed" in str(info.value) or "nothing was changed" in str(info.value)
    assert_unchanged(before, net)


def test_files_without_checksums_still_load(saved, tmp_path):
    net, _ = saved
    plain = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, plain)
    fresh = small_net().load_parameters(plain)
    for (k, a), b in zip(net.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    ours = tmp_path / "unchecked.safetensors"
    lio.save_parameters(net, ours, checksums=False)
    with safe_open(ours, "pt") as f:
        assert lio._CHECKSUMS_KEY not in f.metadata()
    lio.load_parameters(small_net(), ours)


def test_damaged_checksum_metadata_is_refused(saved, tmp_path):
    net, path = saved
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    sums = json.loads(metadata[lio._CHECKSUMS_KEY])
    for label, value in [
        ("not json", "{oops"),
        ("a key missing", json.dumps({k: v for k, v in sums.items() if k != "0.weight"})),
        ("not hex", json.dumps({**sums, "0.weight": "z" * 16})),
        ("a wrong digest", json.dumps({**sums, "4.bias": "0" * 16})),
    ]:
        bad = tmp_path / "meta.safetensors"
        save_file(tensors, bad, {**metadata, lio._CHECKSUMS_KEY: value})
        fresh = small_net()
        before = full_snapshot(fresh)
        with pytest.raises(ParameterFileError, match="corrupted") as info:
            fresh.load_parameters(bad)
        assert str(bad) in str(info.value), label
        if label == "a wrong digest":
            assert "'4.bias'" in str(info.value)
        assert_unchanged(before, fresh)


# -- 4. every failure leaves the network as it was ---------------------------------------------


def test_meta_load_into_partly_ready_network_is_all_or_nothing(saved, tmp_path):
    """Moving READY tensors to meta used to fail after the deferred ones had been
    committed, leaving '1.weight' READY on meta. Now it loads all of them onto meta; a
    READY tensor that cannot be moved makes the whole load fail with nothing changed."""
    donor = _partly_ready()
    donor(torch.ones(1, 3))
    path = tmp_path / "partly.safetensors"
    donor.save_parameters(path)

    net = _partly_ready()
    ids = {n: id(t) for n, t in net.state_dict(keep_vars=True).items()}
    net.load_parameters(path, device="meta")
    for name, t in net.state_dict(keep_vars=True).items():
        assert not lateinit.is_deferred(t) and t.device.type == "meta", name
        assert id(t) == ids[name] and t.shape == donor.state_dict()[name].shape, name

    net = _partly_ready()
    keep = weakref.ref(net[1].bias)  # torch cannot swap a tensor that has a weakref
    before = full_snapshot(net)
    with pytest.raises(RuntimeError, match=r"'1.bias'.*Nothing was changed"):
        net.load_parameters(path, device="meta")
    assert keep() is net[1].bias
    assert_unchanged(before, net)
    assert lateinit.is_deferred(net[1].weight)
    net(torch.ones(1, 3))  # still a working network


def test_ready_on_meta_loads_onto_a_real_device(saved, tmp_path):
    donor = _partly_ready()
    donor(torch.ones(1, 3))
    path = tmp_path / "partly.safetensors"
    donor.save_parameters(path)
    net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    net.initialize(device="meta")
    assert net[0].weight.device.type == "meta" and not lateinit.is_deferred(net[0].weight)
    weight = net[0].weight
    net.load_parameters(path, device="cpu")
    assert net[0].weight is weight and weight.device.type == "cpu"
    assert torch.equal(net(torch.ones(1, 3)), donor(torch.ones(1, 3)))


def test_read_error_in_place_defers_the_deferred_ones_again(tmp_path, monkeypatch):
    """An OS read error on the last step (reading straight into READY tensors) used to
    leave the deferred tensors READY; now they are deferred again."""
    donor = _partly_ready()
    donor(torch.ones(1, 3))
    path = tmp_path / "partly.safetensors"
    donor.save_parameters(path)
    real_read = lio._read_into

    def failing_read(fh, offset, nbytes, out, hasher=None):
        if hasher is None:  # the in-place reads (the deferred ones are hashed as read)
            raise OSError("disk went away")
        real_read(fh, offset, nbytes, out, hasher)

    monkeypatch.setattr(lio, "_read_into", failing_read)
    net = _partly_ready()
    before = full_snapshot(net)
    with pytest.raises(ParameterFileError, match=r"disk went away\): nothing was changed"):
        net.load_parameters(path)
    assert_unchanged(before, net)


# -- 5. directories and unreadable files ---------------------------------------------------------


def test_loading_a_directory_is_a_clear_error(saved, tmp_path):
    net = small_net()
    before = full_snapshot(net)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ParameterFileError, match="directory") as info:
        net.load_parameters(empty)
    assert str(empty) in str(info.value) and "no .safetensors file" in str(info.value)
    assert "Fix:" in str(info.value)
    (tmp_path / "other.safetensors").write_bytes((tmp_path / "net.safetensors").read_bytes())
    with pytest.raises(ParameterFileError, match="directory") as info:
        net.load_parameters(tmp_path)  # two files, no index: both named in the fix
    assert "'net.safetensors'" in str(info.value) and "'other.safetensors'" in str(info.value)
    assert "model.safetensors.index.json" in str(info.value)
    assert_unchanged(before, net)


def test_unreadable_file_is_a_clear_error(saved, monkeypatch):
    _, path = saved
    net = small_net()
    before = full_snapshot(net)
    real_open = os.open

    def refusing_open(file, flags, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(ParameterFileError, match="permission denied") as info:
        net.load_parameters(path)
    assert str(path) in str(info.value) and "chmod" in str(info.value)
    monkeypatch.undo()
    assert_unchanged(before, net)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_chmod_000_file_is_a_clear_error(saved):
    _, path = saved
    os.chmod(path, 0)
    try:
        with pytest.raises(ParameterFileError, match="permission denied"):
            small_net().load_parameters(path)
    finally:
        os.chmod(path, 0o644)


def test_malformed_headers_are_refused_naming_the_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    start, header = _header(path)
    body = data[start:]

    def file_with(head: dict | bytes) -> bytes:
        raw = head if isinstance(head, bytes) else json.dumps(head).encode()
        return len(raw).to_bytes(8, "little") + raw + body

    first = next(k for k in header if k != "__metadata__")
    cases = {
        "duplicate key": file_with(
            b'{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
            b'"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
        ),
        "negative dim": file_with({**header, first: {**header[first], "shape": [-1]}}),
        "bad dtype": file_with({**header, first: {**header[first], "dtype": "F33"}}),
        "offsets overlap": file_with({**header, first: {**header[first], "data_offsets": [0, 0]}}),
        "metadata not strings": file_with({**header, "__metadata__": {"a": 1}}),
        "not an object": file_with(b"[1, 2, 3]"),
        "huge header length": (2**40).to_bytes(8, "little") + data[8:],
        "not utf-8": file_with(b'{"\xff": 1}'),
    }
    target = small_net()
    before = full_snapshot(target)
    bad = tmp_path / "bad.safetensors"
    for label, content in cases.items():
        bad.write_bytes(content)
        with pytest.raises(ParameterFileError, match="not a valid safetensors") as info:
            target.load_parameters(bad)
        assert str(bad) in str(info.value), label
        assert_unchanged(before, target)


# -- 6. saving: symlinks, long names, leftovers ----------------------------------------------


def test_saving_through_a_symlink_updates_the_file_it_points_to(saved, tmp_path):
    net, path = saved
    real = tmp_path / "real.safetensors"
    real.write_bytes(b"old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    net.save_parameters(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == path.read_bytes()
    assert os.stat(real).st_mode & 0o777 == 0o640
    assert torch.equal(small_net().load_parameters(link)[3].weight, net[3].weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, real.name, link.name])


def test_a_252_character_file_name_works(saved, tmp_path):
    net, _ = saved
    name = "n" * (252 - len(".safetensors")) + ".safetensors"
    path = tmp_path / name
    net.save_parameters(path)
    net.save_parameters(path)  # replacing it too
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "net.safetensors"])
    assert torch.equal(small_net().load_parameters(path)[3].weight, net[3].weight)


@pytest.mark.parametrize("length", [20, 252])
def test_a_temp_file_left_by_a_killed_save_is_removed_by_the_next_save(saved, length):
    net, path = saved
    folder = path.parent
    name = "m" * (length - len(".safetensors")) + ".safetensors"
    prefix = lio._temp_prefix(name)
    left = folder / f"{prefix}0123456789ab.tmp"  # a save killed mid-write left this
    left.write_bytes(b"\x10\0\0\0\0\0\0\0{partial")
    busy = folder / f"{prefix}ba9876543210.tmp"  # a live save is writing this one
    busy.write_bytes(b"")
    other = folder / ".other.safetensors.0123456789ab.tmp"  # another file's
    other.write_bytes(b"")
    with open(busy, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        net.save_parameters(folder / name)
        assert not left.exists()
        assert busy.exists() and other.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [path.name, name, busy.name, other.name]
    )


def test_concurrent_saves_of_one_path_all_succeed(saved):
    net, path = saved
    errors: list[BaseException] = []

    def save_some() -> None:
        try:
            for _ in range(15):
                net.save_parameters(path, sync=False)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=save_some) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert torch.equal(small_net().load_parameters(path)[3].weight, net[3].weight)
