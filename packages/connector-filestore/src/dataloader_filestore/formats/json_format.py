"""JSON Lines (``jsonl``) and JSON (``json``) through pyarrow.

- ``jsonl``: one object per line, read with pyarrow's streaming reader (``pyarrow.json.open_json``).
- ``json``: either a file holding one top-level array of objects, or newline-delimited objects.
  The first non-blank byte decides: ``[`` means an array, which is streamed element by element
  with the standard library's decoder (pyarrow has no reader for arrays) and typed by Arrow per
  batch; anything else is read exactly like ``jsonl``. The writer writes a top-level array.

Writing builds each row's JSON text with ``pyarrow.compute`` column by column (escaping,
quoting, ``null``) so flat tables never go through Python objects; only nested or binary
columns fall back to ``json.dumps`` per value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
from dataloader.errors import ConnectorError
from pydantic import Field

from dataloader_filestore.compression import DetachableReader, peek
from dataloader_filestore.formats.options import ColumnTypesMixin, StreamCompression

_READ_CHUNK = 1 << 20


class JsonOptions(ColumnTypesMixin):
    """Options of the ``json`` and ``jsonl`` formats."""

    compression: StreamCompression = "auto"
    block_size: int = Field(default=1 << 20, ge=1024)


class JsonLinesFormat:
    """The ``jsonl`` format: one JSON object per line."""

    extensions: tuple[str, ...] = (".jsonl", ".ndjson")
    compressible = True
    file_extension = ".jsonl"
    array = False

    def __init__(self, options: JsonOptions | None = None) -> None:
        self.options = options or JsonOptions()

    def read(self, stream: IO[bytes], *, path: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from _read_lines(stream, path, batch_size, self.options)

    def writer(self, stream: IO[bytes], schema: pa.Schema) -> JsonWriter:
        return JsonWriter(stream, schema, array=self.array)


class JsonFormat(JsonLinesFormat):
    """The ``json`` format: a top-level array of objects, or newline-delimited objects."""

    extensions = (".json",)
    file_extension = ".json"
    array = True

    def read(self, stream: IO[bytes], *, path: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        sample, stream = peek(stream, 4096)
        if sample.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"[":  # after a UTF-8 byte order mark, if any
            yield from _read_array(stream, path, batch_size, self.options)
        else:
            yield from _read_lines(stream, path, batch_size, self.options)


def _read_lines(stream: IO[bytes], path: str, batch_size: int, options: JsonOptions) -> Iterator[pa.RecordBatch]:
    import pyarrow.json as pajson

    types = options.arrow_column_types()
    parse = pajson.ParseOptions(
        explicit_schema=pa.schema(list(types.items())) if types else None, newlines_in_values=False
    )
    rows_done = 0
    sample, stream = peek(stream, 1 << 16)
    if not sample.strip():
        return  # an empty file holds no rows
    guarded = DetachableReader(stream)
    try:
        reader = pajson.open_json(
            guarded, read_options=pajson.ReadOptions(use_threads=True, block_size=options.block_size),
            parse_options=parse,
        )
        for batch in reader:
            for offset in range(0, batch.num_rows, batch_size):
                yield batch.slice(offset, batch_size)
            rows_done += batch.num_rows
    except pa.ArrowInvalid as exc:
        guarded.detach()  # pyarrow's read-ahead threads must not move the stream while we scan it
        row = _first_bad_line(stream, rows_done)
        where = f"row {row}" if row is not None else f"row {rows_done + 1} or a later one"
        detail = re.sub(r"\s*in row \d+\s*$", "", str(exc))  # pyarrow counts within a block
        raise ConnectorError(
            f"malformed JSON in {path} at {where}: {detail}", file=path, row=row or rows_done + 1
        ) from exc
    except OSError as exc:
        raise ConnectorError(f"cannot read JSON file {path}: {exc}", file=path) from exc
    finally:
        guarded.detach()  # also when the consumer stops early: the caller is about to close the file


def _first_bad_line(stream: IO[bytes], rows_done: int) -> int | None:
    """The row number of the first line after ``rows_done`` rows that is not a JSON object.

    Per-line Python, on the error path only; None when the stream cannot be read again.
    """
    try:
        if not stream.seekable():
            return None
        stream.seek(0)
    except (OSError, ValueError):
        return None
    row = 0
    for line in stream:
        if not line.strip():
            continue
        row += 1
        if row <= rows_done:
            continue
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        return row
    return None


def _read_array(stream: IO[bytes], path: str, batch_size: int, options: JsonOptions) -> Iterator[pa.RecordBatch]:
    """Stream the elements of a top-level JSON array; per-element Python because pyarrow cannot."""
    schema = pa.schema(list(options.arrow_column_types().items())) or None
    rows: list[Any] = []
    row = 0
    for row, element in enumerate(_array_elements(stream, path), start=1):
        if not isinstance(element, dict):
            raise ConnectorError(
                f"malformed JSON in {path} at row {row}: array elements must be objects, "
                f"got {type(element).__name__}",
                file=path,
                row=row,
            )
        rows.append(element)
        if len(rows) >= batch_size:
            yield _to_batch(rows, schema, path, row - len(rows) + 1)
            rows = []
    if rows:
        yield _to_batch(rows, schema, path, row - len(rows) + 1)


def _to_batch(rows: list[dict[str, Any]], schema: pa.Schema | None, path: str, first_row: int) -> pa.RecordBatch:
    try:
        if schema:
            inferred = pa.Table.from_pylist(rows)
            fields = [schema.field(n) if n in schema.names else inferred.schema.field(n) for n in inferred.column_names]
            return pa.RecordBatch.from_pylist(rows, schema=pa.schema(fields))
        return pa.RecordBatch.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ConnectorError(
            f"malformed JSON in {path} in rows {first_row}-{first_row + len(rows) - 1}: {exc}",
            file=path,
            row=first_row,
        ) from exc


def _array_elements(stream: IO[bytes], path: str) -> Iterator[Any]:
    """Decode ``[a, b, ...]`` one element at a time, holding about one chunk in memory."""
    import codecs

    decoder = json.JSONDecoder()
    text_decoder = codecs.getincrementaldecoder("utf-8-sig")()
    buffer, position, eof = "", 0, False
    started = False
    row = 0

    def fill() -> bool:
        nonlocal buffer, position, eof
        chunk = stream.read(_READ_CHUNK)
        eof = not chunk
        buffer = buffer[position:] + text_decoder.decode(chunk, final=eof)
        position = 0
        return not eof

    def skip_blank() -> None:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            if position < len(buffer) or not fill():
                return

    def fail(message: str) -> ConnectorError:
        return ConnectorError(f"malformed JSON in {path} at row {row + 1}: {message}", file=path, row=row + 1)

    fill()
    skip_blank()
    if buffer[position : position + 1] != "[":
        raise fail("expected a top-level array")
    position += 1
    while True:
        skip_blank()
        if buffer[position : position + 1] == "]":
            return
        if started:
            if buffer[position : position + 1] != ",":
                raise fail("expected ',' or ']' between array elements")
            position += 1
            skip_blank()
        while True:
            try:
                element, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as exc:
                if eof:
                    raise fail(exc.msg) from exc
                fill()
        position = end
        started = True
        row += 1
        yield element


class JsonWriter:
    """Writes JSON Lines, or (``array=True``) one top-level JSON array with one element per line."""

    def __init__(self, stream: IO[bytes], schema: pa.Schema, *, array: bool) -> None:
        self._stream = stream
        self._schema = schema
        self._array = array
        self._rows = 0
        if array:
            stream.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        if batch.num_rows == 0:
            return
        lines = encode_rows(batch)
        if self._array:
            # Each element prefixed with ",\n"; the file's first element drops the comma.
            text = _contiguous_bytes(pc.binary_join_element_wise(",\n", lines, ""))
            self._stream.write(text[1:] if self._rows == 0 else text)
        else:
            self._stream.write(_contiguous_bytes(pc.binary_join_element_wise(lines, "\n", "")))
        self._rows += batch.num_rows

    def close(self) -> None:
        if self._array:
            self._stream.write(b"\n]\n")
        self._stream.flush()


def _contiguous_bytes(text: pa.Array) -> memoryview:
    """The UTF-8 bytes of all values of a string array, back to back, without copying them."""
    _, offsets_buffer, data = text.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(text) + 1, [None, offsets_buffer], offset=text.offset)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return memoryview(data)[start:end] if data is not None else memoryview(b"")


def encode_rows(batch: pa.RecordBatch) -> pa.Array:
    """One JSON object text per row, built column-wise with pyarrow.compute."""
    import pyarrow.compute as pc

    pieces: list[Any] = []
    for index, field in enumerate(batch.schema):
        prefix = ("{" if index == 0 else ",") + json.dumps(field.name, ensure_ascii=False) + ":"
        pieces.append(pa.scalar(prefix))
        pieces.append(_encode_values(batch.column(index)))
    if not pieces:
        return pa.array(["{}"] * batch.num_rows)
    pieces.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*pieces, "")


_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"), ("\f", "\\f")]


def _encode_values(column: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_null(kind):
        return pa.array(["null"] * len(column))
    if pa.types.is_boolean(kind):
        text = pc.if_else(column, "true", "false")
    elif pa.types.is_integer(kind):
        text = column.cast(pa.string())
    elif pa.types.is_floating(kind):
        text = column.cast(pa.string())
        # Keep floats floats when read back ("3" would come back as an integer); NaN/inf are not JSON.
        text = pc.if_else(pc.match_substring_regex(text, r"[.eEn]"), text, pc.binary_join_element_wise(text, ".0", ""))
        text = pc.if_else(pc.is_finite(column), text, pa.scalar(None, pa.string()))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = _quote(column.cast(pa.string()))
    elif (
        pa.types.is_decimal(kind) or pa.types.is_temporal(kind)
    ) and not pa.types.is_duration(kind):
        # Decimals as strings keep every digit; dates and times as ISO-like text.
        text = _quote(column.cast(pa.string()))
    else:
        # Nested and binary values have no vectorised JSON encoding in pyarrow: one dumps per value.
        text = pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False, default=_default) for v in column.to_pylist()],
            pa.string(),
        )
    return pc.fill_null(text, "null")


def _quote(text: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    for raw, escaped in _ESCAPES:
        text = pc.replace_substring(text, raw, escaped)
    if pc.any(pc.match_substring_regex(text, "[\x00-\x1f]")).as_py():
        for code in range(0x20):
            text = pc.replace_substring(text, chr(code), f"\\u{code:04x}")
    return pc.binary_join_element_wise('"', text, '"', "")


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    return str(value)


__all__ = ["JsonFormat", "JsonLinesFormat", "JsonOptions"]
