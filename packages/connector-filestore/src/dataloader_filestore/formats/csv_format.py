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
        # The first block, kept until the first batch is checked (see _check_first_batch).
        first_block: bytes | None
        first_block, stream = peek(stream, self.options.block_size)
        if not first_block:
            return  # an empty file has no header and no rows
        read_as = self._read_as(encoding)
        block_size = self.options.block_size
        rows_done = 0
        while True:
            reader_options, parse_options, convert_options = self._arrow_options(encoding, block_size, rows_done)
            guarded = DetachableReader(stream)
            try:
                reader = pacsv.open_csv(
                    guarded, read_options=reader_options, parse_options=parse_options, convert_options=convert_options
                )
                check_header(reader.schema.names, path)
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                    self._check_text(batch, path, rows_done, read_as)
                    if first_block is not None:
                        self._check_first_batch(batch, first_block, path, encoding)
                        first_block = None
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
                raise self._locate_error(exc, stream, path, encoding, rows_done, read_as) from exc
            except (OSError, UnicodeDecodeError) as exc:
                raise ConnectorError(
                    f"cannot read CSV file {path}: {exc}; check the file and options.encoding ({read_as})", file=path
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
        check_header(schema.names, path)
        wanted = self.options.arrow_column_types() or {}
        if any(pa.types.is_binary(field.type) and field.name not in wanted for field in schema):
            return None  # text that is not valid in the encoding: ``read`` names the row
        return schema

    def _read_as(self, encoding: str) -> str:
        """How the file is being decoded, for messages: ``read as cp1252, detected by encoding: auto``."""
        name = "utf-8" if encoding == "utf8" else encoding
        return f"read as {name}, detected by encoding: auto" if self.options.encoding == "auto" else f"read as {name}"

    def _check_text(self, batch: pa.RecordBatch, path: str, rows_done: int, read_as: str = "read as utf-8") -> None:
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
                        f"set options.encoding to the file's encoding (e.g. latin-1, cp1252, utf-16) or to auto ({read_as})",
                        file=path,
                        row=row,
                        column=name,
                    ) from None

    def _encoding(self, stream: IO[bytes], path: str) -> tuple[str, IO[bytes]]:
        if self.options.encoding != "auto":
            encoding = _arrow_encoding(self.options.encoding)
            if encoding == "utf8":
                sample, stream = peek(stream, 4096)
                wide = wide_encoding(sample)
                if wide is not None:
                    raise ConnectorError(
                        f"{path} is not UTF-8 text: it looks like {wide} ({_wide_evidence(sample)}); "
                        f"set options.encoding: {wide} (or auto)",
                        file=path,
                        encoding=wide,
                    )
            return encoding, stream
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
        # Only what the recipe says is NULL: pyarrow's own default list (NA, N/A, NULL, null, nan,
        # NaN, #N/A ...) would turn real values into NULL, and NaN in a float column too.
        null_values = list(o.null_values or []) + ([""] if o.empty_is_null else [])
        convert: dict[str, Any] = {
            "column_types": o.arrow_column_types(),
            "null_values": null_values,
            "strings_can_be_null": bool(null_values),
            "quoted_strings_can_be_null": False,
        }
        return read_options, parse_options, pacsv.ConvertOptions(**convert)

    def _locate_error(
        self, exc: pa.ArrowInvalid, stream: IO[bytes], path: str, encoding: str, rows_done: int,
        read_as: str = "read as utf-8",
    ) -> ConnectorError:
        """A ConnectorError naming the file and, when it can be found, the exact row."""
        detail = str(exc).strip()
        conversion = _CONVERSION.search(detail)
        names = self._column_names(stream, encoding) if conversion else None  # before the scan closes the stream
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
        column = None
        if conversion:
            index = int(conversion.group(1))
            column = names[index] if names is not None and index < len(names) else None
            named = f"column '{column}'" if column is not None else f"column {index + 1}"
            pinned = column is not None and column in (self.options.column_types or {})
            hint = (
                f"; {named} is pinned to {self.options.column_types[column]} in options.column_types: "
                "fix the value or pin a wider type (string keeps any text)"
                if pinned
                else f"; {named}'s type was inferred from the first rows: set options.column_types "
                f"(e.g. {{{column or 'name'}: string}}) to read it differently"
            )
            if _INT64_OVERFLOW.search(detail):
                hint = (
                    f"; {named} holds a whole number beyond the int64 range: set options.column_types "
                    f"{{{column or 'name'}: decimal(38,0)}} (or string) to keep every digit"
                )
        elif "columns" in detail:
            hint = "; check options.delimiter and options.quote_char"
        return ConnectorError(
            f"malformed CSV in {path} at {where}: {detail}{hint} ({read_as})", file=path, row=row, column=column
        )

    def _column_names(self, stream: IO[bytes], encoding: str) -> list[str] | None:
        """The header's names (error path only), or None when the stream cannot be read again."""
        import csv

        o = self.options
        if o.column_names:
            return list(o.column_names)
        if not o.header or not _seekable(stream):
            return None
        try:
            stream.seek(0)
            text = io.TextIOWrapper(stream, encoding=encoding, newline="", errors="replace")
            reader = csv.reader(text, delimiter=o.delimiter, quotechar=o.quote_char or '"')
            for _ in range(o.skip_rows):
                next(reader, None)
            header = next(reader, None)
            text.detach()
        except (OSError, ValueError):
            return None
        return header

    def _check_first_batch(self, batch: pa.RecordBatch, first_block: bytes, path: str, encoding: str) -> None:
        """Never lose digits: pyarrow infers a float column when a whole number does not fit int64.

        Column types come from the first block. A float column of it holding a whole number of
        2**63 or more (a vectorised test) is parsed again from the in-memory block as text; if that
        value is written as an integer, reading on would round it, so it is an error naming the
        row and the fix. Written as a float (``1e300``), the column is a float column. Later blocks
        keep the first block's types: a whole number beyond int64 in an int64 column is a
        conversion error that names its row (``_locate_error``).
        """
        huge = huge_integer(batch, self.options.arrow_column_types() or {})
        if huge is None:
            return
        name, _, index = huge
        text = self._text_in_block(first_block, encoding, name, index)
        if text is not None and not _INTEGER_TEXT.match(text.strip()):
            return
        raise big_integer_error(path, index + 1, name, text.strip() if text is not None else None)

    def _text_in_block(self, block: bytes, encoding: str, name: str, index: int) -> str | None:
        """Column ``name`` of row ``index`` of the first block, as written (error path only)."""
        import pyarrow.csv as pacsv

        complete = block[: block.rfind(b"\n") + 1] or block
        read_options, parse_options, convert_options = self._arrow_options(encoding)
        read_options.use_threads = False
        convert_options.column_types = {name: pa.string()}
        try:
            table = pacsv.read_csv(
                io.BytesIO(complete), read_options=read_options, parse_options=parse_options,
                convert_options=convert_options,
            )
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError):
            return None
        if name not in table.column_names or index >= table.num_rows:
            return None
        return table.column(name)[index].as_py()

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
    wide = wide_encoding(sample)
    if wide is not None:
        return wide
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    non_ascii = sum(1 for byte in sample if byte >= 0x80)  # per byte, on 64 KiB at most, once a file
    if non_ascii < SHORT_EVIDENCE and _decodes(sample, "cp1252"):
        # Too few non-ASCII bytes for a statistical guess to beat the most common code page
        # (``3;Zoë;3,25`` would be johab otherwise).
        return "cp1252"
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return "latin-1"  # decodes any byte; better than failing on a file nobody could classify
    best_chaos = min(match.chaos for match in matches)
    for match in matches:
        if match.chaos == best_chaos and {"cp1252", "latin_1"} & set(match.could_be_from_charset):
            return "cp1252"
    return matches[0].encoding


