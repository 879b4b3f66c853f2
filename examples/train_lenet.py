"""Train LeNet, written without a single input size, with ``Trainer``.

The data needs no download: :func:`make_dataset` draws 28x28 single-channel images of ten
synthetic shapes (bars, diagonals, crosses, a square, a disk, a ring...), each at a random
position and size, with random ink and noise. ``zoo.lenet()`` learns its input sizes from
the first batch; the ``Trainer`` is built before that, as in Gluon.

Run: ``python examples/train_lenet.py`` (about 20 s on 2 CPU cores: 6,000 training images,
5 epochs of batches of 32, NAdam; prints ``test accuracy: 0.98``). Options: ``--epochs``,
``--batch-size``, ``--seed``, ``--lr``, ``--train-size``, ``--test-size``, ``--threads``,
``--no-progress``. ``make_dataset``, ``batches``, ``make_net``, ``train`` and ``evaluate``
are meant to be imported by other examples.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lateinit import Trainer, init, zoo

CLASSES = (
    "horizontal bar",
    "vertical bar",
    "diagonal \\",
    "diagonal /",
    "plus",
    "cross x",
    "square",
    "disk",
    "ring",
    "equals",
)
SIZE = 28
MEAN, STD = 0.065, 0.28  # of the raw pixels, over many images


def _stroke_distance(label: int, u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Distance (in pixels) from each pixel to the strokes of shape ``label``, for pixel
    offsets ``u`` (x) and ``v`` (y) from the shape's centre and shape radius ``r``."""
    far = torch.full_like(u, 1e3)
    inside = (u.abs() <= r) & (v.abs() <= r)
    hbar = torch.where(u.abs() <= r, v.abs(), far)
    vbar = torch.where(v.abs() <= r, u.abs(), far)
    diag = torch.where(inside, (u - v).abs() / math.sqrt(2), far)
    anti = torch.where(inside, (u + v).abs() / math.sqrt(2), far)
    radius = torch.sqrt(u**2 + v**2)
    if label == 0:
        return hbar
    if label == 1:
        return vbar
    if label == 2:
        return diag
    if label == 3:
        return anti
    if label == 4:
        return torch.minimum(hbar, vbar)
    if label == 5:
        return torch.minimum(diag, anti)
    if label == 6:
        return (torch.maximum(u.abs(), v.abs()) - r).abs()
    if label == 7:
        return (radius - r).clamp(min=0)
    if label == 8:
        return (radius - r).abs()
    return torch.where(u.abs() <= r, torch.minimum((v - r / 2).abs(), (v + r / 2).abs()), far)


def make_dataset(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``(n, 1, 28, 28)`` (float32) of ten synthetic classes and their labels
    ``(n,)`` (int64), drawn reproducibly from ``seed``.

    Each image is one shape of its class (see ``CLASSES``) centred at a random offset of
    up to 4 pixels, with a random radius (4.5-9 px), stroke width and ink level, on a
    background of Gaussian noise (std 0.3). Position and size vary, so the classes are
    not separable by a linear map of the pixels; a small CNN separates them.

    Example:
        >>> x, y = make_dataset(8, seed=1)
        >>> tuple(x.shape), x.dtype, tuple(y.shape), y.dtype
        ((8, 1, 28, 28), torch.float32, (8,), torch.int64)
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CLASSES), (n,), generator=g)

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(n, 1, 1).uniform_(low, high, generator=g)

    centre = (SIZE - 1) / 2
    cx, cy = centre + uniform(-4, 4), centre + uniform(-4, 4)
    radius, width, ink = uniform(4.5, 9.0), uniform(1.2, 2.2), uniform(0.7, 1.0)
    ys, xs = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float32),
        torch.arange(SIZE, dtype=torch.float32),
        indexing="ij",
    )
    images = torch.empty(n, SIZE, SIZE)
    for label in range(len(CLASSES)):
        idx = (labels == label).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        d = _stroke_distance(label, xs - cx[idx], ys - cy[idx], radius[idx])
        images[idx] = ink[idx] * (1 - d / width[idx]).clamp(0, 1)
    images += 0.2 * torch.randn(n, SIZE, SIZE, generator=g)
    images = (images - MEAN) / STD  # standardized: a sigmoid network starts learning sooner
    return images.unsqueeze(1), labels


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of ``(x, y)``: shuffled with ``generator``, in order without one."""
    order = torch.randperm(len(x), generator=generator) if generator is not None else None
    for start in range(0, len(x), batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def train(
    net: torch.nn.Module,
    trainer: Trainer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    console: Console | None = None,
    show_progress: bool = True,
) -> list[float]:
    """Train ``net`` on ``(x, y)`` for ``epochs`` (shuffled with ``seed``); return the mean
    loss of each epoch.

    Gluon style: the cross-entropy is summed over the batch and ``trainer.step(len(xb))``
    divides the gradients by the batch size. A ``rich`` progress bar shows the steps and
    the running loss unless ``show_progress`` is False.
    """
    g = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
    )
    losses = []
    net.train()
    with progress:
        task = progress.add_task("training", total=epochs * steps_per_epoch, loss=float("nan"))
        for epoch in range(epochs):
            total, seen = 0.0, 0
            for xb, yb in batches(x, y, batch_size, g):
                trainer.zero_grad()
                loss = F.cross_entropy(net(xb), yb, reduction="sum")
                loss.backward()
                trainer.step(len(xb))
                total += loss.item()
                seen += len(xb)
                progress.update(
                    task,
                    advance=1,
                    description=f"epoch {epoch + 1}/{epochs}",
                    loss=total / seen,
                )
            losses.append(total / seen)
    return losses


@torch.no_grad()
def evaluate(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500
) -> float:
    """The fraction of ``x`` that ``net`` classifies as ``y``."""
    net.eval()
    correct = sum(int((net(xb).argmax(1) == yb).sum()) for xb, yb in batches(x, y, batch_size))
    net.train()
    return correct / len(x)


def make_net() -> torch.nn.Module:
    """``zoo.lenet()`` (no input sizes) with Xavier initialization registered."""
    return zoo.lenet(num_classes=len(CLASSES)).initialize(init.Xavier())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train LeNet on synthetic shapes.")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.01, help="NAdam learning rate")
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: LeNet is too small to gain)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    console = Console()
    x, y = make_dataset(args.train_size, seed=args.seed)
    x_test, y_test = make_dataset(args.test_size, seed=args.seed + 10_000)
    net = make_net()
    trainer = Trainer(net.collect_params(), "nadam", {"learning_rate": args.lr})
    # built before any shape is known: only the biases, whose shapes are known, are READY
    console.print(f"{trainer!r}")
    losses = train(
        net,
        trainer,
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        console=console,
        show_progress=not args.no_progress,
    )
    console.print(f"{trainer!r}")
    console.print("mean loss per epoch: " + " ".join(f"{v:.3f}" for v in losses))
    print(f"test accuracy: {evaluate(net, x_test, y_test):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
