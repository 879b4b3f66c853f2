"""Parameter files: safetensors save and load, keyed by structural names, all or nothing.

``save_parameters`` writes every parameter and persistent buffer of a network (its
``state_dict`` names, ``"0.weight"``) to a safetensors file; a tensor reachable under
several names (a shared parameter, a block used twice) is written once and the other
names are recorded as ties in the file's metadata, with a checksum of every tensor's bytes
(xxh3_64). The file is written under a temporary name in the same directory (locked while
being written, so the next save of the path can tell a temporary file left by a killed
save from one being written, and removes it), flushed to disk, then renamed over the
target (through a symlink: over the file it points to).

``load_parameters`` opens the file once and does everything through that one descriptor,
so a concurrent save (a rename over the path) can never mix two files. It checks the whole
file against the network before changing anything (the file's structure, every key, shape
and dtype, and the checksums of the values it reads). Deferred tensors get new memory,
read from the file, and become READY together; READY tensors keep their identity and
memory: the file's bytes are read straight into them (or converted, for another dtype or
device). Every change is journaled and rolled back if a later step fails; only an
operating-system read error while reading straight into READY tensors (the last step) can
leave some of them changed, and the error lists them. Writes into READY tensors bump their
autograd version counters, as ``load_state_dict`` does. Safetensors files hold only raw
tensor bytes, so nothing is ever unpickled.

Memory: one read per tensor straight into its final memory (no memory map, no staging
copy, no second copy of the file), so the peak growth while loading is the size of the
values that need new memory: the whole file for a deferred network, nothing for a READY
one of the same dtype. Checksums are computed on 1 MB chunks right after each is read,
while it is in the cache, in the reading thread (a second thread hashing chunk k while
chunk k+1 is read measured no faster on 2 shared cores, and slower under load; see
benchmarks/README.md). The values read straight into READY tensors are checked in a first
pass (through a 1 MB buffer), since they may not change before every value is known to be
good: a verified load into READY tensors reads their bytes twice. A tensor for another
device is read into CPU memory, checked, then copied to the device.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import hashlib
import json
import math
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import xxhash

from .block import Block, gluon_key_map
from .parameter import Parameter, active_journal, commit_storage, materialize, transaction
from .progress import Progress
from .shapes import (
    DeferredInitializationError,
    ShapeMismatchError,
    fmt_list,
    fmt_shape,
    not_ready_fixes,
)
from .version import __version__

try:
    import fcntl
except ImportError:  # no advisory locks (Windows): leftover temporary files are kept
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ParameterFileError",
    "atomic_write",
    "export_network",
    "load_parameters",
    "save_parameters",
]

_VERSION_KEY = "lateinit.version"
_DTYPES_KEY = "lateinit.dtypes"
_TIED_KEY = "lateinit.tied"
_CHECKSUMS_KEY = "lateinit.xxh3_64"  # {key: 16 hex digits of xxh3_64 over its bytes}
_SHOWN = 24  # problem lines in one message before "... and N more"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header
_CHUNK = 1 << 20  # hashed while in the cache (L2)
# The first pass over bytes bound for READY tensors reads through a buffer of this size:
# 1 MB takes that pass ~8% less time than 128 KB did (512 KB-4 MB are alike), measured
# in one process, interleaved, on the 1 GB benchmark file (benchmarks/README.md).
_VERIFY_BUFFER = 1 << 20
_NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO by mistake must not hang
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_INDEX_NAME = "model.safetensors.index.json"  # Hugging Face's sharded checkpoint index

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
_CODES: dict[torch.dtype, str] = {dtype: code for code, dtype in _DTYPES.items()}


class ParameterFileError(ValueError, RuntimeError):
    """A parameter file that is not a valid safetensors file, or whose keys do not match
    the network.

    Raised by [`Block.load_parameters`][lateinit.Block.load_parameters] before anything
    changes (every parameter stays as it was: a deferred network stays deferred): for
    a file that cannot be read, is empty, truncated or corrupted (values that do not
    match their checksums), is not safetensors (a pickle), or has missing or extra
    keys; the message names the file, the keys and their layers, and the fix. A
    `ValueError`; also a `RuntimeError`, which is what torch's `load_state_dict` raises
    for missing and unexpected keys.

    Examples:
        >>> import os, tempfile, torch
        >>> from lateinit import nn
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = os.path.join(tmp.name, "net.safetensors")
        >>> nn.Sequential(nn.Dense(4, in_units=3)).initialize().save_parameters(path)
        >>> net = nn.Sequential(nn.Dense(4), nn.Dense(2))
        >>> net.load_parameters(path)
        Traceback (most recent call last):
        ...
        lateinit.io.ParameterFileError: cannot load '...net.safetensors' into Sequential; ...
          - '1.weight' of layer '1' (Dense): not in the file
          - '1.bias' of layer '1' (Dense): not in the file
        Fix: pass allow_missing=True to leave the missing ones as they are.
        >>> net[0].weight  # nothing was changed
        Parameter(shape=(4, -1), dtype=float32, device=cpu, state=DECLARED)
        >>> tmp.cleanup()
    """


# -- saving ---------------------------------------------------------------------------------


def save_parameters(
    module: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    sync: bool = True,
    checksums: bool = True,
    progress: bool | None = None,
) -> None:
    """Write ``module``'s parameters and persistent buffers to a safetensors file.

    Args:
        module: any ``torch.nn.Module`` (a lateinit Block or a plain torch module holding
            some); every parameter must be READY.
        path: the file to write; it is replaced atomically if it exists (a symlink stays a
            symlink: the file it points to is replaced).
        sync: flush the new file to disk (``fsync``) before renaming it over ``path``, so
            that even a power cut leaves the old file or the complete new one. With
            ``False`` a crashed process still never leaves a broken file, but after a
            power cut some file systems may show an incomplete new one; saving is then
            as fast as a plain ``safetensors`` write (the flush costs about the time of
            writing the bytes to the disk).
        checksums: store a checksum (xxh3_64) of every tensor's bytes in the metadata
            (``lateinit.xxh3_64``), which ``load_parameters`` verifies.
        progress: a progress bar on stderr: ``None`` shows one only for a save that
            takes over 2 s on a terminal, ``True`` always, ``False`` never (see
            :mod:`lateinit.progress`).

    Keys are ``state_dict`` names. A tensor reachable under several names is stored once,
    under its first name; the file's metadata records the other names (``lateinit.tied``),
    the library version and each stored tensor's dtype. A parameter that is not READY is
    a ``DeferredInitializationError`` naming it, and no file is written. A temporary file
    left beside ``path`` by a save that was killed is removed.

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
        if tensor.dtype not in _CODES:
            raise TypeError(
                f"cannot save {name!r} of {type(module).__name__}: safetensors files cannot "
                f"hold its dtype {_dtype_name(tensor.dtype)}. No file was written. Fix: "
                "convert it to a supported dtype (e.g. float32) before saving."
            )
        data = tensor.detach()
        if data.device.type != "cpu":
            data = data.cpu()
        tensors[name] = data.contiguous()
    metadata = {
        "format": "pt",
        _VERSION_KEY: __version__,
        _DTYPES_KEY: json.dumps(
            {n: str(t.dtype).removeprefix("torch.") for n, t in tensors.items()}
        ),
        _TIED_KEY: json.dumps(tied),
    }
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with (
        _replacing(target, sync) as (_, fd),
        Progress(total, f"saving {os.path.basename(target)}", progress) as bar,
    ):
        _write_safetensors(fd, tensors, metadata, checksums, bar)


