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
from dataloader_filestore.formats.csv_format import big_integer_error, huge_integer
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
    # The first block, kept until the first batch is checked for whole numbers beyond int64.
    first_block: bytes | None
    first_block, stream = peek(stream, options.block_size)
    if not first_block.strip():
        return  # an empty file holds no rows
    guarded = DetachableReader(stream)
    try:
        reader = pajson.open_json(
            guarded, read_options=pajson.ReadOptions(use_threads=True, block_size=options.block_size),
            parse_options=parse,
        )
        for batch in reader:
            if first_block is not None:
                _check_first_batch(batch, first_block, path, types)
                first_block = None
            for offset in range(0, batch.num_rows, batch_size):
                yield batch.slice(offset, batch_size)
            rows_done += batch.num_rows
    except pa.ArrowInvalid as exc:
        guarded.detach()  # pyarrow's read-ahead threads must not move the stream while we scan it
        changed = _CHANGED.search(str(exc))
        if changed:
            raise _type_change_in_lines(stream, path, changed, rows_done, types) from exc
        overflow = _OVERFLOW.search(str(exc))
        if overflow:
            raise _overflow_in_lines(stream, path, overflow.group(1), rows_done) from exc
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


_JSON_OTHERS = "or float64 if rounding is acceptable"
_OVERFLOW = re.compile(r"Failed to convert JSON to u?int64, couldn't parse:\s*([+-]?\d+)")


def _check_first_batch(batch: pa.RecordBatch, first_block: bytes, path: str, types: dict[str, Any]) -> None:
    """A float column inferred because a whole number does not fit int64 would round it: refuse.

    Confirmed on the in-memory first block (the value must be written as an integer, not
    ``1e300``), so pyarrow's reader is never disturbed. Later blocks keep the types: a whole
    number beyond int64 in an int64 column fails to convert and is reported by its row.
    """
    huge = huge_integer(batch, types)
    if huge is None:
        return
    name, _, index = huge
    lines = [line for line in first_block.splitlines() if line.strip()]
    try:
        value = json.loads(lines[index]).get(name) if index < len(lines) else None
    except (ValueError, AttributeError):
        value = None
    if isinstance(value, float):
        return
    raise big_integer_error(path, index + 1, name, None if value is None else json.dumps(value), _JSON_OTHERS)


def _overflow_in_lines(stream: IO[bytes], path: str, text: str, rows_done: int) -> ConnectorError:
    target = int(text)
    try:
        for row, element in _lines(stream):
            if isinstance(element, dict):
                for key, value in element.items():
                    if isinstance(value, int) and not isinstance(value, bool) and value == target:
                        return big_integer_error(path, row, key, text, _JSON_OTHERS)
    except (OSError, ValueError):
        pass
    return ConnectorError(
        f"{path}, row {rows_done + 1} or a later one: the whole number {text} does not fit int64; "
        "set options.column_types: {<key>: decimal(38,0)} for its key",
        file=path,
    )
_CHANGED = re.compile(r"Column\((/[^)]*)\) changed from (\w+) to (\w+)")


