"""DDP and FSDP2 (fully_shard) on lateinit networks (docs/design.md, "Promises": devices and scale).

Two kinds of checks:
- two ranks (gloo, CPU, ``file://`` rendezvous) run ``dist_worker.py`` once for the whole
  module, bounded by a timeout; their results are compared with a single-process run;
- fast single-process checks in a world of size 1 (errors, rollback, re-initialization).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

import dist_worker as worker
import lateinit
from lateinit import init, nn


def _gloo() -> bool:
    return dist.is_available() and dist.is_gloo_available()


pytestmark = pytest.mark.skipif(
    not _gloo(), reason="torch.distributed with the gloo backend is not available in this build"
)

WORLD = 2
TIMEOUT_S = 120.0  # the whole two-rank run (about 10 s here)
GRACE_S = 15.0  # how long the other ranks may run on once one has failed


# -- two ranks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Both ranks' results from one run of dist_worker.py (killed after TIMEOUT_S, or
    GRACE_S after a rank failed), or a failure showing every rank's output."""
    tmp = tmp_path_factory.mktemp("ranks")
    src = str(Path(lateinit.__file__).resolve().parent.parent)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    logs = [tmp / f"rank{r}.log" for r in range(WORLD)]
    procs = []
    for r in range(WORLD):
        with open(logs[r], "w") as log:
            cmd = [sys.executable, worker.__file__, str(r), str(WORLD), str(tmp / "rdv"), str(tmp)]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    deadline = time.monotonic() + TIMEOUT_S
    while any(p.poll() is None for p in procs):
        if any(p.returncode for p in procs):  # one rank failed: the other may wait forever
            deadline = min(deadline, time.monotonic() + GRACE_S)
        if time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            if not all((tmp / f"rank{r}.pt").exists() for r in range(WORLD)):
                pytest.fail(f"the ranks did not finish in time:\n{_logs(logs)}", pytrace=False)
            break
        time.sleep(0.05)
    results = []
    for r in range(WORLD):
        path = tmp / f"rank{r}.pt"
        if not path.exists():
            code = procs[r].returncode
            pytest.fail(f"rank {r} exited with {code}, no results:\n{_logs(logs)}", pytrace=False)
        res = torch.load(path, weights_only=True)
        if not res.get("ok"):
            pytest.fail(f"rank {r} failed:\n{res.get('error')}\n{_logs(logs)}", pytrace=False)
        # A clean gloo run occasionally aborts at interpreter exit (docs/design.md, "Torch
        # facts"): the results, saved before that, are what counts.
        results.append(res)
    return results


def _logs(logs: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-6000:]}" for p in logs if p.exists())


@pytest.fixture(scope="module")
def ref() -> dict[str, Any]:
    return worker.reference(WORLD)


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), f"{name}: max diff {(a[name] - b[name]).abs().max()}"


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_ddp_starts_from_the_single_process_values_on_every_rank(ranks, ref):
    for res in ranks:
        _assert_equal(res["ddp_init"], ref["init"])


def test_ddp_averages_gradients_over_ranks(ranks, ref):
    # Each rank saw its own batch; the averaged gradient is the one of the whole batch.
    _assert_equal(ranks[0]["ddp_grads0"], ranks[1]["ddp_grads0"])
    _assert_close(ranks[0]["ddp_grads0"], ref["grads0"])


def test_ddp_training_keeps_ranks_identical_and_matches_one_process(ranks, ref):
    _assert_equal(ranks[0]["ddp_final"], ranks[1]["ddp_final"])
    _assert_close(ranks[0]["ddp_final"], ref["final"])
    assert not torch.equal(ranks[0]["ddp_final"]["0.weight"], ref["init"]["0.weight"])


@pytest.mark.parametrize("key", ["ddp_error_declared", "ddp_error_shaped"])
def test_ddp_refuses_a_network_that_is_not_ready(ranks, key):
    for res in ranks:
        msg = res[key]
        assert msg.startswith("DistributedDataParallel cannot wrap this network yet")
        assert "8 parameters are not initialized" in msg
        assert "'2.weight'" in msg and "'3.bias'" in msg
        assert "net(x)" in msg and "infer_shape" in msg and "initialize()" in msg
        assert "in_units" in msg
    assert "(16, -1) DECLARED" in ranks[0]["ddp_error_declared"]
    assert "(16, 6) SHAPED" in ranks[0]["ddp_error_shaped"]


def test_fsdp_refuses_a_declared_network(ranks):
    for res in ranks:
        msg = res["fsdp_error_declared"]
        assert "fully_shard cannot shard parameter '0.weight' of Dense" in msg
        assert "(16, -1)" in msg and "infer_shape" in msg and "initialize()" in msg


def test_fsdp_on_a_shaped_network_allocates_nothing_until_initialize(ranks):
    for res in ranks:
        assert res["fsdp_meta_before"] == 1
        msg = res["fsdp_error_forward"]
        assert msg.startswith("This FSDP network cannot run yet")
        assert "'2.weight' (8, 16)" in msg and "net.initialize()" in msg


def test_fsdp_initialize_creates_only_each_ranks_shard(ranks):
    total = ranks[0]["fsdp_total_numel"]
    local = [res["fsdp_local_numel"] for res in ranks]
    assert sum(local) == total
    for res, n in zip(ranks, local, strict=True):
        assert abs(n - total / WORLD) <= 16, local  # uneven rows: 3 rows on 2 ranks...
        assert res["fsdp_local_storage"] <= n + 16  # ...and no rank keeps a full tensor
        assert res["fsdp_local_devices"] == ["cpu"]
        assert res["fsdp_same_objects"] == 1  # optimizers built before initialize() work


def test_fsdp_shards_hold_exactly_the_single_device_values(ranks, ref):
    # init.Orthogonal (layer 2) needs the whole matrix; fans come from the full shapes.
    for res in ranks:
        _assert_equal(res["fsdp_init"], ref["init"])
        _assert_equal(res["fsdp64_init"], ref["init64"])
        assert res["fsdp64_out_dtype"] == "torch.float64"


def test_fsdp_training_matches_one_process(ranks, ref):
    _assert_equal(ranks[0]["fsdp_final"], ranks[1]["fsdp_final"])
    _assert_close(ranks[0]["fsdp_final"], ref["final"])


# -- one rank, in this process -----------------------------------------------------------


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory):
    """A world of size 1 (gloo) in this process, for the fast checks."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    rdv = tmp_path_factory.mktemp("group") / "rdv"
    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _sharded_one_rank() -> nn.Sequential:
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    net = worker.build()
    net.infer_shape(lateinit.Spec((None, worker.IN)))
    for layer in net:
        fully_shard(layer)
    fully_shard(net)
    return net


def _full(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.full_tensor().detach().clone() for n, p in net.named_parameters()}


def test_ddp_error_names_only_the_parameters_not_ready(group):
    from torch.nn.parallel import DistributedDataParallel

    net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2))
    net.initialize()
    with pytest.raises(lateinit.DeferredInitializationError) as info:
        DistributedDataParallel(net)
    msg = str(info.value)
    assert "1 parameter is not initialized ('1.weight' (2, -1) DECLARED" in msg
    assert "'0.weight'" not in msg and "its initialization was deferred" in msg
    net(torch.ones(2, 3))  # the network is unchanged and still works
    model = DistributedDataParallel(net)
    model(torch.ones(2, 3)).sum().backward()
    assert net[1].weight.grad is not None


def test_fsdp_one_rank_exact_values_and_rank_local_device(group):
    net = _sharded_one_rank()
    assert lateinit.distributed.pending_shards(net)[0] == (
        "0.weight",
        net[0]._lateinit.records["weight"],
    )
    net.initialize(init.Xavier())
    assert lateinit.distributed.pending_shards(net) == []
    _assert_equal(_full(net), worker.reference(1)["init"])
    out = net(torch.ones(2, worker.IN))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_fsdp_initialize_again_warns_and_force_reinit_restores_initial_values(group):
    net = _sharded_one_rank().initialize(init.Xavier())
    first = _full(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(torch.ones(2, worker.IN)).sum().backward()
    opt.step()
    trained = _full(net)
    with pytest.warns(UserWarning, match="already initialized"):
        net.initialize()
    _assert_equal(_full(net), trained)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.manual_seed(7)
        net.initialize(force_reinit=True)
    again = _full(net)
    torch.manual_seed(7)
    net.initialize(force_reinit=True)
    _assert_equal(_full(net), again)  # fresh seeds from torch's generator: reproducible
    w = "0.weight"
    assert not torch.equal(again[w], first[w]) and not torch.equal(again[w], trained[w])
    net(torch.ones(2, worker.IN)).sum().backward()  # FSDP still trains on them
    opt.step()


def test_fsdp_failed_initialize_changes_nothing(group):
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(4), nn.Dense(2, bias_initializer=init.Orthogonal()))
    net.infer_shape((2, 3))
    fully_shard(net)
    ids = [id(p) for p in net.parameters()]
    with pytest.raises(ValueError, match="Orthogonal needs a tensor of at least 2 dims"):
        net.initialize()
    assert [p.device.type for p in net.parameters()] == ["meta"] * 4  # rolled back
    assert [id(p) for p in net.parameters()] == ids
    net[1]._lateinit.records["bias"].init = "zeros"  # fix the initializer and try again
    net.initialize()
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert torch.equal(net[1].bias.full_tensor(), torch.zeros(2))


def test_fsdp_shards_stay_on_the_mesh_device(group):
    net = _sharded_one_rank()
    with pytest.raises(ValueError, match="lives on its FSDP mesh's device"):
        net.initialize(device="meta")
    assert len(lateinit.distributed.pending_shards(net)) == 8
    net.initialize(device="cpu")
    assert all(p.to_local().device.type == "cpu" for p in net.parameters())


def test_torch_ops_outside_fully_shard_still_raise():
    p = lateinit.Parameter((4, 3))
    with pytest.raises(lateinit.DeferredInitializationError, match=r"torch\.chunk"):
        torch.chunk(p, 2)
    with pytest.raises(lateinit.DeferredInitializationError):
        p.new_zeros(3)