def _write_safetensors(
    fd: int,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    checksums: bool,
    bar: Progress | None = None,
) -> None:
    """Write a safetensors file through ``fd``: the header, then every tensor's bytes
    (hashed chunk by chunk while in the cache), then the header again with the checksums
    (hex digits of a fixed width: the same length as the placeholder written first)."""
    order = sorted(tensors, key=lambda n: -tensors[n].element_size())  # keeps them aligned
    entries: dict[str, Any] = {}
    offset = 0
    for name in order:
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        entries[name] = {
            "dtype": _CODES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    digests = dict.fromkeys(order, "0" * 16)

    def header() -> bytes:
        meta = dict(metadata)
        if checksums:
            meta[_CHECKSUMS_KEY] = json.dumps(digests)
        raw = json.dumps({"__metadata__": meta, **entries}, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors does
        return len(raw).to_bytes(8, "little") + raw

    first = header()
    with open(fd, "wb", buffering=0, closefd=False) as fh:
        _write_all(fh, memoryview(first))
        for name in order:
            view = _bytes_of(tensors[name])
            hasher = xxhash.xxh3_64() if checksums else None
            for start in range(0, len(view), _CHUNK):
                chunk = view[start : start + _CHUNK]
                if hasher is not None:
                    hasher.update(chunk)
                _write_all(fh, chunk)
                if bar is not None:
                    bar.advance(len(chunk))
            if hasher is not None:
                digests[name] = hasher.hexdigest()
        if checksums:
            final = header()
            assert len(final) == len(first)
            fh.seek(0)
            _write_all(fh, memoryview(final))


def _write_all(fh: Any, view: memoryview) -> None:
    done = 0
    while done < len(view):
        done += fh.write(view[done:])


def _bytes_of(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, without a copy."""
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes == 0:
        return memoryview(b"")
    return memoryview((ctypes.c_char * nbytes).from_address(tensor.data_ptr())).cast("B")


def atomic_write(path: str, write: Callable[[str], None], sync: bool) -> None:
    """Run ``write(tmp)`` on a new file beside ``path``, flush it to disk (if ``sync``),
    rename it over ``path`` (over the file it points to, if ``path`` is a symlink). On any
    failure the temporary file is removed and ``path`` is untouched."""
    with _replacing(path, sync) as (tmp, _):
        write(tmp)


@contextlib.contextmanager
def _replacing(path: str, sync: bool) -> Iterator[tuple[str, int]]:
    """A new, locked temporary file beside ``path`` (its name and a descriptor open for
    writing); on a clean exit it gets the mode of the file it replaces (else the umask's
    default), is flushed to disk (if ``sync``) and renamed over ``path``. On any failure
    it is removed and ``path`` is untouched. Temporary files of ``path`` left by killed
    saves (not locked by a live one) are removed."""
    target = os.path.realpath(path)  # a symlink stays one; the file it points to changes
    if os.path.isdir(target):
        raise IsADirectoryError(
            errno.EISDIR,
            f"cannot save parameters to {path!r}: it is a directory. Fix: give a file "
            f"path, e.g. {os.path.join(path, 'model.safetensors')!r}",
            path,
        )
    directory, name = os.path.split(target)
    tmp, fd = _create_temp(directory, name)
    try:
        _remove_leftovers(directory, name, tmp)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        yield tmp, fd
        os.chmod(tmp, mode)  # a writer may have re-created the file with its own mode
        if sync:  # the data reaches the disk before the rename can
            sync_fd = os.open(tmp, os.O_RDONLY | _CLOEXEC)
            try:
                os.fsync(sync_fd)
            finally:
                os.close(sync_fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)  # releases the lock


def _temp_prefix(name: str) -> str:
    """Temporary files of ``name`` are ``.{name}.{12 hex digits}.tmp``; for a name too
    long for that (255 bytes), ``.{16 hex digits of its hash}.{12 hex digits}.tmp``."""
    if len(os.fsencode(f".{name}.{'0' * 12}.tmp")) <= _NAME_MAX:
        return f".{name}."
    return f".{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}."


def _create_temp(directory: str, name: str) -> tuple[str, int]:
    prefix = _temp_prefix(name)
    for _ in range(16):
        tmp = os.path.join(directory, f"{prefix}{uuid.uuid4().hex[:12]}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)  # umask applies
        if fcntl is None:
            return tmp, fd
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename: "a save is writing this"
        if os.fstat(fd).st_nlink:  # not removed by another save between create and lock
            return tmp, fd
        os.close(fd)
    raise OSError(errno.EEXIST, f"cannot create a temporary file beside {name!r}", directory)


def _remove_leftovers(directory: str, name: str, own: str) -> None:
    """Remove the temporary files of ``name`` that no live save holds locked (a save that
    was killed leaves its file unlocked: the lock goes with the process)."""
    if fcntl is None:
        return
    pattern = re.compile(re.escape(_temp_prefix(name)) + r"[0-9a-f]{12}\.tmp\Z")
    try:
        with os.scandir(directory) as entries:
            found = [e.name for e in entries if pattern.match(e.name)]
    except OSError:
        return
    for leftover in found:
        full = os.path.join(directory, leftover)
        if full == own:
            continue
        with contextlib.suppress(OSError):
            fd = os.open(full, os.O_RDONLY | _CLOEXEC | _NOFOLLOW | _NONBLOCK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails: a save is writing it
                held, now = os.fstat(fd), os.stat(full, follow_symlinks=False)
                if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                    os.unlink(full)
            finally:
                os.close(fd)


# -- loading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """One tensor in the file: dtype, shape and byte range in the data section; in a
    merged checkpoint also which shard holds it and its key there (before ``key_map``)."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int
    shard: int = 0
    key: str = ""


@dataclass(frozen=True)
class _Index:
    """The file's header, read and checked: its tensors, metadata and where data starts."""

    stored: dict[str, _Stored]
    metadata: dict[str, str]
    data_start: int


@dataclass
class _Shard:
    """One file of a checkpoint, open for the whole load, and its checked header."""

    fh: Any
    path: str
    index: _Index


KeyMap = Mapping[str, str] | Callable[[str], str | None]


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
    verify: bool = True,
    progress: bool | None = None,
    key_map: KeyMap | None = None,
) -> None:
    """Load a safetensors file (or a sharded checkpoint) into ``module``, all or nothing.

    Args:
        module: the network (deferred, SHAPED or READY, or any mix).
        path: a safetensors file, typically written by :func:`save_parameters`; or a
            sharded checkpoint's index (``model.safetensors.index.json``, Hugging Face's
            format: ``{"metadata": {...}, "weight_map": {key: shard file}}``, the shards
            beside it); or a directory holding ``model.safetensors.index.json`` (loaded
            as sharded) or exactly one ``*.safetensors`` file.
        allow_missing: leave the network's tensors that the file does not hold as they
            are (deferred ones stay deferred) instead of raising.
        ignore_extra: skip the file's keys that the network does not have instead of
            raising.
        device: where the values go (default: each parameter's own device; for a deferred
            one, the device it was meant to be created on). A READY parameter given
            another device is moved there, keeping its identity.
        dtype: the floating dtype of the loaded floating tensors. Default: a deferred
            parameter whose dtype was never chosen (no ``dtype=`` at creation, in
            ``initialize`` or ``.to``) takes the file's dtype (a bfloat16 file gives
            bfloat16 parameters, no upcast); every other tensor keeps its own dtype.
            Stored values are converted float to float; any other dtype change is refused.
        verify: check every value read against the checksum that :func:`save_parameters`
            stored with it (files without checksums, e.g. from other tools, load
            unchecked).
        progress: a progress bar on stderr (one for the whole load, over the bytes of
            every shard): ``None`` shows one only for a load that takes over 2 s on a
            terminal, ``True`` always, ``False`` never.
        key_map: renames the file's keys before they are matched with the network's:
            a dict of regular expression -> replacement, applied one after the other
            (each ``re.sub`` works on the result of the previous one; a key that ends up
            empty is dropped), or a callable ``key -> new key`` (``None`` drops the key).
            Errors name both keys (``'a.b' (mapped to 'c')``); two keys mapped to one
            name are an error.

    A sharded checkpoint loads as one file does: every shard is opened once up front,
    the index and every shard's header, keys, shapes, dtypes and checksums are checked
    before anything changes (a key the index and its shard disagree on is an error naming
    the shard), and the values are committed in one transaction.

    Raises (nothing in the network changed): ``ParameterFileError`` for a path that is a
    directory or cannot be read, for a file that is not valid safetensors (empty,
    truncated, corrupted, a pickle), for values that do not match their checksums (a
    corrupted file, naming the tensors) and for missing or extra keys;
    ``ShapeMismatchError`` for a stored shape that contradicts a known dim (naming the
    key, the layer, and both shapes); ``TypeError`` for a dtype that cannot be converted;
    ``FileNotFoundError`` for a path that does not exist. Only an operating-system read
    error while reading straight into READY tensors (the last step; a failing disk, or
    another process rewriting the file in place) can stop the load part-way: every other
    tensor is then as it was, and the ``ParameterFileError`` lists the READY tensors that
    already hold the file's values.

    The file is opened once and read through that one descriptor: a concurrent
    :func:`save_parameters` of the same path (which renames a new file over it) never
    mixes two files. Values written into READY tensors bump their autograd version
    counters, so a pending backward through them raises, as after ``load_state_dict``.

    A tie recorded in the file (two names, one tensor) is restored when the network holds
    the two as separate parameters. A network that ties two names the file stores
    separately takes the value stored under the first name.
    """
    source = os.fspath(path)
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"load_parameters: dtype must be a floating dtype, got {dtype}")
    target_device = torch.device(device) if device is not None else None
    mapper = _key_mapper(key_map)
    with contextlib.ExitStack() as stack:
        shards, label = _open_checkpoint(source, stack)
        stored, tied, expected = _merge(source, shards, mapper, verify)
        _name_params(module)
        groups = _groups(module)
        items, retie, problems = _plan(
            module, groups, stored, tied, allow_missing, ignore_extra, target_device, dtype
        )
        if problems.any():
            raise problems.error(source, module)
        checked = sum(  # the in-place values verified are read twice
            _nbytes(stored[i.key])
            for i in items
            if expected is not None and i.key in expected and _in_place(i, stored[i.key])
        )
        total = sum(_nbytes(stored[i.key]) for i in items) + checked
        with Progress(total, f"loading {label}", progress) as bar:
            values = _read_values(shards, stored, items, expected, bar)
            _commit(module, shards, source, stored, items, values, retie, bar)
        counters = [
            t
            for name, t in module.named_buffers()
            if isinstance(t, Parameter) and _is_counter(module, name)
        ]
        if counters:  # not in the file: start at 0, as torch does
            for t in counters:
                if t.is_shaped:
                    materialize(t)
            _disarm(module)


def _open_for_reading(path: str) -> Any:
    """The file, opened once for the whole load; clear errors for what cannot be read."""
    try:
        fh = open(path, "rb", buffering=0, opener=_open_nonblocking)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            errno.ENOENT,
            f"cannot load parameters: there is no file {path!r} (nothing was changed). "
            "Fix: check the path",
            path,
        ) from err
    except IsADirectoryError:
        raise ParameterFileError(_directory_message(path)) from None
    except PermissionError as err:
        raise ParameterFileError(
            f"cannot load {path!r}: permission denied ({err.strerror}). Nothing was changed. "
            f"Fix: make the file readable by this user (e.g. chmod u+r {path!r}) or load it "
            "as a user who may read it."
        ) from err
    except OSError as err:
        raise ParameterFileError(
            f"cannot load {path!r}: it cannot be opened ({err}). Nothing was changed. Fix: "
            "check the path and the file system."
        ) from err
    try:
        st = os.fstat(fh.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise ParameterFileError(_directory_message(path))
        if not stat.S_ISREG(st.st_mode):
            raise ParameterFileError(
                f"cannot load {path!r}: it is not a regular file (a pipe, socket or device). "
                "Nothing was changed. Fix: pass the path of a file written by "
                "save_parameters."
            )
        if _NONBLOCK:
            os.set_blocking(fh.fileno(), True)
    except BaseException:
        fh.close()
        raise
    return fh


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | _NONBLOCK | _CLOEXEC)


