"""Parameter files: save_parameters / load_parameters (safetensors), state_dict.

Loading is all or nothing: every bad file or mismatch leaves the network exactly as it
was (identity, class, state, shape, values of every parameter and buffer).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from safetensors import safe_open
from safetensors.torch import save_file

import lateinit
import lateinit.io as lio
from lateinit import nn, zoo
from lateinit.io import ParameterFileError
from test_random_stacks import stacks


def full_snapshot(module: torch.nn.Module) -> dict[str, tuple[Any, ...]]:
    """Identity, class, state, shape, dtype, device and values of every parameter and
    buffer (under every name), and which blocks still carry their first-call forward."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, t in module.state_dict(keep_vars=True).items():
        values = None if lateinit.is_deferred(t) else t.detach().clone()
        out[name] = (id(t), type(t), lateinit.is_deferred(t), tuple(t.shape), t.dtype, t.device)
        out[name + "#values"] = (values,)
    out["#armed"] = tuple(name for name, m in module.named_modules() if "forward" in m.__dict__)
    return out


def assert_unchanged(before: dict[str, tuple[Any, ...]], module: torch.nn.Module) -> None:
    after = full_snapshot(module)
    assert before.keys() == after.keys()
    for name, a in before.items():
        b = after[name]
        if name.endswith("#values"):
            if a[0] is None:
                assert b[0] is None, name
            else:
                assert b[0] is not None and torch.equal(a[0], b[0]), f"{name} changed"
        else:
            assert a == b, f"{name}: {a} != {b}"


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2D(4, 3, activation="relu"),
        nn.BatchNorm(),
        nn.Flatten(),
        nn.Dense(8, activation="relu"),
        nn.Dense(3),
    )


X = torch.randn(2, 3, 6, 6)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = small_net()
    net(X)  # BatchNorm running stats move too
    net.eval()
    path = tmp_path / "net.safetensors"
    net.save_parameters(path)
    return net, path


# -- round trips --------------------------------------------------------------------------

ZOO = [
    ("mlp", lambda: zoo.mlp(hidden=(32, 16)), (2, 1, 28, 28)),
    ("lenet", zoo.lenet, (2, 1, 28, 28)),
    ("alexnet", zoo.alexnet, (1, 3, 224, 224)),
    ("vgg11", zoo.vgg11, (1, 3, 64, 64)),
    ("nin", zoo.nin, (1, 1, 224, 224)),
    ("googlenet", zoo.googlenet, (1, 3, 64, 64)),
    ("resnet18", zoo.resnet18, (1, 3, 64, 64)),
    ("resnet50", zoo.resnet50, (1, 3, 64, 64)),
    ("densenet121", zoo.densenet121, (1, 3, 64, 64)),
    (
        "llama",
        lambda: zoo.llama(vocab_size=50, dim=32, n_layers=2, n_heads=4, hidden_dim=64),
        None,
    ),
]


@pytest.mark.parametrize(("name", "factory", "shape"), ZOO, ids=[z[0] for z in ZOO])
def test_zoo_round_trip_into_fresh_deferred_network(tmp_path, name, factory, shape):
    torch.manual_seed(1)
    x = torch.randint(0, 50, (2, 7)) if shape is None else torch.randn(shape)
    net = factory()
    net.infer_shape(x)
    net.initialize().eval()
    with torch.no_grad():
        expected = net(x)
    path = tmp_path / f"{name}.safetensors"
    net.save_parameters(path)

    fresh = factory()
    calls = []
    for m in fresh.modules():
        m.register_forward_pre_hook(lambda *a: calls.append(1))
    fresh.load_parameters(path)
    assert not calls  # no forward pass was needed to learn the shapes
    assert all(not lateinit.is_deferred(t) for t in fresh.state_dict(keep_vars=True).values())
    for (k, a), (k2, b) in zip(net.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b), k
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), expected)


