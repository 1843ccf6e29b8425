"""Read access traces into arrays of int64 keys, one key per request.

Compression (gzip, xz, bzip2, zstd) is detected from the file's first bytes, whatever its
name; zstd needs the ``zstandard`` package (``pip install 'mlcache[bench]'``). Formats:

``plain``
    one key per line; keys are integers if every line is one, else byte strings (numbered in
    order of first appearance); blank lines are skipped.
``lirs``
    one integer per line; lines that are ``*`` or blank are skipped (the LIRS authors' traces).
``arc``
    lines ``start_block n_blocks ignore request_no``; a line is ``n_blocks`` requests for blocks
    ``start_block .. start_block + n_blocks - 1`` (the ARC paper's traces).
``oraclegeneral``
    libCacheSim's binary records, packed little-endian ``<IQIq``: uint32 timestamp, uint64
    object id, uint32 size, int64 next access. Every record is a request (libCacheSim skips
    size-0 records by default); ids >= 2**63 wrap to negative keys, one to one.
``csv``
    comma-separated (or ``delimiter``) rows; ``key_column`` and optional ``size_column`` are
    0-based indexes, or names when ``header`` is true; keys as in ``plain``.
``be_i32`` / ``be_i64``
    big-endian signed 32- or 64-bit integers back to back (Caffeine's cache2k and scarab).

Every problem is a ``TraceError`` whose one-line message names the file and the line (or
binary record) at fault.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from ..errors import CacheError
from .zipf import zipf_trace

__all__ = ["FORMATS", "Trace", "TraceError", "open_trace", "read_trace", "zipf"]

FORMATS = ("plain", "lirs", "arc", "oraclegeneral", "csv", "be_i32", "be_i64")


class TraceError(CacheError, ValueError):
    """A trace that cannot be read; the message names the file and the line or record."""


@dataclass
class Trace:
    """A trace: its name and one int64 key per request (``sizes``: object sizes, if given)."""

    name: str
    keys: array
    sizes: array | None = None
    _unique: int | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def unique(self) -> int:
        """The number of distinct keys (computed once)."""
        if self._unique is None:
            from .simulate import count_unique

            self._unique = count_unique(self.keys)
        return self._unique


_MAGIC: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]


def _compression(path: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(6)
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def open_trace(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing it if its first bytes say it is
    compressed. Raises ``TraceError`` (naming the file) if it cannot be opened."""
    path = os.fspath(path)
    try:
        kind = _compression(path)
        if kind == "gzip":
            return gzip.open(path, "rb")
        if kind == "xz":
            return lzma.open(path, "rb")
        if kind == "bzip2":
            return bz2.open(path, "rb")
        if kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise TraceError(
                    f"{path}: zstd-compressed; reading it needs the zstandard package "
                    "(pip install 'mlcache[bench]')"
                ) from None
            return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
        return open(path, "rb")
    except OSError as exc:
        raise TraceError(f"{path}: cannot open: {exc.strerror or exc}") from None