def _kind(value: Any) -> str:
    """A JSON value's kind, as pyarrow's messages name them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _lookup(element: Any, pointer: str) -> Any:
    for step in pointer.strip("/").split("/"):
        element = element.get(step) if isinstance(element, dict) else None
    return element


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """``(row, object)`` of each non-blank line from the start (error path only)."""
    stream.seek(0)
    row = 0
    for line in stream:
        if not line.strip():
            continue
        row += 1
        try:
            yield row, json.loads(line)
        except ValueError:
            yield row, None


def _type_change_in_lines(
    stream: IO[bytes], path: str, changed: re.Match[str], rows_done: int, types: dict[str, Any]
) -> ConnectorError:
    """pyarrow saw a key change type: name the key and the first row holding the new type."""
    pointer, before, after = changed.group(1), changed.group(2), changed.group(3)
    key = pointer.strip("/").replace("/", ".")
    typed = key in types
    try:
        for row, element in _lines(stream):
            value = _lookup(element, pointer)
            if _kind(value) == after:
                return type_change_error(path, row, key, before, after, value, typed=typed)
    except (OSError, ValueError):
        pass
    return type_change_error(path, None, key, before, after, None, rows_done=rows_done, typed=typed)


def type_change_error(
    path: str, row: int | None, key: str, before: str, after: str, value: Any, rows_done: int = 0, typed: bool = False
) -> ConnectorError:
    where = f"at row {row}" if row is not None else f"at row {rows_done + 1} or a later one"
    shown = f" ({json.dumps(value, ensure_ascii=False, default=str)[:60]})" if value is not None else ""
    if typed:
        text = (
            f"JSON key '{key}' in {path} is read as {before} (options.column_types), but {where} it holds "
            f"a {after}{shown}; JSON values keep their own kind: make the values of '{key}' one kind in the file, "
            "or choose a type for options.column_types that fits them"
        )
    else:
        text = (
            f"JSON key '{key}' in {path} changes type {where}: {before} in the rows before, {after} here{shown}; "
            f"a column holds one type: make the values of '{key}' one kind in the file (e.g. all strings), "
            "or load the rows with different types separately"
        )
    return ConnectorError(text, file=path, row=row, key=key)


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
    types = options.arrow_column_types()
    schema = pa.schema(list(types.items())) or None
    first: pa.Schema | None = None  # the file's types, from its first batch
    rows: list[Any] = []
    row = 0

    def typed(rows: list[Any], first_row: int) -> pa.RecordBatch:
        nonlocal first
        batch = _to_batch(rows, schema, path, first_row)
        huge = huge_integer(batch, types)
        if huge is not None and isinstance(rows[huge[2]].get(huge[0]), int):  # written as 1e300: a float
            index = huge[2]
            raise big_integer_error(path, first_row + index, huge[0], json.dumps(rows[index].get(huge[0])), _JSON_OTHERS)
        if first is None:
            first = batch.schema
            return batch
        return _keep_types(batch, first, rows, path, first_row)

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
            yield typed(rows, row - len(rows) + 1)
            rows = []
    if rows:
        yield typed(rows, row - len(rows) + 1)


def _keep_types(batch: pa.RecordBatch, first: pa.Schema, rows: list[Any], path: str, first_row: int) -> pa.RecordBatch:
    """A later batch with the first batch's type for every key both have; a key that changed type
    (a string where the first rows had numbers) is an error naming its first row."""
    arrays, fields = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        target = first.field(field.name).type if field.name in first.names else None
        if target is not None and target != field.type and not pa.types.is_null(target):
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise _type_change_in_rows(rows, path, first_row, field.name, target) from None
            field = field.with_type(target)
        arrays.append(column)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _arrow_kind(kind: pa.DataType) -> str:
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_struct(kind):
        return "object"
    return "array" if pa.types.is_list(kind) or pa.types.is_large_list(kind) else str(kind)


def _type_change_in_rows(
    rows: list[Any], path: str, first_row: int, key: str, target: pa.DataType, typed: bool = False
) -> ConnectorError:
    """The first of ``rows`` whose ``key`` does not convert to ``target`` (error path only)."""
    before = str(target) if typed else _arrow_kind(target)
    for index, element in enumerate(rows):
        value = element.get(key)
        try:
            pa.array([value], type=target) if typed else pa.array([value]).cast(target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            row = first_row + index
            if not typed and _kind(value) == before:  # both numbers: 1.5 after whole numbers, say
                wider = "float64" if isinstance(value, float) else "decimal(38,0)"
                return ConnectorError(
                    f"JSON key '{key}' in {path} changes type at row {row}: {target} in the rows before, "
                    f"{json.dumps(value)} here; set options.column_types: {{{key}: {wider}}}",
                    file=path, row=row, key=key,
                )
            return type_change_error(path, row, key, before, _kind(value), value, typed=typed)
    return type_change_error(path, first_row, key, before, "another type", None, typed=typed)


def _first_change(rows: list[Any], path: str, first_row: int) -> ConnectorError | None:
    """Within one batch: the first row where a key's kind differs from its earlier rows' (error path)."""
    kinds: dict[str, str] = {}
    for index, element in enumerate(rows):
        for key, value in element.items():
            kind = _kind(value)
            if kind == "null":
                continue
            if kinds.setdefault(key, kind) != kind:
                return type_change_error(path, first_row + index, key, kinds[key], kind, value)
    return None


def _huge_in_rows(rows: list[Any], path: str, first_row: int) -> ConnectorError | None:
    for index, element in enumerate(rows):
        for key, value in element.items():
            if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
                return big_integer_error(path, first_row + index, key, str(value), _JSON_OTHERS)
    return None


def _to_batch(rows: list[dict[str, Any]], schema: pa.Schema | None, path: str, first_row: int) -> pa.RecordBatch:
    """One batch from decoded objects; typed keys get their ``column_types`` type, the others are inferred."""
    try:
        if schema:
            inferred = pa.Table.from_pylist(rows)
            fields = [schema.field(n) if n in schema.names else inferred.schema.field(n) for n in inferred.column_names]
            return pa.RecordBatch.from_pylist(rows, schema=pa.schema(fields))
        return pa.RecordBatch.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return _to_batch_by_key(rows, schema, path, first_row)  # slower, and names the key and row


def _to_batch_by_key(rows: list[dict[str, Any]], schema: pa.Schema | None, path: str, first_row: int) -> pa.RecordBatch:
    """Like ``_to_batch``, key by key, so that a failure names its key and row (error path)."""
    names = list(dict.fromkeys(key for element in rows for key in element))
    arrays, fields = [], []
    for name in names:
        target = schema.field(name).type if schema is not None and name in schema.names else None
        values = [element.get(name) for element in rows]
        try:
            array = pa.array(values, type=target)
        except OverflowError as exc:
            found = _huge_in_rows(rows, path, first_row)
            raise (found or ConnectorError(f"a number in {path}, key '{name}', is too large: {exc}", file=path)) from exc
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if target is not None:
                raise _type_change_in_rows(rows, path, first_row, name, target, typed=True) from exc
            found = _huge_in_rows(rows, path, first_row) or _first_change(rows, path, first_row)
            if found is not None:
                raise found from exc
            raise ConnectorError(
                f"malformed JSON in {path} in rows {first_row}-{first_row + len(rows) - 1}, key '{name}': {exc}",
                file=path, row=first_row, key=name,
            ) from exc
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    if not names:
        return pa.RecordBatch.from_pylist(rows)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


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