def test_load_into_ready_network_keeps_identity_and_storage(saved):
    net, path = saved
    torch.manual_seed(5)
    other = small_net()
    other(X)
    before = {n: (t, t.data_ptr()) for n, t in other.state_dict(keep_vars=True).items()}
    other.load_parameters(path)
    for name, t in other.state_dict(keep_vars=True).items():
        assert t is before[name][0] and t.data_ptr() == before[name][1], name
        assert torch.equal(t, net.state_dict()[name]), name


def test_deferred_load_runs_no_initializer(saved):
    _, path = saved

    def refuse(tensor, *args, **kwargs):
        raise AssertionError("an initializer ran during load")

    fresh = small_net().initialize(refuse)
    fresh.load_parameters(path)
    assert fresh[3].weight.shape == (8, 4 * 4 * 4)
    fresh(X)  # still works, and READY: the wrapper is gone
    assert "forward" not in fresh.__dict__


def test_load_with_device_and_dtype(saved):
    net, path = saved
    fresh = small_net().load_parameters(path, dtype=torch.float64, device="cpu")
    assert fresh[0].weight.dtype == torch.float64
    assert torch.equal(fresh[0].weight, net[0].weight.double())
    # a READY network converted in place (identity kept)
    weight = net[3].weight
    net.load_parameters(path, dtype=torch.float16)
    assert net[3].weight is weight and weight.dtype == torch.float16


def test_float_conversion_follows_the_network_dtype(tmp_path):
    net = nn.Sequential(nn.Dense(3, in_units=2)).initialize()
    path = tmp_path / "half.safetensors"
    save_file({"0.weight": torch.ones(3, 2, dtype=torch.float16), "0.bias": torch.zeros(3)}, path)
    net.load_parameters(path)
    assert net[0].weight.dtype == torch.float32 and net[0].weight.sum().item() == 6.0


def test_meta_target_creates_shapes_only(saved):
    _, path = saved
    fresh = small_net().load_parameters(path, device="meta")
    assert fresh[3].weight.device.type == "meta" and fresh[3].weight.shape == (8, 64)


def test_partial_loads(saved, tmp_path):
    net, path = saved
    bigger = nn.Sequential(*small_net(), nn.Dense(5))
    before_extra = full_snapshot(bigger)
    with pytest.raises(ParameterFileError, match=r"(?s)'5.weight'.*not in the file.*allow_missing"):
        bigger.load_parameters(path)
    assert_unchanged(before_extra, bigger)
    bigger.load_parameters(path, allow_missing=True)
    assert torch.equal(bigger[3].weight, net[3].weight)
    assert lateinit.is_deferred(bigger[5].weight)  # missing: left deferred
    assert "forward" in bigger.__dict__  # still armed for the deferred tail
    assert bigger(X).shape == (2, 5)

    smaller = nn.Sequential(*list(small_net())[:4])
    before = full_snapshot(smaller)
    with pytest.raises(ParameterFileError, match=r"(?s)2 key\(s\).*'4.bias'.*ignore_extra"):
        smaller.load_parameters(path)
    assert_unchanged(before, smaller)
    smaller.load_parameters(path, ignore_extra=True)
    assert torch.equal(smaller[3].bias, net[3].bias)


# -- bad files leave the network as it was -------------------------------------------------


