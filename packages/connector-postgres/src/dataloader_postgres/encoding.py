"""Vectorised conversions between COPY's text forms and Arrow arrays.

Everything here works on whole columns with pyarrow.compute and numpy; nothing loops over rows.

- ``bytea`` travels as ``\\x`` followed by hex digits (``bytea_output = hex``).
- Arrays are read as JSON text (``array_to_json``) and parsed by Arrow's JSON reader; they are
  written as PostgreSQL array literals (``{1,NULL,"a \\"b\\""}``).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json
from dataloader._lazy import compute as pc

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_PAIRS = np.stack([_HEX_DIGITS[np.arange(256) >> 4], _HEX_DIGITS[np.arange(256) & 15]], axis=1)
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16)
_NIBBLE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)


def _normalised(array: pa.Array) -> pa.Array:
    """``array`` with offset 0, so its buffers line up with its values."""
    return pa.concat_arrays([array]) if array.offset else array


def _offsets_and_data(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[: len(array) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def bytea_from_hex(text: pa.Array) -> pa.Array:
    """``\\x0a1b`` strings -> binary values. Raises ``ValueError`` on anything else."""
    text = _normalised(text.cast(pa.string()))
    if len(text) == 0:
        return pa.array([], pa.binary())
    offsets, data = _offsets_and_data(text)
    valid = np.ones(len(text), dtype=bool) if text.null_count == 0 else text.is_valid().to_numpy(zero_copy_only=False)
    starts, ends = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    lengths = ends - starts
    if np.any(valid & ((lengths < 2) | (lengths % 2 == 1))):
        raise ValueError("bytea value not in hex format")
    data = data[offsets[0] : offsets[-1]]
    keep = np.repeat(valid, lengths)  # the bytes of non-null values (a null's text is ignored)
    prefixed = starts[valid] - offsets[0]
    if np.any(data[prefixed] != ord("\\")) or np.any(data[prefixed + 1] != ord("x")):
        raise ValueError("bytea value not in hex format")
    keep[prefixed] = False
    keep[prefixed + 1] = False
    nibbles = _NIBBLE[data[keep]]
    if nibbles.size and nibbles.max() == 255:
        raise ValueError("bytea value has a non-hex digit")
    raw = (nibbles[0::2] << 4) | nibbles[1::2]
    out_lengths = np.where(valid, (lengths - 2) // 2, 0)
    out_offsets = np.zeros(len(text) + 1, dtype=np.int32)
    np.cumsum(out_lengths, out=out_offsets[1:])
    validity = text.buffers()[0] if text.null_count else None
    return pa.Array.from_buffers(
        pa.binary(), len(text), [validity, pa.py_buffer(out_offsets), pa.py_buffer(raw.tobytes())], text.null_count
    )


def hex_from_bytea(binary: pa.Array) -> pa.Array:
    """Binary values -> ``\\x``-prefixed hex strings that COPY reads into ``bytea``."""
    binary = _normalised(binary.cast(pa.binary()))
    if len(binary) == 0:
        return pa.array([], pa.string())
    offsets, data = _offsets_and_data(binary)
    first, last = int(offsets[0]), int(offsets[-1])
    hexed = _HEX_PAIRS[data[first:last]].reshape(-1)
    out_offsets = 2 * (offsets.astype(np.int64) - first) + 2 * np.arange(len(binary) + 1, dtype=np.int64)
    total = int(out_offsets[-1])
    out = np.empty(total, dtype=np.uint8)
    prefix_at = out_offsets[:-1]
    out[prefix_at] = ord("\\")
    out[prefix_at + 1] = ord("x")
    mask = np.ones(total, dtype=bool)
    mask[prefix_at] = False
    mask[prefix_at + 1] = False
    out[mask] = hexed
    validity = binary.buffers()[0] if binary.null_count else None
    if total >= 2**31:
        return pa.Array.from_buffers(
            pa.large_string(), len(binary), [validity, pa.py_buffer(out_offsets), pa.py_buffer(out)], binary.null_count
        )
    return pa.Array.from_buffers(
        pa.string(),
        len(binary),
        [validity, pa.py_buffer(out_offsets.astype(np.int32)), pa.py_buffer(out)],
        binary.null_count,
    )


def lists_from_json(text: pa.Array, list_type: pa.DataType) -> pa.Array:
    """JSON array texts (``array_to_json`` output) -> an Arrow list column of ``list_type``."""
    if len(text) == 0:
        return pa.array([], list_type)
    wrapped = pc.binary_join_element_wise('{"v":', pc.fill_null(text, "null"), "}\n", "")
    wrapped = _normalised(wrapped)
    offsets, data = _offsets_and_data(wrapped)
    payload = data[offsets[0] : offsets[-1]].tobytes()
    table = pa_json.read_json(
        io.BytesIO(payload),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(payload) + 1, 1 << 16)),
        parse_options=pa_json.ParseOptions(
            explicit_schema=pa.schema([pa.field("v", list_type)]), unexpected_field_behavior="error"
        ),
    )
    column = table.column("v")
    if len(column) != len(text):
        raise ValueError("array column did not parse to one value per row")
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _quote_elements(values: pa.Array) -> pa.Array:
    """Array-literal elements: strings double-quoted with ``\\`` and ``"`` escaped; NULL bare."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
        quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    elif pa.types.is_boolean(t):
        quoted = pc.if_else(values, "t", "f")
    else:
        quoted = pc.binary_join_element_wise('"', values.cast(pa.string()), '"', "")
    return pc.fill_null(quoted.cast(pa.string()), "NULL")


def array_literals(lists: pa.Array) -> pa.Array:
    """An Arrow list column -> PostgreSQL array literals (one level; nested lists are refused)."""
    lists = _normalised(lists)
    if pa.types.is_fixed_size_list(lists.type) or pa.types.is_large_list(lists.type):
        lists = lists.cast(pa.list_(lists.type.value_type))
    values = lists.values
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    elements = _quote_elements(values)
    rebuilt = pa.ListArray.from_arrays(lists.offsets, elements, mask=lists.is_null() if lists.null_count else None)
    joined = pc.binary_join(rebuilt, ",")
    return pc.binary_join_element_wise("{", joined, "}", "")
