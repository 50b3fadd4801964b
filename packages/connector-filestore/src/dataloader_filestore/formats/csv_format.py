"""CSV through pyarrow's streaming reader and writer.

Reading never holds a whole file: ``pyarrow.csv.open_csv`` parses block by block (``block_size``
bytes) and infers column types from the first block; ``column_types`` overrides inference where
the first block is not representative. ``encoding: auto`` sniffs the first 64 KiB with
charset-normalizer; anything that is not UTF-8 is transcoded by pyarrow while streaming.

pyarrow's streaming reader does not know the row number of a bad row, so on a parse or
conversion error the file is scanned again with the standard library's csv module, from the last
row that was read successfully, to find the exact row. That scan is per-row Python, but it only
ever runs on the error path.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa
from dataloader.errors import ConnectorError
from pydantic import Field, field_validator

from dataloader_filestore.compression import DetachableReader, peek
from dataloader_filestore.formats.options import ColumnTypesMixin, StreamCompression

SNIFF_BYTES = 64 * 1024
#: How many rows past the last good one the error locator scans before giving up.
LOCATE_LIMIT = 2_000_000


class CsvOptions(ColumnTypesMixin):
    """Options of the ``csv`` format (recipe key ``options``)."""

    delimiter: str = ","
    header: bool = True
    #: Column names to use; with ``header: true`` they replace the file's header row.
    column_names: list[str] | None = None
    #: A Python codec name, or ``auto`` to detect it from the first 64 KiB.
    encoding: str = "utf-8"
    #: ``null`` disables quoting (reading); the writer always quotes with ``"``.
    quote_char: str | None = '"'
    escape_char: str | None = None
    double_quote: bool = True
    #: Unquoted empty fields are NULL and quoted ones (``""``) empty strings, as PostgreSQL and
    #: this connector's writer spell them; ``false`` reads both as empty strings.
    empty_is_null: bool = True
    #: More spellings of NULL (e.g. ``["NULL", "n/a"]``); default: only the empty field.
    null_values: list[str] | None = None
    skip_rows: int = Field(default=0, ge=0)
    compression: StreamCompression = "auto"
    block_size: int = Field(default=1 << 20, ge=1024)

    @field_validator("delimiter", "quote_char", "escape_char")
    @classmethod
    def _single_character(cls, value: str | None) -> str | None:
        if value is not None and value in ("\\t", "tab"):
            return "\t"
        if value is not None and len(value) != 1:
            raise ValueError(f"must be a single character, got {value!r}")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (use e.g. utf-8, latin-1, cp1252 or auto)") from None
        return value


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


#: Largest block tried when one row is longer than ``block_size`` (a row must fit in a block).
MAX_BLOCK_SIZE = 1 << 30


class CsvFormat:
    """The ``csv`` format."""

    extensions = (".csv", ".tsv", ".txt")
    #: Files may be wrapped in gzip/zstd (the connector handles that around the stream).
    compressible = True
    file_extension = ".csv"

    def __init__(self, options: CsvOptions | None = None) -> None:
        self.options = options or CsvOptions()

    # reading -----------------------------------------------------------------------------
    def read(self, stream: IO[bytes], *, path: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pacsv

        encoding, stream = self._encoding(stream, path)
        sample, stream = peek(stream, 1)
        if not sample:
            return  # an empty file has no header and no rows
        block_size = self.options.block_size
        rows_done = 0
        while True:
            reader_options, parse_options, convert_options = self._arrow_options(encoding, block_size, rows_done)
            guarded = DetachableReader(stream)
            try:
                reader = pacsv.open_csv(
                    guarded, read_options=reader_options, parse_options=parse_options, convert_options=convert_options
                )
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                    self._check_text(batch, path, rows_done)
                    for offset in range(0, batch.num_rows, batch_size):
                        yield batch.slice(offset, batch_size)
                    rows_done += batch.num_rows
            except pa.ArrowInvalid as exc:
                guarded.detach()  # pyarrow's read-ahead threads must not move the stream while we scan it
                if "straddle" in str(exc) and block_size < MAX_BLOCK_SIZE and _seekable(stream):
                    # A single row longer than a block: read again with bigger blocks, after the rows
                    # already yielded. Only files with huge rows pay for this.
                    block_size = min(block_size * 16, MAX_BLOCK_SIZE)
                    stream.seek(0)
                    continue
                raise self._locate_error(exc, stream, path, encoding, rows_done) from exc
            except (OSError, UnicodeDecodeError) as exc:
                raise ConnectorError(
                    f"cannot read CSV file {path}: {exc}; check the file and options.encoding", file=path
                ) from exc
            finally:
                guarded.detach()  # also when the consumer stops early: the caller is about to close the file

    def read_schema(self, stream: IO[bytes], *, path: str) -> pa.Schema | None:
        """The columns ``read`` would give, from the first block alone (for the preflight check).

        ``read`` starts Arrow's read-ahead, which parses blocks the check never looks at (~40 ms on
        a big file, more over a network). None for an empty file, or when the first block does not
        parse or holds text invalid in the encoding: ``read`` then reports the problem with its row.
        """
        import pyarrow.csv as pacsv

        encoding, stream = self._encoding(stream, path)
        sample, stream = peek(stream, 1)
        if not sample:
            return None
        read_options, parse_options, convert_options = self._arrow_options(encoding)
        read_options.use_threads = False
        try:
            schema = pacsv.open_csv(
                stream, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            ).schema
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError):
            return None
        wanted = self.options.arrow_column_types() or {}
        if any(pa.types.is_binary(field.type) and field.name not in wanted for field in schema):
            return None  # text that is not valid in the encoding: ``read`` names the row
        return schema

    def _check_text(self, batch: pa.RecordBatch, path: str, rows_done: int) -> None:
        """pyarrow reads text that is not valid in the encoding as binary: say so, with the row."""
        wanted = self.options.arrow_column_types() or {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if not pa.types.is_binary(column.type) or name in wanted:
                continue
            # Error path only: find the first undecodable value to name its row.
            for index, value in enumerate(column.to_pylist()):
                if value is None:
                    continue
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    row = rows_done + index + 1
                    raise ConnectorError(
                        f"invalid UTF-8 text in {path}, row {row}, column '{name}': {value[:40]!r}; "
                        "set options.encoding to the file's encoding (e.g. latin-1, cp1252) or to auto",
                        file=path,
                        row=row,
                        column=name,
                    ) from None

    def _encoding(self, stream: IO[bytes], path: str) -> tuple[str, IO[bytes]]:
        if self.options.encoding != "auto":
            return _arrow_encoding(self.options.encoding), stream
        sample, stream = peek(stream, SNIFF_BYTES)
        return _arrow_encoding(detect_encoding(sample)), stream

    def _arrow_options(self, encoding: str, block_size: int | None = None, skip_after_header: int = 0) -> tuple[Any, Any, Any]:
        import pyarrow.csv as pacsv

        o = self.options
        skip = o.skip_rows + (1 if o.header and o.column_names else 0)
        read_options = pacsv.ReadOptions(
            use_threads=True,
            block_size=block_size or o.block_size,
            skip_rows=skip,
            skip_rows_after_names=skip_after_header,
            column_names=o.column_names,
            autogenerate_column_names=not o.header and not o.column_names,
            encoding=encoding,
        )
        parse_options = pacsv.ParseOptions(
            delimiter=o.delimiter,
            quote_char=o.quote_char if o.quote_char is not None else False,
            double_quote=o.double_quote,
            escape_char=o.escape_char if o.escape_char is not None else False,
            newlines_in_values=True,
        )
        convert: dict[str, Any] = {
            "column_types": o.arrow_column_types(),
            "strings_can_be_null": o.empty_is_null or o.null_values is not None,
            "quoted_strings_can_be_null": False,
        }
        if o.null_values is not None:
            convert["null_values"] = list(o.null_values) + ([""] if o.empty_is_null else [])
        return read_options, parse_options, pacsv.ConvertOptions(**convert)

    def _locate_error(
        self, exc: pa.ArrowInvalid, stream: IO[bytes], path: str, encoding: str, rows_done: int
    ) -> ConnectorError:
        """A ConnectorError naming the file and, when it can be found, the exact row."""
        detail = str(exc).strip()
        predicate = _bad_row_predicate(detail)
        found = None
        if predicate is not None and getattr(stream, "seekable", lambda: False)():
            try:
                stream.seek(0)
                found = self._scan(stream, encoding, rows_done, predicate)
            except (OSError, ValueError, UnicodeDecodeError):
                found = None
        if found is not None:
            row, line = found
            where = f"row {row} (line {line})"
        else:
            row, where = rows_done + 1, f"row {rows_done + 1} or a later one"
        hint = ""
        if "conversion error" in detail:
            hint = "; the column's type was inferred from the first rows: set options.column_types to read it differently"
        elif "columns" in detail:
            hint = "; check options.delimiter and options.quote_char"
        return ConnectorError(f"malformed CSV in {path} at {where}: {detail}{hint}", file=path, row=row)

    def _scan(
        self, stream: IO[bytes], encoding: str, start: int, predicate: Callable[[list[str], int], bool]
    ) -> tuple[int, int] | None:
        import csv

        o = self.options
        text = io.TextIOWrapper(stream, encoding=encoding, newline="", errors="replace")
        reader = csv.reader(
            text,
            delimiter=o.delimiter,
            quotechar=o.quote_char or '"',
            quoting=csv.QUOTE_MINIMAL if o.quote_char else csv.QUOTE_NONE,
            doublequote=o.double_quote,
            escapechar=o.escape_char,
            strict=False,
        )
        for _ in range(o.skip_rows):
            next(reader, None)
        expected = len(o.column_names) if o.column_names else None
        if o.header:
            header = next(reader, None)
            expected = expected or (len(header) if header else None)
        # Per-row Python, on the error path only (see the module docstring).
        for number, record in enumerate(reader, start=1):
            if expected is None:
                expected = len(record)
            if number > start + LOCATE_LIMIT:
                return None
            if number > start and predicate(record, expected):
                return number, reader.line_num
        return None

    # writing -----------------------------------------------------------------------------
    def writer(self, stream: IO[bytes], schema: pa.Schema) -> CsvWriter:
        return CsvWriter(stream, schema, self.options)


class CsvWriter:
    """Streams record batches to CSV; the header (if any) is written with the first batch."""

    def __init__(self, stream: IO[bytes], schema: pa.Schema, options: CsvOptions) -> None:
        import pyarrow.csv as pacsv

        self._stream = stream
        self._encoding = _arrow_encoding(options.encoding if options.encoding != "auto" else "utf-8")
        sink: IO[bytes] = stream if self._encoding == "utf8" else _Transcoder(stream, self._encoding, options.encoding)
        self._sink = sink
        write_options = pacsv.WriteOptions(include_header=options.header, delimiter=options.delimiter)
        try:
            self._writer = pacsv.CSVWriter(sink, schema, write_options=write_options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ConnectorError(f"cannot write these columns as CSV: {exc}; use format parquet") from exc

    def write(self, batch: pa.RecordBatch) -> None:
        try:
            self._writer.write_batch(batch)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ConnectorError(f"cannot write these columns as CSV: {exc}; use format parquet") from exc

    def close(self) -> None:
        self._writer.close()
        self._sink.flush()


class _Transcoder(io.RawIOBase):
    """Re-encodes the UTF-8 pyarrow writes into the configured encoding."""

    def __init__(self, raw: IO[bytes], encoding: str, label: str) -> None:
        self._raw = raw
        self._label = label
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._encoding = encoding

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        text = self._decoder.decode(bytes(data))
        try:
            encoded = text.encode(self._encoding)
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise ConnectorError(
                f"the text {bad!r} cannot be written in {self._label}; "
                "set options.encoding to one that has it, such as utf-8"
            ) from exc
        self._raw.write(encoded)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()


def detect_encoding(sample: bytes) -> str:
    """The encoding of ``sample`` (the start of a file) for ``encoding: auto``.

    Valid UTF-8 is UTF-8. Otherwise charset-normalizer ranks single-byte code pages; several fit
    most Western text equally well, and among equally good candidates Windows-1252 (a superset
    of Latin-1's printable characters) is by far the most common, so it wins ties.
    """
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return "latin-1"  # decodes any byte; better than failing on a file nobody could classify
    best_chaos = min(match.chaos for match in matches)
    for match in matches:
        if match.chaos == best_chaos and {"cp1252", "latin_1"} & set(match.could_be_from_charset):
            return "cp1252"
    return matches[0].encoding


def _arrow_encoding(name: str) -> str:
    """pyarrow's spelling: ``utf8`` takes its fast path (no transcoding); others are Python codecs."""
    canonical = codecs.lookup(name).name
    return "utf8" if canonical in ("utf-8", "ascii") else canonical


_COLUMNS = re.compile(r"Expected (\d+) columns, got (\d+)")
_CONVERSION = re.compile(r"column #(\d+): CSV conversion error to [^:]+: invalid value '(.*)'$", re.S)


def _bad_row_predicate(detail: str) -> Callable[[list[str], int], bool] | None:
    """What the bad row looks like, from pyarrow's message (a wrong field count, or a bad value)."""
    columns = _COLUMNS.search(detail)
    if columns:
        got = int(columns.group(2))
        return lambda record, expected: len(record) == got and got != expected
    conversion = _CONVERSION.search(detail)
    if conversion:
        index, value = int(conversion.group(1)), conversion.group(2)
        return lambda record, expected: len(record) > index and record[index] == value
    return None


__all__ = ["CsvFormat", "CsvOptions"]
