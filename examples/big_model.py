"""From shapes to a sharded model: ``infer_shape``, then FSDP2 or DDP, on 2 CPU processes.

The recipe for a model too big for one device, run at a size a laptop can hold (the
"Big models" guide of the documentation runs this script when the site is built):

1. build the network with no input sizes and shape it without data
   (``net.infer_shape(Spec)``): SHAPED, no memory;
2. FSDP2: ``fully_shard`` each decoder layer and the root while the network is SHAPED,
   then ``net.initialize()``: each rank creates only its own shard of every parameter,
   with exactly the values one device would have drawn (checked here against a
   single-process ``initialize()`` under the same seed);
3. DDP: ``net.initialize()`` under the same seed on every rank, then
   ``DistributedDataParallel(net)``.

Each rank prints what it holds; rank 0 prints the checks. On GPUs the same code runs
with ``backend="nccl"``, ``initialize(device=f"cuda:{rank}", dtype=torch.bfloat16)``.

Run: ``python examples/big_model.py`` (a few seconds; ``--procs N`` for N processes).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lateinit
from lateinit import zoo

# a Llama-shaped model small enough for a CPU; zoo.llama() with no arguments is the 7B
CONFIG = {"vocab_size": 1000, "dim": 128, "n_layers": 4, "n_heads": 4, "hidden_dim": 344}
TOKENS = lateinit.Spec((None, 32), torch.long)


# --8<-- [start:build]
def build() -> torch.nn.Module:
    torch.manual_seed(0)  # the same parameter seeds on every rank
    net = zoo.llama(**CONFIG)
    net.infer_shape(TOKENS)  # SHAPED: every shape known, nothing allocated
    return net


# --8<-- [end:build]


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def local_bytes(net: torch.nn.Module) -> int:
    """Bytes of parameter memory this rank holds (its shards, for FSDP)."""
    total = 0
    for p in net.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        total += local.numel() * local.element_size()
    return total


def batch(rank: int) -> torch.Tensor:
    """This rank's batch of token ids."""
    return torch.randint(
        0, CONFIG["vocab_size"], (2, 32), generator=torch.Generator().manual_seed(rank)
    )


# --8<-- [start:fsdp]
def fsdp(rank: int, world: int, reference: dict[str, torch.Tensor]) -> None:
    from torch.distributed.fsdp import fully_shard

    net = build()
    for layer in net.layers:
        fully_shard(layer)  # on a SHAPED network: meta DTensors, no memory
    fully_shard(net)
    net.initialize()  # each rank creates its shards only
    full = sum(p.numel() * p.element_size() for p in net.parameters())
    print(f"[fsdp rank {rank}] holds {mib(local_bytes(net))} of {mib(full)}")

    same = all(torch.equal(p.full_tensor(), reference[n]) for n, p in net.named_parameters())
    loss = net(batch(rank)).logsumexp(-1).mean()
    loss.backward()
    if rank == 0:
        print(f"[fsdp] the shards hold exactly the single-device values: {same}")
        print(f"[fsdp] forward and backward ran on {world} ranks, loss {loss.item():.3f}")


# --8<-- [end:fsdp]


# --8<-- [start:ddp]
def ddp(rank: int, world: int) -> None:
    from torch.nn.parallel import DistributedDataParallel

    net = build().initialize()  # READY, the same values on every rank
    model = DistributedDataParallel(net)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(batch(rank)).logsumexp(-1).mean().backward()  # DDP averages the gradients
    opt.step()
    first = net.tok_embeddings.weight.detach().clone()
    gathered = [torch.empty_like(first) for _ in range(world)]
    dist.all_gather(gathered, first)
    if rank == 0:
        same = all(torch.equal(g, first) for g in gathered)
        print(f"[ddp] after one step every rank holds the same parameters: {same}")


# --8<-- [end:ddp]


def worker(rank: int, world: int, port: int, reference_file: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fsdp(rank, world, torch.load(reference_file))
        dist.barrier()
        ddp(rank, world)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()

    net = build()
    print(f"model: {lateinit.count_params(net):,} parameters, SHAPED, nothing allocated")
    reference = {n: p.detach().clone() for n, p in net.initialize().named_parameters()}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        reference_file = str(Path(tmp) / "reference.pt")
        torch.save(reference, reference_file)
        mp.spawn(worker, args=(args.procs, port, reference_file), nprocs=args.procs)


if __name__ == "__main__":
    main()
