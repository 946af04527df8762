"""One file holding the main segments of several PDQ indexes, written once and mapped read-only by
every process on the host, so that their pages are shared instead of copied into each process.

Layout: a fixed prefix (magic, format version, header length, file size, header CRC-32), a JSON
header (the caller's `meta`, then for each index its id base and each array's dtype, shape and
offset, and the CRC-32 of everything after the header), then the arrays, each starting on a page
boundary so that it maps in place. No pickles: a file from anywhere can at worst be refused.

A file is written beside its final name, fsynced, then renamed over it, so a reader sees the old
file or the new one, never a mix; a mapping of the old file stays valid until its last array is
released. Opening checks the size, the header's CRC and the data's CRC (about 0.7 s a gigabyte,
which also brings the pages into the page cache that the searches will read), and raises
SnapshotError for anything truncated, corrupt or from another format version.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

FORMAT_VERSION = 1
_MAGIC = b"CSIXSNAP"
_PREFIX = struct.Struct("<8sIIQI")  # magic, version, header length, file size, header CRC-32
_ALIGN = mmap.PAGESIZE
_CRC_BLOCK = 64 << 20

Arrays = dict[str, np.ndarray]


class SnapshotError(Exception):
    """The file is missing, truncated, corrupt, or written by another format version."""


class Snapshot(NamedTuple):
    meta: dict[str, Any]
    indexes: dict[str, tuple[Arrays, int]]  # name -> (arrays, id base), arrays read-only and mapped
    identity: tuple[int, int]  # (st_dev, st_ino) of the file mapped
    nbytes: int


def file_identity(path: Path) -> tuple[int, int] | None:
    """Which file `path` names now (it changes when a new snapshot is renamed over it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def write(path: Path, indexes: dict[str, tuple[Arrays, int]], meta: dict[str, Any]) -> None:
    """Write the snapshot to a temporary file beside `path`, make it durable, rename it into place."""
    layout: dict[str, Any] = {}
    position = 0
    blocks: list[np.ndarray] = []
    for name, (arrays, base) in indexes.items():
        described = {}
        for array_name, array in arrays.items():
            array = np.ascontiguousarray(array)
            described[array_name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": position}
            blocks.append(array)
            position = _aligned(position + array.nbytes)
        layout[name] = {"base": int(base), "arrays": described}
    data_size = position
    # The header's length must be known before the data's CRC is: the CRC is a fixed-width field.
    header = {"meta": meta, "indexes": layout, "data_crc32": "00000000"}
    data_start = _aligned(_PREFIX.size + len(json.dumps(header).encode()))
    total = data_start + data_size
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.truncate(total)
            out.seek(data_start)
            crc, written = 0, 0
            for array in blocks:
                raw = memoryview(array.reshape(-1).view(np.uint8))
                for start in range(0, len(raw), _CRC_BLOCK):
                    piece = raw[start : start + _CRC_BLOCK]
                    out.write(piece)
                    crc = zlib.crc32(piece, crc)
                written += len(raw)
                padding = _aligned(written) - written
                out.write(b"\0" * padding)
                crc = zlib.crc32(b"\0" * padding, crc)
                written += padding
            header["data_crc32"] = f"{crc:08x}"
            encoded = json.dumps(header).encode()
            out.seek(0)
            out.write(_PREFIX.pack(_MAGIC, FORMAT_VERSION, len(encoded), total, zlib.crc32(encoded)) + encoded)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def open_snapshot(path: Path) -> Snapshot:
    """Map `path` read-only and check it whole; raises SnapshotError rather than return bad arrays."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise SnapshotError(f"cannot open {path}: {error}") from error
    try:
        st = os.fstat(fd)
        if st.st_size < _PREFIX.size:
            raise SnapshotError("shorter than its prefix")
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    magic, version, header_length, size, header_crc = _PREFIX.unpack_from(mapped, 0)
    if magic != _MAGIC:
        raise SnapshotError("not an index snapshot")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"format version {version}, expected {FORMAT_VERSION}")
    if size != len(mapped) or _PREFIX.size + header_length > size:
        raise SnapshotError(f"{len(mapped)} bytes where the header says {size}: truncated or extended")
    encoded = mapped[_PREFIX.size : _PREFIX.size + header_length]
    if zlib.crc32(encoded) != header_crc:
        raise SnapshotError("header checksum mismatch")
    try:
        header = json.loads(encoded)
        data_start = _aligned(_PREFIX.size + header_length)
        with memoryview(mapped) as whole:
            crc = 0
            for start in range(data_start, size, _CRC_BLOCK):
                with whole[start : min(size, start + _CRC_BLOCK)] as piece:
                    crc = zlib.crc32(piece, crc)
        if f"{crc:08x}" != header["data_crc32"]:
            raise SnapshotError("data checksum mismatch")
        indexes = {
            name: ({array_name: _array(mapped, data_start, spec) for array_name, spec in part["arrays"].items()},
                   int(part["base"]))
            for name, part in header["indexes"].items()
        }
    except (KeyError, TypeError, ValueError) as error:
        raise SnapshotError(f"malformed header: {error}") from error
    return Snapshot(header["meta"], indexes, (st.st_dev, st.st_ino), size)


def _array(mapped: mmap.mmap, data_start: int, spec: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    if dtype.hasobject:
        raise SnapshotError("object arrays are never read")
    shape = tuple(int(n) for n in spec["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    offset = data_start + int(spec["offset"])
    if offset % _ALIGN or offset + count * dtype.itemsize > len(mapped):
        raise SnapshotError("an array lies outside the file")
    if count == 0:
        empty = np.empty(shape, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN
