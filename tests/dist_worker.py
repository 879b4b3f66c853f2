"""One rank of the multi-process checks of tests/test_distributed.py.

Run as ``python dist_worker.py RANK WORLD_SIZE INIT_FILE OUT_DIR``: joins a gloo process
group through the ``file://`` rendezvous ``INIT_FILE``, runs every scenario below in
turn, and saves what it saw to ``OUT_DIR/rank{RANK}.pt`` (plain tensors, strings and
ints, for ``torch.load(weights_only=True)``). The test compares both ranks' results with
a single-process run of the same network, built by :func:`build` and trained on
:func:`batch`.
"""

from __future__ import annotations

import datetime
import os
import sys
import traceback
from typing import Any

import torch

import lateinit
from lateinit import init, nn

IN = 6
STEPS = 3
LR = 0.1


def build() -> nn.Sequential:
    """A deferred network: no input sizes; one uneven shard (3 rows on 2 ranks), a
    LayerNorm (1-d parameters) and an Orthogonal layer (needs the whole matrix)."""
    return nn.Sequential(
        nn.Dense(16, activation="relu"),
        nn.LayerNorm(gamma_initializer=init.Uniform(0.5), beta_initializer=init.Normal(0.1)),
        nn.Dense(8, activation="tanh", weight_initializer=init.Orthogonal()),
        nn.Dense(3),
    )


def batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s batch at ``step`` (different on every rank)."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(4, IN, generator=g), torch.randn(4, 3, generator=g)


def initialized(dtype: torch.dtype | None = None) -> nn.Sequential:
    """The single-process network: same seed, initialized after infer_shape."""
    torch.manual_seed(0)
    net = build()
    net.infer_shape(lateinit.Spec((None, IN)))
    return net.initialize(init.Xavier(), dtype=dtype)


def reference(world: int) -> dict[str, Any]:
    """The single-process run, trained on the concatenation of every rank's batch (what
    averaging the gradients over ranks computes)."""
    net = initialized()
    out: dict[str, Any] = {"init": _state(net), "init64": _state(initialized(torch.float64))}
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    for step in range(STEPS):
        xs, ys = zip(*(batch(r, step) for r in range(world)), strict=True)
        loss = torch.nn.functional.mse_loss(net(torch.cat(xs)), torch.cat(ys))
        opt.zero_grad()
        loss.backward()
        if step == 0:
            out["grads0"] = {n: p.grad.clone() for n, p in net.named_parameters()}
        opt.step()
    out["final"] = _state(net)
    return out


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter's values, detached and cloned."""
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def _error(fn: Any) -> str:
    try:
        fn()
    except lateinit.DeferredInitializationError as err:
        return str(err)
    return "<no error>"


def ddp(rank: int) -> dict[str, Any]:
    """DDP on a network made READY by infer_shape + initialize (same seed on each rank)."""
    from torch.nn.parallel import DistributedDataParallel

    out: dict[str, Any] = {}
    out["ddp_error_declared"] = _error(lambda: DistributedDataParallel(build()))
    shaped = build()
    shaped.infer_shape(lateinit.Spec((None, IN)))
    out["ddp_error_shaped"] = _error(lambda: DistributedDataParallel(shaped))

    torch.manual_seed(0)
    net = build()
    net.infer_shape(lateinit.Spec((None, IN)))
    net.initialize(init.Xavier())
    out["ddp_init"] = _state(net)
    model = DistributedDataParallel(net)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for step in range(STEPS):
        x, y = batch(rank, step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            out["ddp_grads0"] = {n: p.grad.clone() for n, p in net.named_parameters()}
        opt.step()
    out["ddp_final"] = _state(net)
    return out


def sharded() -> nn.Sequential:
    """The network of :func:`initialized`, but fully_shard-ed (each layer, then the root)
    while SHAPED, before initialize()."""
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    net = build()
    net.infer_shape(lateinit.Spec((None, IN)))  # SHAPED: nothing allocated
    for layer in net:
        fully_shard(layer)
    fully_shard(net)
    return net


def fsdp(rank: int) -> dict[str, Any]:
    """FSDP2 on a SHAPED network, then initialize(): shards only, exact values."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    out: dict[str, Any] = {}
    out["fsdp_error_declared"] = _error(lambda: fully_shard(build()[0]))

    net = sharded()
    ids = [id(p) for p in net.parameters()]
    out["fsdp_meta_before"] = int(all(p.device.type == "meta" for p in net.parameters()))
    opt = torch.optim.SGD(net.parameters(), lr=LR)  # built before the values exist
    x, y = batch(rank, 0)
    out["fsdp_error_forward"] = _error(lambda: net(x))
    net.initialize(init.Xavier())
    out["fsdp_same_objects"] = int(ids == [id(p) for p in net.parameters()])
    out["fsdp_local_numel"] = sum(p.to_local().numel() for p in net.parameters())
    out["fsdp_local_storage"] = sum(
        p.to_local().untyped_storage().nbytes() // p.element_size() for p in net.parameters()
    )
    out["fsdp_total_numel"] = sum(p.numel() for p in net.parameters())
    out["fsdp_local_devices"] = sorted({p.to_local().device.type for p in net.parameters()})
    out["fsdp_init"] = {n: p.full_tensor().clone() for n, p in net.named_parameters()}
    for step in range(STEPS):
        x, y = batch(rank, step)
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    full = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True))
    out["fsdp_final"] = {n: t.clone() for n, t in full.items()}

    double = sharded()
    double.initialize(init.Xavier(), dtype=torch.float64)
    out["fsdp64_init"] = {n: p.full_tensor().clone() for n, p in double.named_parameters()}
    out["fsdp64_out_dtype"] = str(double(batch(rank, 0)[0].double()).dtype)
    return out


def main() -> None:
    rank, world = int(sys.argv[1]), int(sys.argv[2])
    init_file, out_dir = sys.argv[3], sys.argv[4]
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),  # a collective never waits forever
    )
    results: dict[str, Any] = {"rank": rank}
    try:
        results.update(ddp(rank))
        results.update(fsdp(rank))
        results["ok"] = 1
    except BaseException:
        results["error"] = traceback.format_exc()
        raise
    finally:
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