def _directory_message(path: str) -> str:
    try:
        names = sorted(os.listdir(path))
    except OSError:
        names = []
    files = [n for n in names if n.endswith(".safetensors")]
    indexes = [n for n in names if n.endswith(".json")]
    held = (
        f"it holds {fmt_list(repr(n) for n in files)}: pass one of those files"
        if files
        else "it holds no .safetensors file"
    )
    if indexes:
        held += f"; JSON files: {fmt_list(repr(n) for n in indexes)}"
    return (
        f"cannot load {path!r}: it is a directory, not a parameter file, and holds neither "
        f"{_INDEX_NAME!r} (a sharded checkpoint) nor exactly one .safetensors file ({held}). "
        "Nothing was changed. Fix: pass the path of a file written by save_parameters, or "
        "of a sharded checkpoint's index."
    )


def _open_checkpoint(source: str, stack: contextlib.ExitStack) -> tuple[list[_Shard], str]:
    """Every file of the checkpoint at ``source`` (a file, an index, a directory), opened
    once (closed by ``stack``), with its header read and checked; and a label for the
    progress bar."""
    if os.path.isdir(source):
        try:
            names = os.listdir(source)
        except OSError:
            names = []
        files = [n for n in names if n.endswith(".safetensors")]
        if _INDEX_NAME in names:
            source = os.path.join(source, _INDEX_NAME)
        elif len(files) == 1:
            source = os.path.join(source, files[0])
        else:
            raise ParameterFileError(_directory_message(source))
    if source.endswith(".json"):
        return _open_sharded(source, stack)
    fh = stack.enter_context(_open_for_reading(source))
    return [_Shard(fh, source, _read_index(fh, source))], os.path.basename(source)


