"""Parameter files: safetensors save and load, keyed by structural names, all or nothing.

``save_parameters`` writes every parameter and persistent buffer of a network (its
``state_dict`` names, ``"0.weight"``) to a safetensors file; a tensor reachable under
several names (a shared parameter, a block used twice) is written once and the other
names are recorded as ties in the file's metadata. The file is written under a temporary
name in the same directory, flushed to disk, then renamed over the target.

``load_parameters`` checks the whole file against the network before changing anything
(the file's structure, every key, shape and dtype). Deferred tensors get new memory, read
from the file, and become READY together (journaled: a failure part-way defers them all
again); their unknown dims are taken from the file (no forward pass, no initializer run).
READY tensors keep their identity and memory: the file's bytes are read straight into
them (or converted, for another dtype or device). Safetensors files hold only raw tensor
bytes, so nothing is ever unpickled.

Memory: one read per tensor straight into its final memory (no memory map, no staging
copy, no second copy of the file), so the peak growth while loading is the size of the
values that need new memory: the whole file for a deferred network, nothing for a READY
one of the same dtype. Loading to a GPU goes through safetensors' own reader.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import stat
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .block import Block
from .parameter import Parameter, commit_storage, transaction
from .shapes import (
    DeferredInitializationError,
    ShapeMismatchError,
    fmt_list,
    fmt_shape,
    not_ready_fixes,
)
from .version import __version__

__all__ = ["ParameterFileError", "atomic_write", "load_parameters", "save_parameters"]

_VERSION_KEY = "lateinit.version"
_DTYPES_KEY = "lateinit.dtypes"
_TIED_KEY = "lateinit.tied"
_SHOWN = 24  # problem lines in one message before "... and N more"

# The safetensors header's dtype names.
_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "C64": torch.complex64,
    **{
        name: getattr(torch, attr)
        for name, attr in (
            ("F8_E4M3", "float8_e4m3fn"),
            ("F8_E5M2", "float8_e5m2"),
            ("U16", "uint16"),
            ("U32", "uint32"),
            ("U64", "uint64"),
        )
        if hasattr(torch, attr)
    },
}


class ParameterFileError(ValueError, RuntimeError):
    """A parameter file that is not a valid safetensors file, or whose keys do not match
    the network. A ``ValueError``; also a ``RuntimeError``, which is what torch's
    ``load_state_dict`` raises for missing and unexpected keys."""


# -- saving ---------------------------------------------------------------------------------


def save_parameters(
    module: torch.nn.Module, path: str | os.PathLike[str], *, sync: bool = True
) -> None:
    """Write ``module``'s parameters and persistent buffers to a safetensors file.

    Args:
        module: any ``torch.nn.Module`` (a lateinit Block or a plain torch module holding
            some); every parameter must be READY.
        path: the file to write; it is replaced atomically if it exists.
        sync: flush the new file to disk (``fsync``) before renaming it over ``path``, so
            that even a power cut leaves the old file or the complete new one. With
            ``False`` a crashed process still never leaves a broken file, but after a
            power cut some file systems may show an incomplete new one; saving is then
            as fast as a plain ``safetensors`` write (the flush costs about the time of
            writing the bytes to the disk).

    Keys are ``state_dict`` names. A tensor reachable under several names is stored once,
    under its first name; the file's metadata records the other names (``lateinit.tied``),
    the library version and each stored tensor's dtype. A parameter that is not READY is
    a ``DeferredInitializationError`` naming it, and no file is written.

    Example:
        >>> import os, tempfile, torch
        >>> from lateinit import nn
        >>> from lateinit.io import save_parameters
        >>> dense = nn.Dense(2, in_units=3)
        >>> net = nn.Sequential(dense, nn.Dense(3), dense)  # dense used twice: shared
        >>> _ = net(torch.ones(1, 3))
        >>> path = os.path.join(tempfile.mkdtemp(), "net.safetensors")
        >>> save_parameters(net, path)
        >>> from safetensors import safe_open
        >>> with safe_open(path, "pt") as f:
        ...     print(sorted(f.keys()), f.metadata()["lateinit.tied"])
        ['0.bias', '0.weight', '1.bias', '1.weight'] {"2.weight": "0.weight", "2.bias": "0.bias"}
    """
    target = os.fspath(path)
    _name_params(module)
    entries = list(module.state_dict(keep_vars=True).items())
    not_ready = [(n, t) for n, t in entries if isinstance(t, Parameter)]
    if not_ready:
        listed = fmt_list(f"{n!r} {fmt_shape(tuple(t.shape))}" for n, t in not_ready)
        raise DeferredInitializationError(
            f"cannot save the parameters of {type(module).__name__} to {target!r}: "
            f"{len(not_ready)} parameter(s) are not created yet (their initialization is "
            f"deferred; -1 marks an unknown dim): {listed}. No file was written. "
            f"Fix: {not_ready_fixes()}."
        )
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    first_name: dict[int, str] = {}
    storages: set[int] = set()
    for name, tensor in entries:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"cannot save {name!r} of {type(module).__name__}: its state_dict entry is a "
                f"{type(tensor).__name__}, not a tensor; safetensors files hold tensors only. "
                "No file was written."
            )
        first = first_name.setdefault(id(tensor), name)
        if first != name:
            tied[name] = first
            continue
        if tensor.device.type == "meta":
            raise ValueError(
                f"cannot save {name!r} of {type(module).__name__}: it is on the meta device "
                "and holds no values. No file was written. Fix: initialize the network on a "
                "real device (net.initialize(device=...)) before saving."
            )
        data = tensor.detach()
        if data.device.type != "cpu":
            data = data.cpu()
        data = data.contiguous()
        storage = data.untyped_storage().data_ptr()
        if data.numel() and storage in storages:  # a view of a tensor already stored
            data = data.clone()
        storages.add(data.untyped_storage().data_ptr())
        tensors[name] = data
    metadata = {
        "format": "pt",
        _VERSION_KEY: __version__,
        _DTYPES_KEY: json.dumps(
            {n: str(t.dtype).removeprefix("torch.") for n, t in tensors.items()}
        ),
        _TIED_KEY: json.dumps(tied),
    }
    atomic_write(target, lambda tmp: save_file(tensors, tmp, metadata), sync)


def atomic_write(path: str, write: Callable[[str], None], sync: bool) -> None:
    """Run ``write(tmp)`` on a new file beside ``path``, flush it to disk (if ``sync``),
    rename it over ``path``. On any failure the temporary file is removed and ``path`` is
    untouched."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save parameters to {path!r}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies
    try:
        # The mode of the file being replaced, else the usual mode for a new file (the
        # writer may re-create the file with its own mode).
        mode = stat.S_IMODE(os.stat(path if os.path.exists(path) else tmp).st_mode)
        write(tmp)
        os.chmod(tmp, mode)
        if sync:  # the data reaches the disk before the rename can
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- loading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """One tensor in the file: dtype, shape and byte range in the data section."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class _Item:
    """One network tensor to load: its names, the file key, and where its value goes."""

    names: list[str]
    tensor: torch.Tensor
    key: str
    dtype: torch.dtype
    device: torch.device


def load_parameters(
    module: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    allow_missing: bool = False,
    ignore_extra: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Load a safetensors file into ``module``, all or nothing.

    Args:
        module: the network (deferred, SHAPED or READY, or any mix).
        path: a safetensors file, typically written by :func:`save_parameters`.
        allow_missing: leave the network's tensors that the file does not hold as they
            are (deferred ones stay deferred) instead of raising.
        ignore_extra: skip the file's keys that the network does not have instead of
            raising.
        device: where the values go (default: each parameter's own device; for a deferred
            one, the device it was meant to be created on). A READY parameter given
            another device is moved there, keeping its identity.
        dtype: the floating dtype of the loaded floating tensors (default: each tensor's
            own dtype). Stored values are converted float to float; any other dtype change
            is refused.

    Raises (nothing in the network changed): ``ParameterFileError`` for a file that is not
    valid safetensors (empty, truncated, corrupted, a pickle) and for missing or extra
    keys; ``ShapeMismatchError`` for a stored shape that contradicts a known dim (naming
    the key, the layer, and both shapes); ``TypeError`` for a dtype that cannot be
    converted. Only an operating-system read error after all checks passed (a failing
    disk, another process cutting the file short meanwhile) can stop the load part-way:
    deferred tensors are then deferred again, and the ``ParameterFileError`` lists the
    READY tensors that already hold the file's values.

    A tie recorded in the file (two names, one tensor) is restored when the network holds
    the two as separate parameters. A network that ties two names the file stores
    separately takes the value stored under the first name.
    """
    source = os.fspath(path)
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"load_parameters: dtype must be a floating dtype, got {dtype}")
    target_device = torch.device(device) if device is not None else None
    stored, metadata, data_start = _read_index(source)
    tied = _read_tied(source, metadata, stored)
    _name_params(module)
    groups = _groups(module)
    items, retie, problems = _plan(
        module, groups, stored, tied, allow_missing, ignore_extra, target_device, dtype
    )
    if problems.any():
        raise problems.error(source, module)
    values = _read_values(source, stored, data_start, items)
    _commit(module, source, stored, data_start, items, values, retie)


