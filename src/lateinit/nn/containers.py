"""Containers: Sequential, Concatenate, Residual."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, overload

import torch

from ..block import Block
from ..explain import layer_label, locate
from ..shapes import ShapeMismatchError, fmt_shape

__all__ = ["Sequential", "Concatenate", "Residual"]


def _append(container: Block, blocks: Iterable[Any]) -> None:
    """Add modules as children named "0", "1", ... after the existing ones."""
    blocks = list(blocks)
    for block in blocks:  # check all before adding any
        if not isinstance(block, torch.nn.Module):
            raise TypeError(
                f"{type(container).__name__}.add: expected a Block or torch.nn.Module, got "
                f"{type(block).__name__}; wrap functions in nn.Lambda"
            )
    for block in blocks:
        container.add_module(str(len(container._modules)), block)


class Sequential(Block):
    """Run child blocks one after another; each one's output is the next one's input.

    Nothing needs sizes up front: on the first batch each deferred child infers its input
    size from what the previous child produced, so `Sequential(Dense(8), Dense(2))` needs
    only the output sizes. Build it empty and [`add`][lateinit.nn.Sequential.add] blocks,
    or pass them: `Sequential(a, b)` or `Sequential([a, b])`. Children are named `"0"`,
    `"1"`...; any `torch.nn.Module` can be one. Supports `len`, iteration, indexing, and
    slicing (a slice is a new `Sequential` sharing the same child blocks).

    Args:
        *blocks: the children, in order (or one list of them).

    Shape:
        - Input: what the first child takes.
        - Output: what the last child returns.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
        >>> [tuple(p.shape) for p in net.parameters()]
        [(8, -1), (8,), (2, -1), (2,)]
        >>> net(torch.rand(3, 5)).shape
        torch.Size([3, 2])
        >>> [tuple(p.shape) for p in net.parameters()]
        [(8, 5), (8,), (2, 8), (2,)]
        >>> len(net), net[1:]
        (2, Sequential(
          (0): Dense(8 -> 2)
        ))
    """

    def __init__(self, *blocks: torch.nn.Module | Iterable[torch.nn.Module]) -> None:
        super().__init__()
        if len(blocks) == 1 and not isinstance(blocks[0], torch.nn.Module):
            try:
                blocks = tuple(blocks[0])  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(
                    "Sequential: expected blocks (torch.nn.Module) or one list of them, got "
                    f"{blocks[0]!r}"
                ) from None
        self.add(*blocks)  # type: ignore[arg-type]

    def add(self, *blocks: torch.nn.Module) -> None:
        """Append blocks at the end, in order.

        Args:
            *blocks: the blocks (any `torch.nn.Module`); they are named `"0"`, `"1"`... after
                the existing children.

        Raises:
            TypeError: one of them is not a `torch.nn.Module` (then none is added); wrap
                functions in [`Lambda`][lateinit.nn.Lambda].

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> net = nn.Sequential()
            >>> net.add(nn.Dense(8, activation="relu"), nn.Dense(2))
            >>> net.add(nn.Lambda(torch.tanh))
            >>> len(net), net(torch.rand(3, 5)).shape
            (3, torch.Size([3, 2]))
        """
        _append(self, blocks)

    def forward(self, x: Any) -> Any:
        for name, block in self._modules.items():  # noqa: B007 (`name` names a failing child)
            x = block(x)
        return x

    @overload
    def __getitem__(self, index: int) -> torch.nn.Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...
    def __getitem__(self, index: int | slice) -> torch.nn.Module | Sequential:
        children = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(children[index])  # type: ignore[arg-type]
        try:
            return children[index]  # type: ignore[return-value]
        except IndexError:
            raise IndexError(
                f"Sequential index {index} is out of range for {len(children)} blocks"
            ) from None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[torch.nn.Module]:
        return iter(self._modules.values())  # type: ignore[arg-type]


class Concatenate(Block):
    """Run parallel branches on the same input and concatenate their outputs along `axis`
    (Inception style).

    Each branch infers its own input size from the shared input on the first batch. The
    branches' outputs must agree on every axis but `axis`.

    Args:
        *blocks: the branches (any `torch.nn.Module`); more can be added with
            [`add`][lateinit.nn.Concatenate.add].
        axis: the axis to concatenate on (default 1, the channels of `(N, C, ...)`).

    Shape:
        - Input: what every branch takes.
        - Output: the branches' outputs concatenated on `axis`: its size there is the sum
          of theirs.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Concatenate(nn.Conv2D(4, 1), nn.Conv2D(6, 3, padding=1))
        >>> net(torch.rand(2, 3, 8, 8)).shape  # 4 + 6 channels
        torch.Size([2, 10, 8, 8])
        >>> nn.Concatenate(nn.Dense(3), nn.Dense(5), axis=-1)(torch.rand(2, 4)).shape
        torch.Size([2, 8])
    """

    def __init__(self, *blocks: torch.nn.Module, axis: int = 1) -> None:
        super().__init__()
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"Concatenate: axis must be an int, got {axis!r}")
        self._axis = axis
        self.add(*blocks)

    def add(self, *blocks: torch.nn.Module) -> None:
        """Append branches, in order.

        Args:
            *blocks: the branches (any `torch.nn.Module`).

        Raises:
            TypeError: one of them is not a `torch.nn.Module` (then none is added).

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> net = nn.Concatenate(axis=-1)
            >>> net.add(nn.Dense(3), nn.Dense(5))
            >>> len(net), net(torch.rand(2, 4)).shape
            (2, torch.Size([2, 8]))
        """
        _append(self, blocks)

    def forward(self, x: Any) -> torch.Tensor:
        outputs = [branch(x) for branch in self._modules.values()]
        try:
            return torch.cat(outputs, dim=self._axis)
        except (RuntimeError, IndexError) as err:
            raise self._branch_error(err, outputs)

    def _branch_error(self, err: BaseException, outputs: list[torch.Tensor]) -> BaseException:
        shapes = ", ".join(
            f"{name}: {fmt_shape(tuple(out.shape))}"
            for name, out in zip(self._modules, outputs, strict=True)
        )
        return ShapeMismatchError(
            f"{layer_label(self, locate(self)[1])} cannot concatenate its branches' outputs "
            f"on axis {self._axis}: they must agree on every other axis, got {shapes}. Fix: "
            "make the branches keep the other axes equal (e.g. the same strides and padding)."
        )

    def __len__(self) -> int:
        return len(self._modules)

    def extra_repr(self) -> str:
        return f"axis={self._axis}"


class Residual(Block):
    """Add the input to a block's output: `y = x + block(x)`.

    The block infers its sizes from the input on the first batch as usual. Its output
    must have the input's shape; another shape (even one that would broadcast) is a
    [`ShapeMismatchError`][lateinit.ShapeMismatchError] naming this layer. That check is
    one shape comparison per call.

    Args:
        block: the residual branch (any `torch.nn.Module`), kept as the child `body`.

    Shape:
        - Input: `(*)`.
        - Output: `(*)`, the input's shape.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Residual(nn.Dense(4, flatten=False))
        >>> net(torch.rand(2, 4)).shape
        torch.Size([2, 4])
        >>> net
        Residual(
          (body): Dense(4 -> 4)
        )
    """

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        if not isinstance(block, torch.nn.Module):
            raise TypeError(
                f"Residual: block must be a Block or torch.nn.Module, got {block!r}; wrap "
                "functions in nn.Lambda"
            )
        self.body = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if out.shape != x.shape:
            raise ShapeMismatchError(
                f"{layer_label(self, locate(self)[1])}: its block maps an input of shape "
                f"{fmt_shape(tuple(x.shape))} to {fmt_shape(tuple(out.shape))}, but a residual "
                "connection needs the same shape to add them. Fix: make the block keep the "
                "shape (e.g. Dense(units=input size, flatten=False)), or project the input."
            )
        return x + out