def _read_all(path: str) -> bytes:
    with open_trace(path) as f:
        try:
            return f.read()
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise TraceError(f"{path}: corrupt compressed data: {exc}") from None


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) pairs, decompression errors reported with the line they stop at."""
    lineno = 0
    with open_trace(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                yield lineno, line
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise TraceError(f"{path}:{lineno + 1}: corrupt compressed data: {exc}") from None
        except Exception as exc:  # zstandard.ZstdError and the like
            if type(exc).__module__.startswith("zstandard"):
                raise TraceError(f"{path}:{lineno + 1}: corrupt compressed data: {exc}") from None
            raise


def _keys(tokens: Callable[[], Iterable[bytes]]) -> array:
    """Keys from ``tokens()``: integers if every token is one, else every token (stripped)
    numbered by first appearance. ``tokens`` is called again for the second reading."""
    keys = array("q")
    try:
        keys.extend(map(int, tokens()))
        return keys
    except (ValueError, OverflowError):
        pass
    ids: dict[bytes, int] = {}
    return array("q", (ids.setdefault(t.strip(), len(ids)) for t in tokens()))


def _int(path: str, lineno: int, text: bytes, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not -(1 << 63) <= value < 1 << 63:
        shown = text.decode("utf-8", "replace").strip()
        raise TraceError(f"{path}:{lineno}: {what} is not a 64-bit integer: {shown!r}")
    return value


def _read_plain(path: str) -> array:
    return _keys(lambda: (line for _, line in _lines(path) if line.strip()))


def _read_lirs(path: str) -> array:
    keys = array("q")
    for lineno, line in _lines(path):
        text = line.strip()
        if text and text != b"*":
            keys.append(_int(path, lineno, text, "key"))
    return keys


def _read_arc(path: str) -> array:
    keys = array("q")
    for lineno, line in _lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise TraceError(
                f"{path}:{lineno}: expected 4 fields 'start_block n_blocks ignore request_no', "
                f"got {len(fields)}"
            )
        start = _int(path, lineno, fields[0], "start_block")
        count = _int(path, lineno, fields[1], "n_blocks")
        if count < 0 or start + count > 1 << 63:
            raise TraceError(f"{path}:{lineno}: bad block range {start} + {count}")
        keys.extend(range(start, start + count))
    return keys


_ORACLE = struct.Struct("<IQIq")


def _read_oracle(path: str) -> tuple[array, array]:
    data = _read_all(path)
    whole, extra = divmod(len(data), _ORACLE.size)
    if extra:
        raise TraceError(
            f"{path}: record {whole + 1}: truncated ({extra} of {_ORACLE.size} bytes)"
        )
    keys, sizes = array("q"), array("q")
    for _, obj, size, _ in _ORACLE.iter_unpack(data):
        keys.append(obj - (1 << 64) if obj >= 1 << 63 else obj)
        sizes.append(size)
    return keys, sizes


def _read_be(path: str, width: int) -> array:
    data = _read_all(path)
    whole, extra = divmod(len(data), width)
    if extra:
        raise TraceError(f"{path}: record {whole + 1}: truncated ({extra} of {width} bytes)")
    values = array("i" if width == 4 else "q")
    assert values.itemsize == width
    values.frombytes(data)
    if sys.byteorder == "little":
        values.byteswap()
    return values if width == 8 else array("q", values)


def _column(path: str, spec: str | int | None, names: list[str] | None, what: str) -> int | None:
    if spec is None:
        return None
    if isinstance(spec, int) or str(spec).isdigit():
        return int(spec)
    if names is None:
        raise TraceError(f"{path}: {what} {spec!r} is a name, but the trace has no header")
    if spec not in names:
        raise TraceError(f"{path}:1: no {what} {spec!r} in the header {names}")
    return names.index(spec)


def _read_csv(
    path: str, key_column: str | int, size_column: str | int | None, header: bool, delimiter: str
) -> tuple[array, array | None]:
    def rows() -> Iterator[tuple[int, list[str]]]:
        text = (line.decode("utf-8", "replace") for _, line in _lines(path))
        reader = csv.reader(text, delimiter=delimiter)
        for row in reader:
            if row:
                yield reader.line_num, row

    names = None
    if header:
        first = next(rows(), None)
        names = first[1] if first else []
    key_at = _column(path, key_column, names, "key column")
    size_at = _column(path, size_column, names, "size column")
    needed = max(key_at, -1 if size_at is None else size_at)

    def body() -> Iterator[tuple[int, list[str]]]:
        it = rows()
        if header:
            next(it, None)
        for lineno, row in it:
            if len(row) <= needed:
                raise TraceError(
                    f"{path}:{lineno}: {len(row)} columns, column {needed} (0-based) is missing"
                )
            yield lineno, row

    keys = _keys(lambda: (row[key_at].encode() for _, row in body()))
    sizes = None
    if size_at is not None:
        sizes = array("q", (_int(path, n, row[size_at].encode(), "size") for n, row in body()))
    return keys, sizes


def read_trace(
    path: str | os.PathLike[str],
    fmt: str,
    *,
    key_column: str | int = 0,
    size_column: str | int | None = None,
    header: bool = False,
    delimiter: str = ",",
) -> Trace:
    """Read the trace at ``path`` in format ``fmt`` (one of ``FORMATS``; see the module
    docstring). ``key_column``, ``size_column``, ``header`` and ``delimiter`` apply to ``csv``.
    Raises ``TraceError`` naming the file and line for anything unreadable."""
    path = os.fspath(path)
    if fmt not in FORMATS:
        raise TraceError(f"{path}: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    sizes = None
    if fmt == "plain":
        keys = _read_plain(path)
    elif fmt == "lirs":
        keys = _read_lirs(path)
    elif fmt == "arc":
        keys = _read_arc(path)
    elif fmt == "oraclegeneral":
        keys, sizes = _read_oracle(path)
    elif fmt == "csv":
        keys, sizes = _read_csv(path, key_column, size_column, header, delimiter)
    else:
        keys = _read_be(path, 4 if fmt == "be_i32" else 8)
    return Trace(os.path.basename(path), keys, sizes)


def zipf(alpha: float, n_objects: int, n_requests: int, seed: int = 0) -> Trace:
    """A synthetic trace: ``n_requests`` keys drawn from Zipf(``alpha``) over ``n_objects``
    objects (``mlcache.bench.zipf.zipf_trace``)."""
    keys = array("q", zipf_trace(alpha, n_objects, n_requests, seed))
    return Trace(f"zipf-{alpha:g}-{n_objects}-{n_requests}-{seed}", keys)
