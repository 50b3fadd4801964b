"""Reading files: which files a ``path`` means, which of them are new, and one schema for all.

- A file is read as is; a glob reads every file it matches; a directory reads every file below
  it whose name fits the format (``.csv``, ``.csv.gz`` ...), skipping names that start with ``.``
  or ``_``, unless the directory is a dataset written by this connector: then exactly the parts
  its manifest lists are read (parts of an unfinished or failed run never are).
- Files are read in sorted path order, so runs are reproducible.
- The schema of the run is every file's schema unified (``unify_schemas``), read before any row:
  Parquet footers, a CSV file's first block, a JSON file's first batch. Its columns are every
  file's columns in first-seen order; a column's type is the lattice join of the files' types
  (``dataloader.schema.types.widen``: an ``int32`` file and an ``int64`` file make ``int64``).
  Each batch is cast to it by Arrow; a column a file lacks is NULL for that file's rows. Files
  with exact types (Parquet) that disagree beyond the lattice are refused before anything is
  read, naming the column, both files and their types; in a text format a type is only the
  guess of the first rows, so such a column becomes ``float64`` (numbers of two kinds) or
  ``string`` (the text itself); ``options.column_types`` pins the type.
- ``incremental: {strategy: modified_time}`` keeps a mark per file (size, modification time,
  ETag where the store has one) in ``state.watermarks["files"]``; a file is read again only when
  its mark changes. The marks live in the run's pending state, saved after the destination commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import pyarrow as pa
from dataloader.batch import Batch
from dataloader.errors import ConnectorError, DataLoaderError
from dataloader.state import State

from dataloader_filestore.compression import detect, open_reader, strip_suffix
from dataloader_filestore.filesystems import io_error
from dataloader_filestore.manifest import MANIFEST_NAME, read_manifest

WATERMARK_KEY = "files"
#: A fingerprint lists its files up to this many (beyond, only their count and digest).
FINGERPRINT_LIST_LIMIT = 100
_GLOB_CHARS = set("*?[")


def has_magic(path: str) -> bool:
    return any(char in path for char in _GLOB_CHARS)


class FileReader:
    """Lists and reads the files of one source ``path``."""

    def __init__(self, fs: Any, root: str, fmt: Any, *, display_prefix: str = "", compression: str | None = None) -> None:
        self.fs = fs
        self.root = root
        self.fmt = fmt
        self.display_prefix = display_prefix
        self.compression = compression
        self._schema: pa.Schema | None = None
        #: column -> the file its unified type comes from (for messages).
        self._origins: dict[str, str] = {}

    def display(self, path: str) -> str:
        return f"{self.display_prefix}{path}"

    # listing -----------------------------------------------------------------------------
    def list_files(self) -> list[dict[str, Any]]:
        """``fs.info``-style dicts of the files to read, sorted by path."""
        if has_magic(self.root):
            found = self.fs.glob(self.root, detail=True)
            files = [info for info in found.values() if info.get("type") == "file"]
            if not files:
                raise ConnectorError(f"no files match {self.display(self.root)}", path=self.display(self.root))
            return sorted(files, key=lambda info: info["name"])
        try:
            info = self.fs.info(self.root)
        except FileNotFoundError as exc:
            raise ConnectorError(
                f"path not found: {self.display(self.root)}; check the recipe's source.path", path=self.display(self.root)
            ) from exc
        if info.get("type") != "directory":
            return [info]
        return self._directory_files()

    def _directory_files(self) -> list[dict[str, Any]]:
        manifest = read_manifest(self.fs, self.root)
        if manifest is not None:
            return [self._part_info(name) for name in manifest.part_names()]
        base = self.root.rstrip("/")
        found = self.fs.glob(f"{base}/**", detail=True)
        files = []
        for path, info in found.items():
            relative = path[len(base) :].lstrip("/")
            if info.get("type") != "file" or any(part[:1] in (".", "_") for part in relative.split("/")):
                continue
            if strip_suffix(path).lower().endswith(tuple(self.fmt.extensions)):
                files.append(info)
        return sorted(files, key=lambda info: info["name"])

    def _part_info(self, name: str) -> dict[str, Any]:
        path = f"{self.root.rstrip('/')}/{name}"
        try:
            return self.fs.info(path)
        except FileNotFoundError as exc:
            raise ConnectorError(
                f"{self.display(path)} is listed in {MANIFEST_NAME} but missing; the dataset was changed by hand",
                file=self.display(path),
            ) from exc

    # reading -----------------------------------------------------------------------------
    def read(self, state: State, *, batch_size: int, incremental: bool) -> Iterator[Batch]:
        files = self.list_files()
        previous = (state.watermarks.get(WATERMARK_KEY) or {}) if incremental else {}
        marks: dict[str, Any] = {}
        if incremental:
            state.watermarks[WATERMARK_KEY] = marks
        self.unify([info["name"] for info in files])
        for info in files:
            path = info["name"]
            mark = file_mark(self.fs, info)
            if incremental and previous.get(path) == mark:
                marks[path] = mark
                continue
            yield from self._read_file(path, batch_size)
            if incremental:
                marks[path] = mark

    def fingerprint(self, state: State, *, incremental: bool) -> dict[str, Any]:
        """What identifies the input this source would read now, for a resumed run to compare.

        One entry per file that ``read`` would read (with ``incremental``, only the new or changed
        ones), in read order: its path, size, modification time and ETag where the store has one
        (S3). ``digest`` covers every entry; the entries themselves are listed up to
        ``FINGERPRINT_LIST_LIMIT`` files, so the fingerprint stays small for any number of files.
        """
        import hashlib
        import json

        previous = (state.watermarks.get(WATERMARK_KEY) or {}) if incremental else {}
        entries = []
        for info in self.list_files():
            mark = file_mark(self.fs, info)
            if incremental and previous.get(info["name"]) == mark:
                continue
            entries.append({"path": info["name"], **mark})
        digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest()
        result: dict[str, Any] = {"files": len(entries), "digest": digest}
        if len(entries) <= FINGERPRINT_LIST_LIMIT:
            result["entries"] = entries
        return result

    def schema_of(self, path: str) -> pa.Schema | None:
        """The columns of ``path`` as its first batch has them.

        A format with ``read_schema`` (Parquet: the footer; CSV: the first block) answers without
        reading further; when it cannot, or for other formats, the first batch is read.
        """
        read_schema = getattr(self.fmt, "read_schema", None)
        if read_schema is not None:
            try:
                with self._open(path) as stream:
                    schema = read_schema(stream, path=self.display(path))
            except Exception:  # the batch read below reports it properly, naming the file
                schema = None
            if schema is not None:
                return schema
        first = next(iter(self._read_file(path, 1000)), None)
        return None if first is None else first.schema

    def unify(self, paths: list[str]) -> pa.Schema | None:
        """The unified schema of ``paths`` (``unify_schemas``), which every batch read later is cast to.

        One file's schema at a time: only footers or first blocks are read, never a whole file.
        """
        self._schema, self._origins = None, {}  # _read_file (schema_of's fallback) must not conform yet
        found = ((self.display(path), self.schema_of(path)) for path in paths)
        schema, origins = unify_schemas(
            found, exact=getattr(self.fmt, "exact_types", False), what=f"the files of {self.display(self.root)}",
            advice="rewrite one of them with the other's type, or read them with separate recipes (one path or glob each)",
        )
        self._schema, self._origins = schema, origins
        return schema

    def read_one(self, path: str, batch_size: int, *, schema: pa.Schema | None = None, reference: str | None = None) -> Iterator[Batch]:
        """The batches of one file of the set, cast to ``schema`` (the set's unified schema).

        ``reference`` (the set's first file) is the schema of a partition planned before the set's
        schemas were unified, which a resumed run may still hold.
        """
        if schema is not None:
            self._schema = schema
        elif reference is not None and reference != path and self._schema is None:
            self._schema = self.schema_of(reference)
            self._origins = dict.fromkeys(self._schema.names if self._schema else [], self.display(reference))
        yield from self._read_file(path, batch_size)

    def _read_file(self, path: str, batch_size: int) -> Iterator[Batch]:
        shown = self.display(path)
        metadata = {"file": shown}
        try:
            with self._open(path) as stream:
                for record_batch in self.fmt.read(stream, path=shown, batch_size=batch_size):
                    yield Batch(self._unify(record_batch, shown), metadata)
        except DataLoaderError:
            raise
        except FileNotFoundError as exc:
            raise ConnectorError(f"file not found: {shown} (was it removed while reading?)", file=shown) from exc
        except PermissionError as exc:
            raise ConnectorError(f"permission denied reading {shown}", file=shown) from exc
        except Exception as exc:  # decompression and I/O errors of any backend, translated once here
            raise io_error(exc, f"cannot read {shown}: {type(exc).__name__}: {exc}", file=shown) from exc

    @contextmanager
    def _open(self, path: str) -> Iterator[IO[bytes]]:
        """``path`` opened for reading, decompressed when its name or the options say so."""
        codec = detect(path, self.compression) if getattr(self.fmt, "compressible", True) else None
        with self.fs.open(path, "rb") as raw:
            stream = open_reader(raw, codec)
            try:
                yield stream
            finally:
                if stream is not raw:
                    stream.close()

    def _unify(self, batch: pa.RecordBatch, shown: str) -> pa.RecordBatch:
        if self._schema is None:
            return batch
        if batch.schema.equals(self._schema):
            return batch
        return conform(batch, self._schema, what=shown, reference="the file set", origins=self._origins)


def unify_schemas(
    schemas: Iterable[tuple[str, pa.Schema | None]], *, exact: bool, what: str, advice: str
) -> tuple[pa.Schema | None, dict[str, str]]:
    """One schema for ``(name, schema)`` pairs, and for each column the name its type comes from.

    Columns in first-seen order; a column some schemas lack is nullable. Two types join along the
    lattice (``dataloader.schema.types.widen``), keeping an Arrow type one side already has (an
    ``int32`` and an ``int64`` give that ``int64``). Types beyond the lattice are a ConnectorError
    naming the column, both names and both types, then ``advice``, when ``exact``; otherwise (types
    guessed from text) the column becomes what a reader of all the text would guess: ``float64``
    for numbers of two kinds, else ``string`` (the text itself). None when no schema is known.
    """
    from dataloader.schema import types as ptypes

    fields: dict[str, pa.Field] = {}
    origins: dict[str, str] = {}
    seen_in: dict[str, int] = {}
    count = 0
    for name, schema in schemas:
        if schema is None:
            continue
        count += 1
        for field in schema:
            seen_in[field.name] = seen_in.get(field.name, 0) + 1
            if field.name not in fields:
                fields[field.name], origins[field.name] = field, name
                continue
            seen = fields[field.name]
            if seen.type == field.type:
                continue
            old, new = ptypes.from_arrow(seen.type), ptypes.from_arrow(field.type)
            joined = ptypes.widen(old, new)
            if joined is None:
                if exact:
                    raise ConnectorError(
                        f"{what} disagree on column {field.name!r}: {old} in {origins[field.name]}, "
                        f"{new} in {name}; {advice}",
                        column=field.name, files=[origins[field.name], name], types=[old, new],
                    )
                fields[field.name] = pa.field(field.name, _text_join(seen.type, field.type))
                continue
            if joined == new:
                fields[field.name], origins[field.name] = pa.field(field.name, field.type), name
            elif joined != old:
                fields[field.name] = pa.field(field.name, ptypes.to_arrow(joined))
    if not count:
        return None, {}
    return pa.schema([f.with_nullable(True) if seen_in[n] < count else f for n, f in fields.items()]), origins


def _text_join(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type two guesses from text that the lattice cannot join share: a number, or the text."""
    numeric = all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in (a, b))
    return pa.float64() if numeric else pa.string()


def conform(
    batch: pa.RecordBatch, schema: pa.Schema, *, what: str, reference: str, origins: dict[str, str] | None = None
) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns and types; an error names ``what`` when that is impossible.

    ``origins`` names, per column, where ``schema`` got its type (else ``reference``).
    """
    extra = [name for name in batch.schema.names if name not in schema.names]
    if extra:
        raise ConnectorError(
            f"{what} has column(s) {', '.join(extra)} that {reference} does not have; "
            f"load files with different columns in separate recipes",
            file=what,
            columns=extra,
        )
    arrays = []
    for field in schema:
        if field.name not in batch.schema.names:
            arrays.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                source = (origins or {}).get(field.name) or reference
                raise ConnectorError(
                    f"{what}: column '{field.name}' is {column.type} but {source} has it as {field.type} "
                    f"and the values do not convert ({exc}); set options.column_types",
                    file=what,
                    column=field.name,
                ) from exc
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def file_mark(fs: Any, info: dict[str, Any]) -> dict[str, Any]:
    """What identifies one version of a file; the remote package knows every backend's spelling."""
    from dataloader_filestore.remote import file_marker

    return file_marker(fs, info)


__all__ = ["FileReader", "conform", "file_mark", "has_magic", "unify_schemas", "WATERMARK_KEY"]