def _read_index(path: str) -> tuple[dict[str, _Stored], dict[str, str], int]:
    """Validate the file with safetensors, then read the byte offsets of its tensors."""
    try:
        with safe_open(path, framework="pt") as f:
            keys = set(f.keys())
            metadata = dict(f.metadata() or {})
    except SafetensorError as err:
        raise ParameterFileError(_not_safetensors(path, str(err))) from err
    # safetensors checked the header (JSON, dtypes, shapes, contiguous offsets covering the
    # whole file) but does not expose the offsets, which a direct read needs.
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    if set(header) != keys:
        raise ParameterFileError(_not_safetensors(path, "the file changed while being read"))
    stored = {}
    for key, entry in header.items():
        if entry["dtype"] not in _DTYPES:
            raise ParameterFileError(
                f"cannot load {path!r}: tensor {key!r} has dtype {entry['dtype']}, which this "
                "torch build cannot hold."
            )
        begin, end = entry["data_offsets"]
        stored[key] = _Stored(_DTYPES[entry["dtype"]], tuple(entry["shape"]), begin, end)
    return stored, metadata, 8 + size


def _not_safetensors(path: str, reason: str) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        head = fh.read(4)
        if head[:2] == b"PK" or head[:1] == b"\x80":
            reason += (
                "; it looks like a torch.save (pickle) file, which this loader never "
                "unpickles. Fix: torch.load(path, weights_only=True) and "
                "net.load_state_dict(...), or re-save it with net.save_parameters(path)"
            )
    return (
        f"cannot load {path!r}: it is not a valid safetensors file ({reason}). Nothing "
        "was changed. Fix: check the path; a file cut short by a crashed copy must be "
        "copied or saved again."
    )


