"""Save and load collections of tensors: Gluon's ``npx.save`` / ``npx.load``.

``lateinit.save(path, tensors)`` writes a dict of name -> tensor, a list of tensors, or
one tensor to a safetensors file; ``lateinit.load(path)`` reads it back as it was given:
a dict, or a list (stored under the keys ``"0"``, ``"1"``... with a metadata flag; one
tensor comes back as a list of one, as in Gluon). Safetensors files hold only raw
tensor bytes, so loading never unpickles. Network parameters have their own, checked
format: ``Block.save_parameters`` (``lateinit.io``).

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
    """Write tensors to a safetensors file: Gluon's `npx.save`.

    The kind of collection is recorded in the file's metadata, so
    [`load`][lateinit.load] gives back a dict for a dict and a list for a list (one
    tensor comes back as a list of one, as in Gluon). Values are copied to CPU; tensors
    that share memory are written separately. For a network's parameters, use
    [`Block.save_parameters`][lateinit.Block.save_parameters], which checks keys,
    shapes and checksums when loading.

    Args:
        path: the file to write (replaced if it exists).
        tensors: a dict of `str` -> tensor, a list or tuple of tensors, or one tensor.

    Raises:
        TypeError: a dict key that is not a `str`, a value that is not a tensor, or
            another kind of collection.

    Examples:
        >>> import os, tempfile, torch
        >>> import lateinit
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = os.path.join(tmp.name, "arrays.safetensors")
        >>> lateinit.save(path, [torch.ones(2), torch.zeros(3)])
        >>> [t.tolist() for t in lateinit.load(path)]
        [[1.0, 1.0], [0.0, 0.0, 0.0]]
        >>> lateinit.save(path, {"w": torch.eye(2)})
        >>> lateinit.load(path)["w"].shape
        torch.Size([2, 2])
        >>> tmp.cleanup()
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
    """Read a file written by [`save`][lateinit.save]: Gluon's `npx.load`.

    Any safetensors file can be read (it comes back as a dict). Nothing is unpickled:
    safetensors files hold only raw tensor bytes.

    Args:
        path: the safetensors file.
        device: where the tensors go (default: CPU).

    Returns:
        A dict of name -> tensor, or a list of tensors if a list (or one tensor) was
        saved.

    Examples:
        >>> import os, tempfile, torch
        >>> import lateinit
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "stats.safetensors")
        ...     lateinit.save(path, {"mean": torch.zeros(3), "std": torch.ones(3)})
        ...     stats = lateinit.load(path, device="cpu")
        >>> sorted(stats), stats["std"].tolist()
        (['mean', 'std'], [1.0, 1.0, 1.0])
    """
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