def _corruptions(data: bytes) -> list[tuple[str, bytes]]:
    header_len = int.from_bytes(data[:8], "little")
    cases = [("empty", b""), ("not safetensors", b"this is a text file, not tensors" * 4)]
    for cut in (1, 7, 8, 20, 8 + header_len // 2, 8 + header_len, len(data) // 2, len(data) - 1):
        cases.append((f"truncated at {cut}", data[:cut]))
    for pos in (0, 3, 7, 9, 8 + header_len // 3, 8 + header_len // 2, 8 + header_len - 2):
        for mask in (0x01, 0x20, 0xFF):
            flipped = bytearray(data)
            flipped[pos] ^= mask
            cases.append((f"byte {pos} ^ {mask:#x}", bytes(flipped)))
    cases.append(("appended garbage", data + b"\0" * 3))
    return cases


@pytest.mark.parametrize("ready", [False, True], ids=["deferred", "ready"])
def test_bad_files_change_nothing(saved, tmp_path, ready):
    _, path = saved
    data = path.read_bytes()
    target = small_net()
    if ready:
        target(X)
    before = full_snapshot(target)
    bad = tmp_path / "bad.safetensors"
    loaded = 0
    for label, content in _corruptions(data):
        bad.write_bytes(content)
        try:
            target.load_parameters(bad)
        except (ParameterFileError, lateinit.ShapeMismatchError, TypeError) as err:
            assert str(bad) in str(err), label
            assert_unchanged(before, target)
        else:  # a flip that keeps the file valid must not have changed shapes or keys
            loaded += 1
            assert label.startswith("byte"), label
            target = small_net()
            if ready:
                target(X)
            before = full_snapshot(target)
    assert loaded <= 3  # nearly every corruption is caught


def test_pickle_file_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.safetensors"
    torch.save({"0.weight": Boom()}, path)
    net = small_net()
    before = full_snapshot(net)
    with pytest.raises(ParameterFileError, match=r"torch\.save.*never unpickles") as info:
        net.load_parameters(path)
    # one fix, the one for a pickle (not the generic "file cut short" advice)
    assert str(info.value).count("Fix:") == 1 and "cut short" not in str(info.value)
    assert not (tmp_path / "pwned").exists()
    assert_unchanged(before, net)


def test_wrong_shapes_name_key_layer_and_both_shapes(saved):
    _, path = saved
    other = nn.Sequential(
        nn.Conv2D(4, 3, activation="relu"),
        nn.BatchNorm(),
        nn.Flatten(),
        nn.Dense(9, activation="relu"),  # 9 units, the file has 8
        nn.Dense(3),
    )
    before = full_snapshot(other)
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        other.load_parameters(path)
    message = str(info.value)
    assert "'3.weight' of layer '3' (Dense)" in message
    assert "expects shape (9, -1)" in message and "stores (8, 64)" in message
    assert "nothing was changed" in message and "Fix:" in message
    assert info.value.param == "3.weight" and info.value.got == (8, 64)
    assert_unchanged(before, other)


def test_known_dims_are_checked_against_the_file(saved):
    _, path = saved
    net = nn.Sequential(
        nn.Conv2D(4, 3, in_channels=5), nn.BatchNorm(), nn.Flatten(), nn.Dense(8), nn.Dense(3)
    )
    before = full_snapshot(net)
    with pytest.raises(lateinit.ShapeMismatchError, match=r"expects shape \(4, 5, 3, 3\)"):
        net.load_parameters(path)
    assert_unchanged(before, net)


def test_dtype_that_cannot_convert_is_refused(tmp_path):
    path = tmp_path / "int.safetensors"
    save_file({"0.weight": torch.ones(3, 2, dtype=torch.int64), "0.bias": torch.zeros(3)}, path)
    net = nn.Sequential(nn.Dense(3))
    before = full_snapshot(net)
    with pytest.raises(TypeError, match=r"'0.weight'.*int64.*float32"):
        net.load_parameters(path)
    assert_unchanged(before, net)
    with pytest.raises(TypeError, match="floating dtype"):
        net.load_parameters(path, dtype=torch.int32)


def test_read_error_part_way(saved, monkeypatch):
    """After every check passed, only an OS read error can stop a load: deferred tensors
    are deferred again; READY ones already read in place are listed in the error."""
    net, path = saved
    calls = []
    real_read = lio._read_into

    def failing_read(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk went away")
        real_read(*args)

    monkeypatch.setattr(lio, "_read_into", failing_read)
    fresh = small_net()
    before = full_snapshot(fresh)
    with pytest.raises(OSError, match="disk went away"):
        fresh.load_parameters(path)
    assert_unchanged(before, fresh)
    fresh(X)  # still a working deferred network

    torch.manual_seed(3)
    ready = small_net()
    ready(X)
    before = full_snapshot(ready)
    calls.clear()
    with pytest.raises(ParameterFileError, match=r"2 of 11 READY tensors were already") as info:
        ready.load_parameters(path)
    assert "disk went away" in str(info.value)
    changed = [
        n
        for n in net.state_dict()
        if not torch.equal(before[n + "#values"][0], ready.state_dict()[n])
    ]
    assert 1 <= len(changed) <= 2 and all(repr(n) in str(info.value) for n in changed)
    for name, t in ready.state_dict(keep_vars=True).items():
        assert id(t) == before[name][0]  # identity kept either way
    ready.load_parameters(path)  # a second try completes it
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), ready.state_dict().values(), strict=True)
    )