def _open_sharded(index_path: str, stack: contextlib.ExitStack) -> tuple[list[_Shard], str]:
    """Read and check a sharded checkpoint's index, open every shard it names and check
    that each holds exactly the keys the index maps to it."""

    def bad(reason: str) -> ParameterFileError:
        return ParameterFileError(
            f"cannot load {index_path!r}: it is not a valid sharded checkpoint index "
            f"({reason}). Nothing was changed. Fix: pass a model.safetensors.index.json "
            '({"metadata": {...}, "weight_map": {key: shard file}}) or a safetensors file.'
        )

    with _open_for_reading(index_path) as fh:
        raw = _pread(fh, 0, _MAX_HEADER + 1)
    if len(raw) > _MAX_HEADER:
        raise bad(f"it is over the limit of {_MAX_HEADER} bytes")
    try:
        index = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as err:
        raise bad(f"it is not valid JSON: {err}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise bad('it has no "weight_map" object of key -> shard file name')
    by_shard: dict[str, list[str]] = {}
    for key, name in weight_map.items():
        parts = name.replace("\\", "/").split("/")
        if not name or os.path.isabs(name) or ".." in parts:
            raise bad(f"key {key!r} maps to {name!r}, not a file name beside the index")
        by_shard.setdefault(name, []).append(key)
    directory = os.path.dirname(index_path)
    shards: list[_Shard] = []
    for name in sorted(by_shard):
        path = os.path.join(directory, name)
        try:
            fh = stack.enter_context(_open_for_reading(path))
        except FileNotFoundError:
            raise ParameterFileError(
                f"cannot load {index_path!r}: its shard {name!r} (holding "
                f"{len(by_shard[name])} key(s), e.g. {by_shard[name][0]!r}) does not exist. "
                "Nothing was changed. Fix: download or copy every shard beside the index."
            ) from None
        shard = _Shard(fh, path, _read_index(fh, path))
        held, mapped = shard.index.stored.keys(), set(by_shard[name])
        unlisted = [k for k in held if k not in mapped]
        absent = [k for k in by_shard[name] if k not in held]
        if unlisted or absent:
            lines = []
            if absent:
                lines.append(
                    f"the index maps {len(absent)} key(s) to it that it does not hold: "
                    + fmt_list(repr(k) for k in absent)
                )
            if unlisted:
                elsewhere = [k for k in unlisted if k in weight_map]
                lines.append(
                    f"it holds {len(unlisted)} key(s) the index does not map to it: "
                    + fmt_list(repr(k) for k in unlisted)
                    + (f" ({len(elsewhere)} of them mapped to another shard)" if elsewhere else "")
                )
            raise ParameterFileError(
                f"cannot load {index_path!r}: the index and its shard {name!r} disagree: "
                + "; ".join(lines)
                + ". Nothing was changed. Fix: the shards and the index must come from the "
                "same save; download or copy them again."
            )
        shards.append(shard)
    count = len(shards)
    return shards, f"{os.path.basename(index_path)} ({count} shard{'s' * (count != 1)})"


def _key_mapper(key_map: KeyMap | None) -> Callable[[str], str | None]:
    """``key_map`` as one function: file key -> network key, or ``None`` (dropped)."""
    if key_map is None:
        return lambda key: key
    if isinstance(key_map, Mapping):
        compiled = []
        for pattern, replacement in key_map.items():
            try:
                compiled.append((re.compile(pattern), replacement))
            except re.error as err:
                raise ValueError(
                    f"load_parameters: key_map pattern {pattern!r} is not a valid regular "
                    f"expression ({err})"
                ) from None

        def by_patterns(key: str) -> str | None:
            for regex, replacement in compiled:
                key = regex.sub(replacement, key)
            return key or None

        return by_patterns
    if callable(key_map):
        call = key_map

        def by_call(key: str) -> str | None:
            new = call(key)
            if new is not None and not isinstance(new, str):
                raise TypeError(
                    f"load_parameters: key_map({key!r}) returned {type(new).__name__}; it "
                    "must return the new key (a str) or None to drop the key"
                )
            return new

        return by_call
    raise TypeError(
        "load_parameters: key_map must be a dict of regular expression -> replacement or "
        f"a callable key -> new key | None, got {type(key_map).__name__}"
    )


def _merge(
    source: str, shards: list[_Shard], mapper: Callable[[str], str | None], verify: bool
) -> tuple[dict[str, _Stored], dict[str, str], dict[str, int] | None]:
    """The checkpoint's tensors under their mapped keys (each knowing its shard and file
    key), its ties and its checksums (``None`` when nothing is to be verified)."""
    stored: dict[str, _Stored] = {}
    tied: dict[str, str] = {}
    expected: dict[str, int] | None = {} if verify else None
    for number, shard in enumerate(shards):
        own = shard.index.stored
        shard_tied = _read_tied(shard.path, shard.index.metadata, own)
        sums = _read_checksums(shard.path, shard.index.metadata, own) if verify else None
        for key, entry in own.items():
            new = mapper(key)
            if new is None:
                continue
            if new in stored:
                other = stored[new].key
                raise ParameterFileError(
                    f"cannot load {source!r}: key_map maps both {other!r} and {key!r} to "
                    f"{new!r}. Nothing was changed. Fix: make key_map give every kept key "
                    "its own name (or drop one of them by returning None)."
                )
            stored[new] = dataclasses.replace(entry, shard=number, key=key)
            if sums is not None and expected is not None:
                expected[new] = sums[key]
        for alias, canonical in shard_tied.items():
            alias_to, canonical_to = mapper(alias), mapper(canonical)
            if alias_to is not None and canonical_to is not None:
                tied[alias_to] = canonical_to
    return stored, tied, (expected or None)


def _named(stored: Mapping[str, _Stored], key: str) -> str:
    """A file key for messages: ``'file key' (mapped to 'key')`` where ``key_map``
    renamed it."""
    file_key = stored[key].key if key in stored else key
    return repr(key) if file_key in ("", key) else f"{file_key!r} (mapped to {key!r})"


def _read_index(fh: Any, path: str) -> _Index:
    """Read and check the safetensors header through ``fh``: the 8-byte little-endian
    header length, the JSON header (dtypes, shapes, byte ranges stored back to back and
    covering exactly the rest of the file), the metadata (strings)."""
    size = os.fstat(fh.fileno()).st_size
    head = _pread(fh, 0, min(size, 8))

    def bad(reason: str) -> ParameterFileError:
        return ParameterFileError(_not_safetensors(path, reason, head))

    if len(head) < 8:
        raise bad(f"it is {size} bytes long, too short to hold the 8-byte header length")
    length = int.from_bytes(head, "little")
    if length > _MAX_HEADER:
        raise bad(f"its header length {length} is over the limit of {_MAX_HEADER} bytes")
    if 8 + length > size:
        raise bad(f"its header length is {length} bytes but only {size - 8} follow")
    raw = _pread(fh, 8, length)
    if len(raw) != length:
        raise bad("the file ended early (it was cut short while being read)")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as err:
        raise bad(f"its header is not valid JSON: {err}") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("its __metadata__ is not a map of strings")
    stored = {key: _stored_entry(key, entry, bad) for key, entry in header.items()}
    position = 0
    for key, entry in sorted(stored.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if entry.begin != position:
            raise bad(
                f"tensor {key!r} starts at byte {entry.begin} of the data, expected "
                f"{position} (tensors are stored back to back)"
            )
        position = entry.end
    data = size - 8 - length
    if position != data:
        raise bad(
            f"the tensors take {position} bytes of data but the file holds {data}"
            + (" (it was cut short)" if data < position else " (extra bytes at the end)")
        )
    return _Index(stored, metadata, 8 + length)


def _stored_entry(key: str, entry: Any, bad: Callable[[str], Exception]) -> _Stored:
    def fine(value: Any) -> bool:
        return type(value) is int and value >= 0

    shape = entry.get("shape") if isinstance(entry, dict) else None
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("dtype"), str)
        and isinstance(shape, list)
        and all(fine(d) for d in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(fine(o) for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise bad(f"tensor {key!r} has a malformed header entry ({str(entry)[:80]})")
    code = entry["dtype"]
    if code not in _DTYPES:
        raise bad(f"tensor {key!r} has dtype {code[:20]!r}, which this torch build cannot hold")
    dtype = _DTYPES[code]
    begin, end = offsets
    if math.prod(shape) * dtype.itemsize != end - begin:
        raise bad(
            f"tensor {key!r} of shape {tuple(shape)} and dtype {code} takes "
            f"{math.prod(shape) * dtype.itemsize} bytes, but its byte range holds {end - begin}"
        )
    return _Stored(dtype, tuple(shape), begin, end)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice")
    return out


def _pread(fh: Any, offset: int, nbytes: int) -> bytes:
    fh.seek(offset)
    parts = []
    while nbytes > 0:
        part = fh.read(nbytes)
        if not part:
            break
        parts.append(part)
        nbytes -= len(part)
    return b"".join(parts)


def _not_safetensors(path: str, reason: str, head: bytes = b"") -> str:
    if head[:2] == b"PK" or head[:1] == b"\x80":
        # a torch.save file: its own fix, not the generic one (nor the header's reason,
        # which reads a pickle's first bytes as a length)
        return (
            f"cannot load {path!r}: it is a torch.save (pickle) file, not a safetensors "
            "file, and this loader never unpickles. Nothing was changed. Fix: "
            "torch.load(path, weights_only=True) and net.load_state_dict(...), or re-save "
            "it with net.save_parameters(path)."
        )
    return (
        f"cannot load {path!r}: it is not a valid safetensors file ({reason}). Nothing "
        "was changed. Fix: check the path; a file cut short by a crashed copy must be "
        "copied or saved again."
    )


def _read_checksums(
    path: str, metadata: Mapping[str, str], stored: Mapping[str, _Stored]
) -> dict[str, int] | None:
    """The checksum of every stored tensor (``None`` for a file without checksums)."""
    raw = metadata.get(_CHECKSUMS_KEY)
    if raw is None:
        return None
    try:
        sums = json.loads(raw)
        valid = (
            isinstance(sums, dict)
            and sums.keys() == stored.keys()
            and all(isinstance(v, str) and re.fullmatch("[0-9a-f]{16}", v) for v in sums.values())
        )
    except ValueError:
        valid = False
    if not valid:
        raise ParameterFileError(
            f"cannot load {path!r}: the file is corrupted: its {_CHECKSUMS_KEY!r} metadata "
            f"(the checksum of every tensor) is damaged or does not match its tensors "
            f"({raw[:80]!r}). Nothing was changed. Fix: restore the file from a good copy or "
            "save it again; verify=False skips the check."
        )
    return {key: int(digest, 16) for key, digest in sums.items()}


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
                + fmt_list(self.extra)
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
    gluon = {canonical: alias for alias, canonical in gluon_key_map(module).items()}
    for tensor, names in groups:
        keys = [
            k
            for n in names
            for k in (n, tied.get(n), gluon.get(n))  # a file with Gluon's names loads too
            if k is not None and k in stored
        ]
        used.update(keys)
        if not keys:
            if not allow_missing and not _is_counter(module, names[0]):
                problems.missing.append(_where(module, names[0]))
            continue
        key = keys[0]
        entry = stored[key]
        where = _where(module, names[0], key, entry.key)
        declared = tuple(tensor.shape)
        if not _fits(declared, entry.shape):
            problems.shapes.append((key, where, declared, entry.shape))
            continue
        if dtype is not None and tensor.is_floating_point():
            want = dtype
        elif (
            isinstance(tensor, Parameter)
            and not tensor.record.dtype_explicit
            and tensor.is_floating_point()
            and entry.dtype.is_floating_point
        ):
            want = entry.dtype  # a dtype never chosen: the file's (no silent upcast)
        else:
            want = tensor.dtype
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
        items.append(_Item(names, tensor, key, want, device or _load_device(tensor)))
    if not ignore_extra:
        problems.extra = [_named(stored, k) for k in stored if k not in used]
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


def _position(entry: _Stored) -> tuple[int, int]:
    """Where a tensor's bytes are: shard by shard, in file order."""
    return entry.shard, entry.begin


def _read_values(
    shards: list[_Shard],
    stored: Mapping[str, _Stored],
    items: list[_Item],
    expected: Mapping[str, int] | None,
    bar: Progress | None = None,
) -> list[torch.Tensor | None]:
    """Read the value of every item that cannot be read in place into new memory, in its
    target dtype and on its target device (``None`` for the in-place ones), and check
    every value to be loaded against its checksum (``expected``; keys without one, e.g.
    in a shard saved without checksums, are not checked) before anything changes: the
    in-place ones in a first pass over their bytes."""
    values: list[torch.Tensor | None] = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: _position(stored[items[i].key]))
    damaged: list[str] = []
    in_place: list[int] = []
    for i in order:
        item, entry = items[i], stored[items[i].key]
        if _in_place(item, entry):
            in_place.append(i)
            continue
        if item.device.type == "meta":  # shapes only: nothing read, nothing to check
            values[i] = torch.empty(entry.shape, dtype=item.dtype, device="meta")
            continue
        value = torch.empty(entry.shape, dtype=entry.dtype)  # CPU; another device after
        sum_ = expected.get(item.key) if expected is not None else None
        shard = shards[entry.shard]
        offset = shard.index.data_start + entry.begin
        try:
            if sum_ is None:
                _read_into(shard.fh, offset, entry.end - entry.begin, value)
            else:
                hasher = xxhash.xxh3_64()
                _read_into(shard.fh, offset, entry.end - entry.begin, value, hasher)
                if hasher.intdigest() != sum_:
                    damaged.append(item.key)
        except ParameterFileError as err:  # cut short; the network is not touched yet
            raise ParameterFileError(f"{err} Nothing was changed.") from None
        values[i] = value.to(device=item.device, dtype=item.dtype)
        if bar is not None:
            bar.advance(_nbytes(entry))
    if expected is not None and in_place:
        buffer = memoryview(
            bytearray(min(_VERIFY_BUFFER, max(_nbytes(stored[items[i].key]) for i in in_place)))
        )
        for i in in_place:
            entry = stored[items[i].key]
            sum_ = expected.get(items[i].key)
            if sum_ is None:
                continue
            shard = shards[entry.shard]
            offset = shard.index.data_start + entry.begin
            if _hash_range(shard.fh, offset, _nbytes(entry), buffer) != sum_:
                damaged.append(items[i].key)
            if bar is not None:
                bar.advance(_nbytes(entry))
    if damaged:
        damaged.sort(key=lambda k: _position(stored[k]))
        paths = sorted({stored[k].shard for k in damaged})
        raise ParameterFileError(
            "cannot load "
            + ", ".join(repr(shards[n].path) for n in paths)
            + ": the file is corrupted: the data of tensor(s) "
            f"{fmt_list(_named(stored, k) for k in damaged)} "
            "does not match the checksum (xxh3_64) stored when it was saved. Nothing was "
            "changed. Fix: restore the file from a good copy or save it again (verify=False "
            "loads the damaged values anyway)."
        )
    return values


def _nbytes(entry: _Stored) -> int:
    return entry.end - entry.begin


def _read_into(fh: Any, offset: int, nbytes: int, out: torch.Tensor, hasher: Any = None) -> None:
    """Read ``nbytes`` at ``offset`` straight into ``out``'s memory (a contiguous CPU
    tensor of exactly that many bytes); with a ``hasher``, in chunks, each hashed right
    after it is read (while it is in the cache)."""
    if nbytes == 0:
        return
    fh.seek(offset)
    view = _bytes_of(out)
    step = nbytes if hasher is None else _CHUNK
    done = 0
    while done < nbytes:
        n = fh.readinto(view[done : min(done + step, nbytes)])
        if not n:
            raise ParameterFileError(
                f"cannot load {fh.name!r}: the file ended early (it was cut short while "
                "being read)."
            )
        if hasher is not None:
            hasher.update(view[done : done + n])
        done += n


def _hash_range(fh: Any, offset: int, nbytes: int, buffer: memoryview) -> int:
    """The checksum of ``nbytes`` at ``offset``, read through ``buffer`` (no change to
    anything in the network)."""
    hasher = xxhash.xxh3_64()
    fh.seek(offset)
    while nbytes:
        n = fh.readinto(buffer[: min(nbytes, len(buffer))])
        if not n:
            raise ParameterFileError(
                f"cannot load {fh.name!r}: the file ended early (it was cut short while "
                "being read). Nothing was changed."
            )
        hasher.update(buffer[:n])
        nbytes -= n
    return hasher.intdigest()


def _commit(
    module: torch.nn.Module,
    shards: list[_Shard],
    path: str,
    stored: Mapping[str, _Stored],
    items: list[_Item],
    values: list[torch.Tensor | None],
    retie: list[tuple[str, Any]],
    bar: Progress | None = None,
) -> None:
    """Put the values in, journaled so that a failure at any step undoes the earlier
    ones: deferred tensors first, then READY ones given new memory (another dtype or
    device), then READY ones whose memory is overwritten (copied, or read from the file
    straight into it: the only changes that cannot be undone, hence last), then the
    restored ties. Every READY tensor written gets its autograd version bumped."""
    direct = [item for item, value in zip(items, values, strict=True) if value is None]
    swapped: list[torch.Tensor] = []  # READY tensors given new memory (undone on failure)
    replaced: list[_Item] = []  # READY tensors overwritten (cannot be undone)
    ok = False
    try:
        with transaction([*module.parameters(), *module.buffers()]):
            journal = active_journal()
            assert journal is not None
            for i, item in enumerate(items):
                value = values[i]
                if isinstance(item.tensor, Parameter) and value is not None:
                    item.tensor.shape = tuple(value.shape)
                    commit_storage(item.tensor, value)
                    values[i] = None
            copies: list[tuple[_Item, torch.Tensor]] = []
            with torch.no_grad():
                for i, item in enumerate(items):
                    value, values[i] = values[i], None
                    if value is None:
                        continue
                    if value.device == item.tensor.device and value.dtype == item.tensor.dtype:
                        copies.append((item, value))
                    else:
                        _swap(path, item, value, journal)
                        swapped.append(item.tensor)
                try:
                    for item, value in copies:
                        item.tensor.copy_(value)
                        replaced.append(item)
                    _read_in_place(shards, stored, direct, replaced, bar)
                except (OSError, ParameterFileError) as err:
                    done = (
                        f"{len(replaced)} of {len(copies) + len(direct)} READY tensors were "
                        "already replaced in place "
                        f"({fmt_list(repr(item.names[0]) for item in replaced)}); every "
                        "other tensor is as it was"
                        if replaced
                        else "nothing was changed"
                    )
                    raise ParameterFileError(
                        f"reading {path!r} failed part-way ({err}): {done}. Fix: check the "
                        "file and the disk, then load again."
                    ) from err
            for alias, tensor in retie:
                owner_name, _, attr = alias.rpartition(".")
                owner = module.get_submodule(owner_name)
                table = owner._parameters if attr in owner._parameters else owner._buffers
                journal.record_undo(lambda t=table, a=attr, old=table[attr]: t.__setitem__(a, old))
                table[attr] = tensor
        ok = True
    finally:
        # As an in-place op would: a pending backward through a changed tensor now raises.
        written = [item.tensor for item in replaced] + (swapped if ok else [])
        if written:
            torch.autograd.graph.increment_version(written)
    _disarm(module)


def _swap(path: str, item: _Item, value: torch.Tensor, journal: Any) -> None:
    """Give a READY tensor new memory (another dtype or device), keeping the Python
    object; journaled."""
    tensor = item.tensor
    try:
        if torch._has_compatible_shallow_copy_type(tensor, value):
            old = tensor.data
            tensor.data = value
            journal.record_undo(lambda: setattr(tensor, "data", old))
        else:  # e.g. cpu <-> meta: swap the whole tensor, keeping the Python object
            holder = torch.Tensor._make_subclass(type(tensor), value, tensor.requires_grad)
            holder.__dict__.update(tensor.__dict__)
            torch.utils.swap_tensors(tensor, holder)
            journal.record_undo(lambda: torch.utils.swap_tensors(tensor, holder))
    except RuntimeError as err:
        raise RuntimeError(
            f"cannot load {path!r}: moving READY tensor {item.names[0]!r} from "
            f"{tensor.device}/{_dtype_name(tensor.dtype)} to {value.device}/"
            f"{_dtype_name(value.dtype)} failed ({err}). Nothing was changed. Fix: load "
            "without device=/dtype=, or into a network whose tensors are not yet READY."
        ) from err


def _read_in_place(
    shards: list[_Shard],
    stored: Mapping[str, _Stored],
    items: list[_Item],
    done: list[_Item],
    bar: Progress | None = None,
) -> None:
    """Read READY tensors' values straight from the file into their memory (no staging
    copy: the file was fully checked first, so only an operating-system read error, or
    another process rewriting the file in place meanwhile, can stop this part-way);
    ``done`` collects the tensors replaced."""
    for item in sorted(items, key=lambda it: _position(stored[it.key])):
        entry = stored[item.key]
        shard = shards[entry.shard]
        _read_into(shard.fh, shard.index.data_start + entry.begin, _nbytes(entry), item.tensor)
        done.append(item)
        if bar is not None:
            bar.advance(_nbytes(entry))


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


def _is_counter(module: torch.nn.Module, name: str) -> bool:
    """A BatchNorm's ``num_batches_tracked``: files from Gluon (and from lateinit before
    its norm layers became torch twins) do not hold it; such a file still loads, and a
    counter not created yet starts at 0 (as torch's BatchNorm loads files without it)."""
    owner, _, attr = name.rpartition(".")
    if attr != "num_batches_tracked":
        return False
    try:
        return isinstance(module.get_submodule(owner), torch.nn.modules.batchnorm._BatchNorm)
    except AttributeError:
        return False


def _load_device(tensor: torch.Tensor) -> torch.device:
    """Where a tensor's values land without ``device=``: its device, except that a
    deferred parameter whose placeholder sits on ``meta`` without a device chosen for it
    (built under ``torch.device("meta")`` or accelerate's ``init_empty_weights``) is
    created on the CPU: meta holds no values."""
    if isinstance(tensor, Parameter) and tensor.device.type == "meta":
        if not tensor.record.device_explicit:
            return torch.device("cpu")
    return tensor.device


def _where(module: torch.nn.Module, name: str, key: str | None = None, file_key: str = "") -> str:
    owner_name = name.rpartition(".")[0]
    try:
        owner = type(module.get_submodule(owner_name)).__name__
    except AttributeError:
        owner = "?"
    layer = f"layer {owner_name!r} ({owner})" if owner_name else f"{owner} (the network)"
    if key is not None and file_key not in ("", key):  # renamed by key_map
        target = "" if key == name else f", for {name!r}"
        return f"{file_key!r} (mapped to {key!r}{target}) of {layer}"
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


def export_network(
    module: torch.nn.Module, path: str | os.PathLike[str], *example_inputs: Any
) -> tuple[str, str]:
    """:meth:`lateinit.nn.Block.export`: ``PATH.pt2`` (a ``torch.export`` program) and
    ``PATH.safetensors`` (the parameters); returns the two paths."""
    if not example_inputs:
        raise TypeError(
            f"export({os.fspath(path)!r}) needs example inputs: a torch.export program is "
            "traced on them. Fix: net.export(path, x) with an input of the shape the "
            "program will take."
        )
    base = os.fspath(path)
    program_path, params_path = f"{base}.pt2", f"{base}.safetensors"
    save_parameters(module, params_path)  # refuses a network that is not READY, first
    was_training = module.training
    module.eval()
    try:
        program = torch.export.export(module, tuple(example_inputs))
    finally:
        module.train(was_training)
    atomic_write(program_path, lambda tmp: torch.export.save(program, tmp), sync=True)
    return program_path, params_path
