"""Train LeNet with 2 CPU processes: DistributedDataParallel on a deferred network.

The same job as ``train_lenet.py`` (imported from it: data, network, loop), split over
``--procs`` processes (gloo backend, CPU). Each process builds ``zoo.lenet()`` with no
input sizes, shapes it without data (``infer_shape``) and creates its parameters
(``initialize``) under the same seed, so every rank starts from the same values; then it
wraps the network in ``torch.nn.parallel.DistributedDataParallel`` and trains on its own
slice of every batch. DDP averages the gradients, so the ranks stay identical; rank 0
shows the progress bar and prints ``test accuracy: 0.97``, and every rank checks that its
parameters equal rank 0's at the end.

Run: ``python examples/train_ddp.py`` (under a minute on 2 CPU cores). Options as in
``train_lenet.py`` plus ``--procs``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lateinit
from lateinit import Trainer, init, zoo
from train_lenet import CLASSES, evaluate, make_dataset, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, args: argparse.Namespace, port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(args.seed)  # the same parameter values on every rank
        net = zoo.lenet(num_classes=len(CLASSES))
        net.infer_shape(lateinit.Spec((None, 1, 28, 28)))  # shapes without data
        net.initialize(init.Xavier())  # READY: DDP needs real parameters
        model = torch.nn.parallel.DistributedDataParallel(net)
        trainer = Trainer(model.parameters(), "nadam", {"learning_rate": args.lr})
        x, y = make_dataset(args.train_size, seed=args.seed)
        # this rank's share of every batch: the global batch is batch_size * world
        mine = torch.arange(rank, len(x), world)
        console = Console(quiet=rank != 0)
        train(
            model,
            trainer,
            x[mine],
            y[mine],
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            console=console,
            show_progress=rank == 0 and not args.no_progress,
        )
        flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        reference = flat.clone()
        dist.broadcast(reference, src=0)
        same = torch.equal(flat, reference)
        agree = torch.tensor([int(same)])
        dist.all_reduce(agree)
        if rank == 0:
            x_test, y_test = make_dataset(args.test_size, seed=args.seed + 10_000)
            console.print(f"parameters identical on all {world} ranks: {int(agree) == world}")
            print(f"test accuracy: {evaluate(net, x_test, y_test):.2f}", flush=True)
        if not same:
            raise RuntimeError(f"rank {rank}: parameters differ from rank 0's")
    finally:
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train LeNet with DDP on CPU processes.")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.01, help="NAdam learning rate")
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not (dist.is_available() and dist.is_gloo_available()):
        print("this torch build has no gloo backend: nothing to run")
        return 1
    mp.spawn(worker, args=(args.procs, args, _free_port()), nprocs=args.procs, join=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