#: Below this many non-ASCII bytes, ``encoding: auto`` does not trust a guess over cp1252.
SHORT_EVIDENCE = 32


def _decodes(sample: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        return True
    except UnicodeDecodeError:
        return False


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def wide_encoding(sample: bytes) -> str | None:
    """``utf-16-le`` ... when ``sample`` starts with a UTF-16/32 byte order mark, or has the NUL byte
    in every other position that UTF-16 text of ASCII characters has; else None."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name.rsplit("-", 1)[0]  # utf-16 / utf-32: the codec reads the mark and drops it
    pairs = sample[: len(sample) // 2 * 2]
    if len(pairs) < 8:
        return None
    even, odd = pairs[0::2].count(0), pairs[1::2].count(0)
    half = len(pairs) // 2
    if odd >= 0.8 * half and even == 0:
        return "utf-16-le"
    if even >= 0.8 * half and odd == 0:
        return "utf-16-be"
    return None


def _wide_evidence(sample: bytes) -> str:
    return "a byte order mark" if any(sample.startswith(bom) for bom, _ in _BOMS) else "NUL bytes between the characters"


def check_header(names: list[str], path: str) -> None:
    """One message for a header pyarrow accepts but no destination can: a repeated or empty name."""
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise ConnectorError(
                f"the CSV header of {path} has no name for column {position}; name it in the file, "
                "or set options.column_names to name every column",
                file=path, column_position=position,
            )
        if name in seen:
            raise ConnectorError(
                f"the CSV header of {path} names columns {seen[name]} and {position} both '{name}'; "
                "rename one in the file, or set options.column_names to name every column",
                file=path, column=name, column_positions=[seen[name], position],
            )
        seen[name] = position


_INTEGER_TEXT = re.compile(r"^[+-]?\d+$")
_INT64_OVERFLOW = re.compile(r"conversion error to u?int64: invalid value '[+-]?\d{19,}'")


def huge_integer(batch: pa.RecordBatch, typed: dict[str, Any]) -> tuple[str, int, int] | None:
    """``(column, position, index)`` of the first whole number of 2**63 or more in magnitude in a float
    column the recipe did not type, or None. Vectorised: cheap on every batch."""
    for position, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True)):
        if name in typed or not pa.types.is_floating(column.type):
            continue
        index = first_huge_integral(column)
        if index is not None:
            return name, position, index
    return None


def big_integer_error(
    path: str, row: int, column: str, text: str | None, others: str = "or string; or float64 if rounding is acceptable"
) -> ConnectorError:
    """The rule: a column inferred as float never silently rounds a whole number beyond int64."""
    if text is not None and _INTEGER_TEXT.match(text):
        what = f"the whole number {text} does not fit int64, and reading the column as a float would lose digits"
    else:
        shown = f" ({text})" if text else ""
        what = (
            f"the value{shown} is a whole number beyond int64 in a column inferred as float, which would lose digits"
        )
    return ConnectorError(
        f"{path}, row {row}, column '{column}': {what}; set options.column_types: {{{column}: decimal(38,0)}} "
        f"({others})",
        file=path, row=row, column=column,
    )


def first_huge_integral(column: pa.Array) -> int | None:
    """The index of the first whole value of at least 2**63 in magnitude (where int64 ends), or None."""
    import pyarrow.compute as pc

    if column.null_count == len(column):
        return None
    big = pc.and_(pc.greater_equal(pc.abs(column), 2.0**63), pc.equal(pc.floor(column), column))
    big = pc.fill_null(big, False)
    if not pc.any(big).as_py():
        return None
    return pc.index(big, True).as_py()


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
