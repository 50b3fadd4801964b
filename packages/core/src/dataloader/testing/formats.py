"""The file-format contract suite, shipped for format authors (``register_formats``).

A format package tests each format with a subclass::

    # tests/test_format_contract.py
    import pytest
    from dataloader.testing.formats import FormatContractSuite

    class TestAvro(FormatContractSuite):
        format_name = "avro"
        plugins = (my_plugin,)          # when the plugin is not installed through an entry point

        @pytest.fixture
        def corrupt_file(self):
            return b"not avro at all"

The suite builds the format the way a recipe does (its options model; ``format_options`` fixture),
then checks: a table written and read back is the same table (``typed = False`` for a text format
that gives the values back as the sample's types only after a cast, like CSV); a file of no rows
reads as no rows; reading streams, in batches of about ``batch_size`` rows, and the first batch comes
after at most a bounded read-ahead (``read_ahead_limit``, well short of the whole file); writing many small batches makes one file that reads back in
order; and a corrupt file is a ``DataLoaderError`` that names the file, not a bare driver exception.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any, ClassVar

import pyarrow as pa
import pytest

from dataloader.errors import DataLoaderError
from dataloader.plugins import PluginHost, use_host
from dataloader.testing.suite import SealedSuite


class _CountingReader(io.RawIOBase):
    """A read-only stream over bytes that counts how many bytes were read from it."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


class FormatContractSuite(SealedSuite):
    """Subclass it and set ``format_name``; override the fixtures the format needs."""

    _suite = True
    format_name: ClassVar[str] = ""
    plugins: ClassVar[tuple[Any, ...]] = ()
    #: Values come back with the sample's Arrow types (False: compare after casting to them).
    typed: ClassVar[bool] = True
    #: Rows in the streaming test's file, and the batch size it reads with.
    #: It must make a file well over ``read_ahead_limit`` bytes.
    streaming_rows: ClassVar[int] = 2_000_000
    streaming_batch: ClassVar[int] = 10_000
    #: Bytes a reader may take from the stream before its first batch (its read-ahead window).
    read_ahead_limit: ClassVar[int] = 48 * 1024 * 1024

    # fixtures ----------------------------------------------------------------------------------
    @pytest.fixture
    def format_options(self) -> dict[str, Any]:
        """The format's recipe options for the round-trip tests."""
        return {}

    @pytest.fixture
    def streaming_options(self, format_options: dict[str, Any]) -> dict[str, Any]:
        """Options for the streaming test (e.g. small row groups for a columnar format)."""
        return format_options

    @pytest.fixture
    def sample(self) -> pa.Table:
        return pa.table(
            {
                "id": pa.array([1, 2, 3, 9_223_372_036_854_775_807], pa.int64()),
                "name": ["Ada", "Zoë \"quoted\", with comma", None, "line\nbreak"],
                "amount": pa.array([1.5, -0.25, None, 1e300], pa.float64()),
                "active": pa.array([True, False, None, True], pa.bool_()),
            }
        )

    @pytest.fixture
    def corrupt_file(self) -> bytes:
        pytest.fail(f"{type(self).__name__} must define a corrupt_file fixture: bytes the format cannot read")

    @pytest.fixture(autouse=True)
    def format_host(self) -> Iterator[PluginHost]:
        from dataloader.testing import plugin_host

        host = plugin_host(*self.plugins)
        with use_host(host):
            yield host

    # helpers -----------------------------------------------------------------------------------
    def build(self, host: PluginHost, options: dict[str, Any]) -> Any:
        registration = host.registry.get("format", self.format_name)
        config = registration.config(**options) if isinstance(registration.config, type) else options
        return registration.build(config)

    @staticmethod
    def write(fmt: Any, table: pa.Table, chunk: int | None = None) -> bytes:
        stream = io.BytesIO()
        writer = fmt.writer(stream, table.schema)
        for batch in table.to_batches(max_chunksize=chunk):
            writer.write(batch)
        writer.close()
        return stream.getvalue()

    @staticmethod
    def read(fmt: Any, stream: IO[bytes], batch_size: int = 10_000, path: str = "sample") -> list[pa.RecordBatch]:
        return list(fmt.read(stream, path=path, batch_size=batch_size))

    def same(self, got: list[pa.RecordBatch], want: pa.Table) -> None:
        table = pa.Table.from_batches(got) if got else want.schema.empty_table()
        assert table.column_names == want.column_names
        if not self.typed:
            table = table.cast(want.schema)
        assert table.num_rows == want.num_rows
        assert table.to_pylist() == want.to_pylist()

    # the suite ---------------------------------------------------------------------------------
    def test_round_trip(self, format_host: PluginHost, format_options: dict[str, Any], sample: pa.Table) -> None:
        fmt = self.build(format_host, format_options)
        data = self.write(fmt, sample)
        self.same(self.read(fmt, io.BytesIO(data)), sample)

    def test_many_small_batches_make_one_file_in_order(
        self, format_host: PluginHost, format_options: dict[str, Any], sample: pa.Table
    ) -> None:
        fmt = self.build(format_host, format_options)
        table = pa.concat_tables([sample] * 25)
        self.same(self.read(fmt, io.BytesIO(self.write(fmt, table, chunk=3))), table)

    def test_no_rows_read_as_no_rows(self, format_host: PluginHost, format_options: dict[str, Any], sample: pa.Table) -> None:
        fmt = self.build(format_host, format_options)
        data = self.write(fmt, sample.slice(0, 0))
        got = self.read(fmt, io.BytesIO(data))
        assert sum(batch.num_rows for batch in got) == 0

    def test_reads_stream_in_batches(self, format_host: PluginHost, streaming_options: dict[str, Any]) -> None:
        import pyarrow.compute as pc

        fmt = self.build(format_host, streaming_options)
        rows = self.streaming_rows
        ids = pa.array(range(rows), pa.int64())
        text = pc.binary_join_element_wise("row ", pc.cast(ids, pa.string()), " of a file too big to read at once", "")
        data = self.write(fmt, pa.table({"id": ids, "text": text}), chunk=self.streaming_batch)
        del ids, text
        stream = _CountingReader(data)
        batches = iter(fmt.read(io.BufferedReader(stream, buffer_size=64 * 1024), path="big", batch_size=self.streaming_batch))
        first = next(batches)
        window = min(self.read_ahead_limit, len(data) * 3 // 4)
        assert stream.bytes_read <= window, (
            f"{stream.bytes_read} of {len(data)} bytes read before the first batch (allowed: {window})"
        )
        sizes = [first.num_rows] + [batch.num_rows for batch in batches]
        assert sum(sizes) == rows
        assert max(sizes) <= 2 * self.streaming_batch, f"batches of up to {max(sizes)} rows for batch_size {self.streaming_batch}"

    def test_corrupt_file_is_a_clear_error_naming_it(
        self, format_host: PluginHost, format_options: dict[str, Any], corrupt_file: bytes
    ) -> None:
        fmt = self.build(format_host, format_options)
        with pytest.raises(DataLoaderError) as caught:
            self.read(fmt, io.BytesIO(corrupt_file), path="incoming/broken.data")
        assert "incoming/broken.data" in str(caught.value)


__all__ = ["FormatContractSuite"]