def test_ready_load_reads_into_the_same_memory_without_growth(tmp_path):
    net = nn.Sequential(nn.Dense(1024, in_units=1024), nn.Dense(1024)).initialize()
    net(torch.ones(1, 1024))
    path = tmp_path / "big.safetensors"
    net.save_parameters(path)
    ptrs = [t.data_ptr() for t in net.state_dict().values()]
    import tracemalloc

    for verify in (False, True):
        tracemalloc.start()
        lio.load_parameters(net, path, verify=verify)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert [t.data_ptr() for t in net.state_dict().values()] == ptrs
        # bookkeeping, and the verifying pass's buffer: no staging copy of the 8 MB of
        # values, nor of one 4 MB weight
        limit = 200_000 + (lio._VERIFY_BUFFER if verify else 0)
        assert peak < limit, (verify, peak)


def test_missing_file_and_directory(tmp_path):
    net = small_net()
    with pytest.raises(FileNotFoundError):
        net.load_parameters(tmp_path / "nope.safetensors")
    net(X)
    with pytest.raises(IsADirectoryError):
        net.save_parameters(tmp_path)


# -- saving ------------------------------------------------------------------------------


def test_file_format_and_metadata(saved):
    net, path = saved
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
        assert torch.equal(f.get_tensor("1.running_mean"), net[1].running_mean)
    assert keys == set(net.state_dict())
    assert meta[lio._VERSION_KEY] == lateinit.__version__
    assert json.loads(meta[lio._DTYPES_KEY])["3.weight"] == "float32"
    assert json.loads(meta[lio._TIED_KEY]) == {}


