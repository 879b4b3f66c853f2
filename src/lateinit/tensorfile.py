"""Save and load collections of tensors: Gluon's ``npx.save`` / ``npx.load``.

``lateinit.save(path, tensors)`` writes a dict of name -> tensor, a list of tensors, or
one tensor to a safetensors file; ``lateinit.load(path)`` reads it back as it was given:
a dict, or a list (stored under the keys ``"0"``, ``"1"``... with a metadata flag; one
tensor comes back as a list of one, as in Gluon). Safetensors files hold only raw
tensor bytes, so loading never unpickles. Network parameters have their own, checked
format: ``Block.save_parameters`` (:mod:`lateinit.io`).

This module sits in the leaf layer: it imports only torch and safetensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["save", "load"]

_KIND_KEY = "lateinit.collection"  # "dict" or "list"


def save(path: str | os.PathLike[str], tensors: Any) -> None:
    """Write ``tensors`` (a dict of str -> tensor, a list/tuple of tensors, or one
    tensor) to the safetensors file ``path``.

    Example:
        >>> import os, tempfile, torch, lateinit
        >>> path = os.path.join(tempfile.mkdtemp(), "arrays.safetensors")
        >>> lateinit.save(path, [torch.ones(2), torch.zeros(3)])
        >>> [t.tolist() for t in lateinit.load(path)]
        [[1.0, 1.0], [0.0, 0.0, 0.0]]
        >>> lateinit.save(path, {"w": torch.eye(2)})
        >>> lateinit.load(path)["w"].shape
        torch.Size([2, 2])
    """
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    if isinstance(tensors, Mapping):
        kind, items = "dict", list(tensors.items())
        bad_keys = [k for k, _ in items if not isinstance(k, str)]
        if bad_keys:
            raise TypeError(f"save: dict keys must be str, got {bad_keys[0]!r}")
    elif isinstance(tensors, Sequence) and not isinstance(tensors, (str, bytes)):
        kind, items = "list", [(str(i), t) for i, t in enumerate(tensors)]
    else:
        raise TypeError(
            f"save: give a dict of str -> tensor, a list of tensors or one tensor, "
            f"got {type(tensors).__name__}"
        )
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in items:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"save: {key!r} is a {type(value).__name__}, not a tensor")
        flat = value.detach().contiguous()
        where = (flat.untyped_storage().data_ptr(), flat.device.index or 0)
        if flat.numel() and where in seen:  # safetensors refuses shared memory
            flat = flat.clone()
        seen.add((flat.untyped_storage().data_ptr(), flat.device.index or 0))
        out[key] = flat.cpu() if flat.device.type != "cpu" else flat
    save_file(out, os.fspath(path), metadata={_KIND_KEY: kind})


def load(
    path: str | os.PathLike[str], *, device: torch.device | str | None = None
) -> dict[str, torch.Tensor] | list[torch.Tensor]:
    """Read a file written by :func:`save` (or any safetensors file: a dict) onto
    ``device`` (default: CPU). A list comes back as a list."""
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
        kind = (f.metadata() or {}).get(_KIND_KEY, "dict")
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    if device is not None:
        tensors = {k: v.to(device) for k, v in tensors.items()}
    if kind == "list":
        return [tensors[str(i)] for i in range(len(tensors))]
    return tensors