def _read_tied(path: str, metadata: Mapping[str, str], stored: Mapping[str, _Stored]) -> dict:
    raw = metadata.get(_TIED_KEY)
    if raw is None:
        return {}
    try:
        tied = json.loads(raw)
        valid = isinstance(tied, dict) and all(
            isinstance(a, str) and isinstance(c, str) and c in stored for a, c in tied.items()
        )
    except ValueError:
        valid = False
    if not valid:
        raise ParameterFileError(
            f"cannot load {path!r}: its {_TIED_KEY!r} metadata is corrupted ({raw[:80]!r}). "
            "Nothing was changed."
        )
    return tied


def _groups(module: torch.nn.Module) -> list[tuple[torch.Tensor, list[str]]]:
    """The network's tensors (state_dict order), each once, with all of its names."""
    by_id: dict[int, tuple[torch.Tensor, list[str]]] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        if isinstance(tensor, torch.Tensor):
            by_id.setdefault(id(tensor), (tensor, []))[1].append(name)
    return list(by_id.values())


class _Problems:
    """What does not fit, collected over the whole network before raising."""

    def __init__(self) -> None:
        self.shapes: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]] = []
        self.dtypes: list[str] = []
        self.missing: list[str] = []
        self.extra: list[str] = []

    def any(self) -> bool:
        return bool(self.shapes or self.dtypes or self.missing or self.extra)

    def error(self, path: str, module: torch.nn.Module) -> Exception:
        lines = [
            f"{where}: the network expects shape {fmt_shape(want)}"
            + (" (-1 = not known yet)" if -1 in want else "")
            + f" but the file stores {fmt_shape(got)}"
            for _, where, want, got in self.shapes
        ]
        lines += self.dtypes
        lines += [f"{where}: not in the file" for where in self.missing]
        if self.extra:
            lines.append(
                f"the file has {len(self.extra)} key(s) the network does not: "
                + fmt_list(repr(k) for k in self.extra)
            )
        fixes = []
        if self.shapes:
            fixes.append(
                "build the network with the sizes the file was saved from (a layer whose "
                "input size is left unset takes it from the file)"
            )
        if self.dtypes:
            fixes.append("store or convert the tensor to the dtype the network uses")
        if self.missing:
            fixes.append("pass allow_missing=True to leave the missing ones as they are")
        if self.extra:
            fixes.append("pass ignore_extra=True to skip the extra keys")
        shown = [f"  - {line}" for line in lines[:_SHOWN]]
        if len(lines) > len(shown):
            shown.append(f"  - ... and {len(lines) - len(shown)} more")
        message = (
            f"cannot load {path!r} into {type(module).__name__}; nothing was changed:\n"
            + "\n".join(shown)
            + "\nFix: "
            + "; ".join(fixes)
            + "."
        )
        if self.shapes:
            key, _, want, got = self.shapes[0]
            return ShapeMismatchError(message, param=key, expected=want, got=got)
        if self.dtypes:
            return TypeError(message)
        return ParameterFileError(message)


