"""Containers: Sequential."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, overload

import torch

from ..block import Block

__all__ = ["Sequential"]


class Sequential(Block):
    """Run child blocks one after another; each one's output is the next one's input.

    Build it empty and ``add`` blocks, or pass them: ``Sequential(a, b)`` or
    ``Sequential([a, b])``. Children are named ``"0"``, ``"1"``...; any
    ``torch.nn.Module`` can be one. Supports ``len``, iteration, indexing, and slicing
    (a slice is a new ``Sequential`` sharing the same child blocks).

    Example:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Sequential()
        >>> net.add(nn.Dense(8, activation="relu"), nn.Dense(2))
        >>> net(torch.rand(3, 5)).shape, len(net), net[1:]
        (torch.Size([3, 2]), 2, Sequential(
          (0): Dense(8 -> 2)
        ))
    """

    def __init__(self, *blocks: torch.nn.Module | Iterable[torch.nn.Module]) -> None:
        super().__init__()
        if len(blocks) == 1 and not isinstance(blocks[0], torch.nn.Module):
            blocks = tuple(blocks[0])  # type: ignore[arg-type]
        self.add(*blocks)  # type: ignore[arg-type]

    def add(self, *blocks: torch.nn.Module) -> None:
        """Append blocks (any ``torch.nn.Module``) at the end."""
        for block in blocks:
            if not isinstance(block, torch.nn.Module):
                raise TypeError(
                    f"Sequential.add: expected a Block or torch.nn.Module, got "
                    f"{type(block).__name__}; wrap functions in nn.Lambda"
                )
            self.add_module(str(len(self._modules)), block)

    def forward(self, x: Any) -> Any:
        for block in self._modules.values():
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
