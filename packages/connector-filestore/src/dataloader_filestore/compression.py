"""Streams around file handles: compression (gzip, zstd), sniffing the first bytes, detaching.

Parquet compresses inside the file and is never wrapped; text formats (CSV, JSON) are, when the
name ends in ``.gz`` / ``.zst`` or the format's ``compression`` option says so.
"""

from __future__ import annotations

import io
import threading
from typing import IO

SUFFIXES: dict[str, str] = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
EXTENSION_OF: dict[str, str] = {"gzip": ".gz", "zstd": ".zst"}


def detect(path: str, option: str | None) -> str | None:
    """The codec for ``path``: the option when explicit, else by suffix; ``None`` for no compression."""
    if option and option not in ("auto", "none"):
        return option
    if option == "none":
        return None
    lowered = path.lower()
    for suffix, codec in SUFFIXES.items():
        if lowered.endswith(suffix):
            return codec
    return None


def strip_suffix(path: str) -> str:
    """``data.csv.gz`` -> ``data.csv`` (used to match a file against a format's extensions)."""
    lowered = path.lower()
    for suffix in SUFFIXES:
        if lowered.endswith(suffix):
            return path[: -len(suffix)]
    return path


def open_reader(raw: IO[bytes], codec: str | None) -> IO[bytes]:
    """A decompressing reader over ``raw``; closing it does not close ``raw``."""
    if codec is None:
        return raw
    if codec == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
    raise ValueError(f"unknown compression {codec!r} (use gzip, zstd or none)")


def open_writer(raw: IO[bytes], codec: str | None) -> IO[bytes]:
    """A compressing writer over ``raw``; closing it finishes the stream but does not close ``raw``."""
    if codec is None:
        return _Unclosable(raw)
    if codec == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
    raise ValueError(f"unknown compression {codec!r} (use gzip, zstd or none)")


class _Unclosable(io.RawIOBase):
    """Passes writes through; ``close`` only flushes, so the caller still owns ``raw``."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        self._raw.write(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            self._raw.flush()
        super().close()


class PrefixedStream(io.RawIOBase):
    """Replays bytes already read from a stream (a sniffed sample), then continues with the stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class DetachableReader(io.RawIOBase):
    """Hands reads to ``raw`` until ``detach``; afterwards readers (pyarrow's threads) see the end."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._lock = threading.Lock()
        self._detached = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with self._lock:
            return b"" if self._detached else self._raw.read(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def detach(self) -> None:  # type: ignore[override]
        with self._lock:
            self._detached = True


def peek(stream: IO[bytes], size: int) -> tuple[bytes, IO[bytes]]:
    """Read up to ``size`` bytes for sniffing and return them with a stream that still starts at byte 0."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    sample = b"".join(chunks)
    if _seekable(stream):
        stream.seek(0)
        return sample, stream
    return sample, io.BufferedReader(PrefixedStream(sample, stream), buffer_size=1 << 20)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False