def _plan(
    module: torch.nn.Module,
    groups: list[tuple[torch.Tensor, list[str]]],
    stored: Mapping[str, _Stored],
    tied: Mapping[str, str],
    allow_missing: bool,
    ignore_extra: bool,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> tuple[list[_Item], list[tuple[str, torch.nn.Parameter]], _Problems]:
    """Match every network tensor with a file key and check it; change nothing."""
    problems = _Problems()
    items: list[_Item] = []
    used: set[str] = set()
    owner = {name: tensor for tensor, names in groups for name in names}
    retie: list[tuple[str, Any]] = []  # (alias name, the tensor it becomes)
    for tensor, names in groups:
        keys = [k for n in names for k in (n, tied.get(n)) if k is not None and k in stored]
        used.update(keys)
        if not keys:
            if not allow_missing:
                problems.missing.append(_where(module, names[0]))
            continue
        key = keys[0]
        entry = stored[key]
        where = _where(module, names[0], key)
        declared = tuple(tensor.shape)
        if not _fits(declared, entry.shape):
            problems.shapes.append((key, where, declared, entry.shape))
            continue
        want = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
        if entry.dtype != want and not (entry.dtype.is_floating_point and want.is_floating_point):
            problems.dtypes.append(
                f"{where}: the file stores {_dtype_name(entry.dtype)} but the network needs "
                f"{_dtype_name(want)} (only floating point values are converted)"
            )
            continue
        canonical = owner.get(tied.get(names[0], ""))
        if (
            len(names) == 1
            and canonical is not None
            and canonical is not tensor
            and _is_param(module, names[0]) == _is_param(module, tied[names[0]])
        ):
            retie.append((names[0], canonical))  # becomes the same object as its original
            continue
        items.append(_Item(names, tensor, key, want, device or tensor.device))
    if not ignore_extra:
        problems.extra = [k for k in stored if k not in used]
    return items, retie, problems


def _fits(declared: tuple[int, ...], stored: tuple[int, ...]) -> bool:
    return len(declared) == len(stored) and all(
        d in (-1, s) for d, s in zip(declared, stored, strict=True)
    )


def _in_place(item: _Item, entry: _Stored) -> bool:
    """Whether the file's bytes can be read straight into the READY tensor's memory."""
    t = item.tensor
    return (
        not isinstance(t, Parameter)
        and t.device.type == "cpu"
        and item.device == t.device
        and entry.dtype == item.dtype == t.dtype
        and t.is_contiguous()
    )


def _read_values(
    path: str, stored: Mapping[str, _Stored], data_start: int, items: list[_Item]
) -> list[torch.Tensor | None]:
    """Read the value of every item that cannot be read in place into new memory, in its
    target dtype and on its target device (``None`` for the in-place ones)."""
    values: list[torch.Tensor | None] = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: stored[items[i].key].begin)
    devices: dict[torch.device, Any] = {}
    try:
        with open(path, "rb", buffering=0) as fh, contextlib.ExitStack() as stack:
            for i in order:
                item, entry = items[i], stored[items[i].key]
                if _in_place(item, entry):
                    continue
                if item.device.type == "meta":
                    value = torch.empty(entry.shape, dtype=item.dtype, device="meta")
                elif item.device.type == "cpu":
                    value = torch.empty(entry.shape, dtype=entry.dtype)
                    _read_into(fh, data_start + entry.begin, entry.end - entry.begin, value)
                else:  # safetensors' own reader puts the bytes on the device
                    if item.device not in devices:
                        devices[item.device] = stack.enter_context(
                            safe_open(path, framework="pt", device=str(item.device))
                        )
                    value = devices[item.device].get_tensor(item.key)
                values[i] = value.to(item.dtype) if value.dtype != item.dtype else value
    except SafetensorError as err:
        raise ParameterFileError(_not_safetensors(path, str(err))) from err
    return values


