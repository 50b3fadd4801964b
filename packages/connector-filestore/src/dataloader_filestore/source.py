"""Reading files: which files a ``path`` means, which of them are new, and one schema for all.

- A file is read as is; a glob reads every file it matches; a directory reads every file below
  it whose name fits the format (``.csv``, ``.csv.gz`` ...), skipping names that start with ``.``
  or ``_``, unless the directory is a dataset written by this connector: then exactly the parts
  its manifest lists are read (parts of an unfinished or failed run never are).
- Files are read in sorted path order, so runs are reproducible.
- The first file's schema is the schema of the run; later files are cast to it (a missing
  column becomes NULL; an extra column or a value that does not fit is an error naming the file).
- ``incremental: {strategy: modified_time}`` keeps a mark per file (size, modification time,
  ETag where the store has one) in ``state.watermarks["files"]``; a file is read again only when
  its mark changes. The marks live in the run's pending state, saved after the destination commits.
"""

from __future__ import annotations

from collections.abc import Iterator
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
        self._schema_file: str | None = None

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

        A format with ``read_schema`` (CSV) answers from its first block, without reading further;
        when it cannot, or for other formats, the first batch is read.
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

    def read_one(self, path: str, batch_size: int, *, reference: str | None = None) -> Iterator[Batch]:
        """The batches of one file of the set, conformed to ``reference``'s columns (the set's first file)."""
        if reference is not None and reference != path and self._schema is None:
            self._schema, self._schema_file = self.schema_of(reference), self.display(reference)
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
            self._schema, self._schema_file = batch.schema, shown
            return batch
        if batch.schema.equals(self._schema):
            return batch
        return conform(batch, self._schema, what=shown, reference=f"the first file ({self._schema_file})")


def conform(batch: pa.RecordBatch, schema: pa.Schema, *, what: str, reference: str) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns and types; an error names ``what`` when that is impossible."""
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
                raise ConnectorError(
                    f"{what}: column '{field.name}' is {column.type} but {reference} has it as {field.type} "
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


__all__ = ["FileReader", "conform", "file_mark", "has_magic", "WATERMARK_KEY"]
