"""Trace readers: round trips of small files written here, in every format and compression,
and one-line errors naming the file and line."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from array import array

import pytest

from mlcache.bench.readers import TraceError, open_trace, read_trace, zipf


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


COMPRESSIONS = {
    "none": lambda d: d,
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bzip2": bz2.compress,
    "zstd": _zstd,
}
KEYS = [5, 3, 5, -7, 2**40, 0, 3]


def encode(fmt: str, keys: list[int]) -> bytes:
    if fmt == "plain":
        return "".join(f"{k}\n" for k in keys).encode()
    if fmt == "lirs":
        return ("*\n" + "".join(f"{k}\n\n" for k in keys) + "*\n").encode()
    if fmt == "oraclegeneral":
        return b"".join(struct.pack("<IQIq", i, k % 2**64, 100 + i, -1) for i, k in enumerate(keys))
    if fmt == "csv":
        rows = "".join(f"{i},{k},{100 + i}\n" for i, k in enumerate(keys))
        return ("time,key,size\n" + rows).encode()
    if fmt == "be_i32":
        return b"".join(struct.pack(">i", k) for k in keys)
    if fmt == "be_i64":
        return b"".join(struct.pack(">q", k) for k in keys)
    raise AssertionError(fmt)


def write(tmp_path, name: str, data: bytes, compression: str = "none"):
    path = tmp_path / name
    path.write_bytes(COMPRESSIONS[compression](data))
    return path


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("fmt", ["plain", "lirs", "oraclegeneral", "csv", "be_i32", "be_i64"])
def test_round_trip(tmp_path, fmt, compression):
    keys = [k for k in KEYS if fmt != "be_i32" or abs(k) < 2**31]
    path = write(tmp_path, f"trace.{fmt}", encode(fmt, keys), compression)
    kwargs = {"key_column": "key", "size_column": "size", "header": True} if fmt == "csv" else {}
    trace = read_trace(path, fmt, **kwargs)
    assert list(trace.keys) == keys and trace.name == f"trace.{fmt}"
    assert trace.unique == len(set(keys))
    if fmt in ("oraclegeneral", "csv"):
        assert list(trace.sizes) == [100 + i for i in range(len(keys))]


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_arc_lines_expand_to_block_ranges(tmp_path, compression):
    path = write(tmp_path, "P1.lis", b"10 3 0 0\n7 1 0 1\n\n11 2 0 2\n", compression)
    assert list(read_trace(path, "arc").keys) == [10, 11, 12, 7, 11, 12]


def test_plain_string_keys_are_numbered(tmp_path):
    path = write(tmp_path, "t.txt", b"user:1\n5\nuser:2\nuser:1\n\n5\n")
    assert list(read_trace(path, "plain").keys) == [0, 1, 2, 0, 1]


def test_csv_by_index_without_header(tmp_path):
    path = write(tmp_path, "t.csv", b"a;10\nb;20\na;30\n")
    trace = read_trace(path, "csv", key_column=0, size_column=1, delimiter=";")
    assert list(trace.keys) == [0, 1, 0] and list(trace.sizes) == [10, 20, 30]


def test_zipf_is_seeded():
    a, b = zipf(1.0, 100, 500, seed=3), zipf(1.0, 100, 500, seed=3)
    assert a.keys == b.keys and len(a) == 500 and a.unique <= 100


def test_open_trace_detects_compression_not_name(tmp_path):
    path = write(tmp_path, "misleading.txt", b"1\n2\n", "xz")
    with open_trace(path) as f:
        assert f.read() == b"1\n2\n"


@pytest.mark.parametrize(
    "fmt, data, message",
    [
        ("lirs", b"1\n2\nthree\n", r"t:3: key is not a 64-bit integer: 'three'"),
        ("lirs", b"1\n99999999999999999999\n", r"t:2: key is not a 64-bit integer"),
        ("arc", b"1 2 0 0\n5 x 0 1\n", r"t:2: n_blocks is not a 64-bit integer: 'x'"),
        ("arc", b"1 2 0\n", r"t:1: expected 4 fields"),
        ("arc", b"1 -2 0 0\n", r"t:1: bad block range"),
        ("oraclegeneral", b"\0" * 30, r"t: record 2: truncated \(6 of 24 bytes\)"),
        ("be_i64", b"\0" * 12, r"t: record 2: truncated"),
        ("be_i32", b"\0" * 5, r"t: record 2: truncated"),
        ("csv", b"k,s\n1,2\n3\n", r"t:3: 1 columns"),
        ("plain", b"1\n", r"t: unknown format 'nope'"),
    ],
)
def test_errors_name_file_and_line(tmp_path, fmt, data, message):
    path = write(tmp_path, "t", data)
    fmt = "nope" if message.endswith("'nope'") else fmt
    kwargs = {"size_column": 1} if fmt == "csv" else {}
    with pytest.raises(TraceError, match=message):
        read_trace(path, fmt, **kwargs)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(TraceError, match=r"nothere: cannot open: No such file"):
        read_trace(tmp_path / "nothere", "plain")
    path = write(tmp_path, "cut.gz", gzip.compress(b"1\n" * 10000)[:50])
    with pytest.raises(TraceError, match=r"cut.gz:\d+: corrupt compressed data"):
        read_trace(path, "lirs")


def test_csv_column_names_need_a_header(tmp_path):
    path = write(tmp_path, "t.csv", b"key\n1\n")
    with pytest.raises(TraceError, match="no header"):
        read_trace(path, "csv", key_column="key")
    with pytest.raises(TraceError, match=r"t.csv:1: no key column 'nope'"):
        read_trace(path, "csv", key_column="nope", header=True)