def _read_into(fh: Any, offset: int, nbytes: int, out: torch.Tensor) -> None:
    """Read ``nbytes`` at ``offset`` straight into ``out``'s memory (a contiguous CPU
    tensor of exactly that many bytes)."""
    if nbytes == 0:
        return
    fh.seek(offset)
    view = memoryview((ctypes.c_char * nbytes).from_address(out.data_ptr())).cast("B")
    done = 0
    while done < nbytes:
        n = fh.readinto(view[done:])
        if not n:
            raise ParameterFileError(
                f"cannot load {fh.name!r}: the file ended early (it was cut short while "
                "being read)."
            )
        done += n


def _commit(
    module: torch.nn.Module,
    path: str,
    stored: Mapping[str, _Stored],
    data_start: int,
    items: list[_Item],
    values: list[torch.Tensor | None],
    retie: list[tuple[str, Any]],
) -> None:
    """Put the values in: deferred tensors first (journaled: rolled back on failure),
    then READY ones (copied, or read from the file straight into their memory), then the
    restored ties."""
    direct = [item for item, value in zip(items, values, strict=True) if value is None]
    with transaction():
        for i, item in enumerate(items):
            value = values[i]
            if isinstance(item.tensor, Parameter) and value is not None:
                item.tensor.shape = tuple(value.shape)
                commit_storage(item.tensor, value)
                values[i] = None
    with torch.no_grad():
        for i, item in enumerate(items):
            value, values[i] = values[i], None
            if value is None:
                continue
            if value.device == item.tensor.device and value.dtype == item.tensor.dtype:
                item.tensor.copy_(value)
            else:
                item.tensor.data = value
    _read_in_place(path, stored, data_start, direct)
    for alias, tensor in retie:
        owner_name, _, attr = alias.rpartition(".")
        owner = module.get_submodule(owner_name)
        table = owner._parameters if attr in owner._parameters else owner._buffers
        table[attr] = tensor
    _disarm(module)


def _read_in_place(
    path: str, stored: Mapping[str, _Stored], data_start: int, items: list[_Item]
) -> None:
    """Read READY tensors' values straight from the file into their memory (no staging
    copy: the file was fully checked first, so only an operating-system read error, or
    another process cutting the file short meanwhile, can stop this part-way)."""
    items = sorted(items, key=lambda it: stored[it.key].begin)
    done: list[str] = []
    try:
        with open(path, "rb", buffering=0) as fh:
            for item in items:
                entry = stored[item.key]
                _read_into(fh, data_start + entry.begin, entry.end - entry.begin, item.tensor)
                done.append(item.names[0])
    except (OSError, ParameterFileError) as err:
        raise ParameterFileError(
            f"reading {path!r} failed part-way ({err}): {len(done)} of {len(items)} READY "
            f"tensors were already replaced in place ({fmt_list(repr(n) for n in done)}); "
            "every other tensor is as it was. Fix: check the file and the disk, then load "
            "again."
        ) from err


# -- helpers ----------------------------------------------------------------------------------


def _name_params(module: torch.nn.Module) -> None:
    if isinstance(module, Block):
        module._name_params()


def _disarm(module: torch.nn.Module) -> None:
    if isinstance(module, Block):
        module._disarm_tree()
    else:
        for child in module.children():
            _disarm(child)


def _where(module: torch.nn.Module, name: str, key: str | None = None) -> str:
    owner_name = name.rpartition(".")[0]
    try:
        owner = type(module.get_submodule(owner_name)).__name__
    except AttributeError:
        owner = "?"
    layer = f"layer {owner_name!r} ({owner})" if owner_name else f"{owner} (the network)"
    stored = f" (stored as {key!r})" if key is not None and key != name else ""
    return f"{name!r}{stored} of {layer}"


def _is_param(module: torch.nn.Module, name: str) -> bool:
    owner_name, _, attr = name.rpartition(".")
    try:
        return attr in module.get_submodule(owner_name)._parameters
    except AttributeError:
        return False


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