def test_saving_a_deferred_network_names_it_and_writes_nothing(tmp_path):
    net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2))
    net.initialize()  # 0 and 1.bias READY, 1.weight still (2, -1)
    path = tmp_path / "net.safetensors"
    with pytest.raises(lateinit.DeferredInitializationError, match=r"'1.weight' \(2, -1\)"):
        net.save_parameters(path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_crash_during_save_keeps_the_previous_file(saved, monkeypatch):
    net, path = saved
    old = path.read_bytes()
    folder = path.parent
    with torch.no_grad():
        net[3].weight.add_(1.0)

    def crash_mid_write(fd, *args):
        os.write(fd, b"\x10\0\0\0\0\0\0\0{partial")
        raise KeyboardInterrupt  # e.g. the process is interrupted mid-write

    monkeypatch.setattr(lio, "_write_safetensors", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        net.save_parameters(path)
    assert path.read_bytes() == old
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temp file left
    monkeypatch.undo()

    def crash_before_rename(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(lio.os, "replace", crash_before_rename)
    with pytest.raises(OSError, match="power cut"):
        net.save_parameters(path)
    assert path.read_bytes() == old
    assert sorted(p.name for p in folder.iterdir()) == [path.name]
    monkeypatch.undo()
    net.save_parameters(path)  # and a good save replaces it
    assert path.read_bytes() != old
    assert torch.equal(small_net().load_parameters(path)[3].weight, net[3].weight)


def test_save_keeps_the_file_mode(saved):
    net, path = saved
    os.chmod(path, 0o640)
    net.save_parameters(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# -- shared parameters ---------------------------------------------------------------------


def tied_net() -> nn.Sequential:
    shared = nn.Dense(6, in_units=6, activation="tanh")
    return nn.Sequential(nn.Dense(6), shared, nn.Dense(6), shared)


def test_shared_parameter_is_stored_once_and_tie_restored(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(6), nn.Dense(6, activation="tanh"), nn.Dense(6))
    net[2].share_parameters(net[1].collect_params())
    x = torch.randn(2, 5)
    out = net(x)
    path = tmp_path / "tied.safetensors"
    net.save_parameters(path)
    with safe_open(path, "pt") as f:
        assert set(f.keys()) == {"0.weight", "0.bias", "1.weight", "1.bias"}
        assert json.loads(f.metadata()[lio._TIED_KEY]) == {
            "2.weight": "1.weight",
            "2.bias": "1.bias",
        }

    same = nn.Sequential(nn.Dense(6), nn.Dense(6, activation="tanh"), nn.Dense(6))
    same[2].share_parameters(same[1].collect_params())
    same.load_parameters(path)
    assert same[2].weight is same[1].weight
    assert torch.equal(same(x), out)

    untied = nn.Sequential(nn.Dense(6), nn.Dense(6, activation="tanh"), nn.Dense(6))
    untied.load_parameters(path)  # separate parameters in the network: tied again
    assert untied[2].weight is untied[1].weight and untied[2].bias is untied[1].bias
    assert len(list(untied.parameters())) == 4
    assert torch.equal(untied(x), out)


def test_block_used_twice_round_trips(tmp_path):
    torch.manual_seed(0)
    net = tied_net()
    x = torch.randn(3, 6)
    out = net(x)
    path = tmp_path / "twice.safetensors"
    net.save_parameters(path)
    fresh = tied_net().load_parameters(path)
    assert fresh[1] is fresh[3]
    assert torch.equal(fresh(x), out)


# -- state_dict --------------------------------------------------------------------------


def test_state_dict_round_trips_through_torch_save_weights_only(saved):
    net, _ = saved
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = small_net()
    fresh.load_state_dict(state)  # fills the deferred shapes
    assert "forward" not in fresh.__dict__
    assert torch.equal(fresh.eval()(X), net(X))


def test_load_state_dict_error_defers_again(saved):
    net, _ = saved
    state = net.state_dict()
    del state["4.bias"]
    fresh = small_net()
    before = full_snapshot(fresh)
    with pytest.raises(RuntimeError, match=r"4\.bias"):
        fresh.load_state_dict(state)
    assert_unchanged(before, fresh)
    fresh(X)  # still a working deferred network


def test_plain_torch_root_holding_blocks(tmp_path):
    torch.manual_seed(0)
    root = torch.nn.Sequential(torch.nn.Linear(3, 4), nn.Dense(2))
    x = torch.randn(2, 3)
    out = root(x)
    path = tmp_path / "mixed.safetensors"
    lio.save_parameters(root, path)
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), nn.Dense(2))
    lio.load_parameters(fresh, path)
    assert "forward" not in fresh[1].__dict__
    assert torch.equal(fresh(x), out)


# -- random networks -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_random_networks_round_trip(tmp_path_factory, drawn):
    specs, shape, _ = drawn
    torch.manual_seed(0)
    net = nn.Sequential(*(spec.ours() for spec in specs)).eval()
    x = torch.randn(shape)
    try:
        out = net(x)
    except lateinit.ShapeMismatchError:
        return  # a stack that does not fit its input: covered by test_random_stacks
    path = tmp_path_factory.mktemp("random") / "net.safetensors"
    net.save_parameters(path)
    fresh = nn.Sequential(*(spec.ours() for spec in specs)).eval()
    fresh.load_parameters(path)
    for (k, a), (_, b) in zip(net.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert torch.equal(fresh(x), out)
