"""The ``filestore`` connector: files as a source, a dataset directory as a destination."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
from dataloader.batch import Batch
from dataloader.connector import BaseConnector, Capabilities, Partition
from dataloader.errors import ConnectorError
from dataloader.state import State

from dataloader_filestore.capabilities import CAPABILITIES
from dataloader_filestore.config import FilestoreConfig


class FilestoreConnector(BaseConnector):
    """Reads files (csv, json, jsonl, parquet or a plugin's format); writes part files plus a manifest.

    ``capabilities`` describe the connector with its richest format, Parquet, with which every
    type family round trips. CSV and JSON keep values but not every type: their contract tests
    list the families they cannot give back, each with the reason.
    """

    capabilities: ClassVar[Capabilities] = CAPABILITIES

    def __init__(self, config: FilestoreConfig) -> None:
        super().__init__(config)
        self.config: FilestoreConfig = config
        self.fs: Any = None
        self.root: str | None = None
        self._format: Any = None
        self._writer: Any = None
        self._lock: Any = None

    # lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        from dataloader_filestore.filesystems import open_filesystem
        from dataloader_filestore.formats.registry import build_format

        self._format = build_format(self.config.format, self.config.options, getattr(self.context, "registry", None))
        self.fs, self.root = open_filesystem(self.config)

    def close(self) -> None:
        self._writer = None
        if self._lock is not None:
            self.release_lock(self._lock.recipe_name)

    def _display_prefix(self) -> str:
        """What goes before an fs path in messages and metadata: ``s3://``, ``sftp://user@host:22``."""
        import dataclasses

        from dataloader_filestore.filesystems import is_local
        from dataloader_filestore.remote import parse_location

        if is_local(self.config):
            return ""
        return dataclasses.replace(parse_location(self.config), root="").display()

    def _ensure_open(self) -> None:
        if self.fs is None:
            self.open()

    # source ------------------------------------------------------------------------------
    def read_batches(self, state: State) -> Iterator[Batch]:
        from dataloader_filestore.source import FileReader

        self._ensure_open()
        reader = FileReader(
            self.fs, self.root, self._format,
            display_prefix=self._display_prefix(),
            compression=self.config.options.get("compression"),
        )
        incremental = self.config.incremental is not None and self.config.incremental.strategy == "modified_time"
        yield from reader.read(state, batch_size=self.context.batch_size, incremental=incremental)

    def partitions(self, state: State) -> list[Partition]:
        """One partition per file, in read order (none with ``modified_time``: its file marks need one read)."""
        from dataloader_filestore.source import FileReader

        if self.config.incremental is not None and self.config.incremental.strategy == "modified_time":
            return []
        self._ensure_open()
        reader = FileReader(
            self.fs, self.root, self._format,
            display_prefix=self._display_prefix(),
            compression=self.config.options.get("compression"),
        )
        from dataloader_filestore.source import file_mark

        found = reader.list_files()
        # Every partition carries the set's unified schema, so each file is cast to the same columns.
        schema = reader.unify([info["name"] for info in found])
        spec = {} if schema is None else {"schema": _encode_schema(schema)}
        # The file's mark (size, mtime, ETag) is part of the partition: a changed file is a new
        # partition, so a resumed remote run never reuses what it staged from the old content.
        return [
            Partition(name=reader.display(info["name"]), spec={"file": info["name"], **spec, "mark": file_mark(self.fs, info)})
            for info in found
        ]

    def read_partition(self, partition: Partition, state: State) -> Iterator[Batch]:
        """One file of the set, with the set's unified columns (as ``read_batches`` gives them)."""
        from dataloader_filestore.source import FileReader

        self._ensure_open()
        reader = FileReader(
            self.fs, self.root, self._format,
            display_prefix=self._display_prefix(),
            compression=self.config.options.get("compression"),
        )
        encoded = partition.spec.get("schema")
        yield from reader.read_one(
            partition.spec["file"], self.context.batch_size,
            schema=None if encoded is None else _decode_schema(encoded), reference=partition.spec.get("reference"),
        )

    def fingerprint(self, state: State) -> dict[str, Any]:
        """The files this source would read, with size, mtime and ETag (``FileReader.fingerprint``)."""
        from dataloader_filestore.source import FileReader

        self._ensure_open()
        reader = FileReader(self.fs, self.root, self._format, display_prefix=self._display_prefix())
        incremental = self.config.incremental is not None and self.config.incremental.strategy == "modified_time"
        return reader.fingerprint(state, incremental=incremental)

    def get_schema(self) -> pa.Schema | None:
        """The unified columns of every file of the set, as reading gives them (for preflight and drift)."""
        from dataloader_filestore.source import FileReader

        if self.context.role != "source":
            return None
        self._ensure_open()
        reader = FileReader(
            self.fs, self.root, self._format,
            display_prefix=self._display_prefix(),
            compression=self.config.options.get("compression"),
        )
        return reader.unify([info["name"] for info in reader.list_files()])

    def estimate_total_records(self, state: State) -> int | None:
        """Known without reading data only for a dataset directory: its manifest counts the rows."""
        from dataloader_filestore.manifest import read_manifest
        from dataloader_filestore.source import has_magic

        if self.config.incremental is not None or self.root is None or has_magic(self.root):
            return None
        try:
            manifest = read_manifest(self.fs, self.root)
        except ConnectorError:
            return None
        if manifest is None or not all(isinstance(p.get("rows"), int) for p in manifest.parts):
            return None
        return sum(p["rows"] for p in manifest.parts)

    def test_connection(self) -> None:
        """A source's path must match files; a destination's must be a directory or not exist yet."""
        from dataloader_filestore.source import FileReader

        self._ensure_open()
        from dataloader_filestore.filesystems import is_local

        if not is_local(self.config):
            from dataloader_filestore.remote import check_remote

            check_remote(self.fs, self.config)
        if self.context.role == "source":
            FileReader(self.fs, self.root, self._format, display_prefix=self._display_prefix()).list_files()
            return
        self._refuse_a_file_as_dataset()

    def _refuse_a_file_as_dataset(self) -> None:
        from dataloader_filestore.filesystems import io_error

        try:
            is_file = self.fs.exists(self.root) and self.fs.info(self.root).get("type") != "directory"
        except Exception as exc:  # any backend's error, translated once here
            raise io_error(exc, f"cannot reach {self._display_prefix()}{self.root}: {exc}") from exc
        if is_file:
            raise ConnectorError(
                f"destination path {self._display_prefix()}{self.root} is a file; "
                "a filestore destination is a directory of part files",
                path=self.root,
            )

    # destination -------------------------------------------------------------------------
    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        from dataloader_filestore.dataset import DatasetWriter

        self._ensure_open()
        if mode not in self.capabilities.write_modes:
            raise ConnectorError(
                f"filestore does not support write mode '{mode}'; it supports: append, overwrite", mode=mode
            )
        if self._writer is not None:
            # The next checkpoint of this run: the same writer, so part numbers keep counting up.
            self._writer.begin(schema, mode)
            return
        self._writer = DatasetWriter(
            self.fs, self.root, self._format,
            format_name=self.config.format,
            compression=self.config.options.get("compression"),
            max_rows_per_file=self.config.max_rows_per_file,
            recipe_name=self.context.recipe_name,
            run_id=self.context.run_id,
            display=self._display_prefix() + self.root,
        )
        self._writer.begin(schema, mode)

    def write_batch(self, batch: Batch, state: State) -> None:
        if self._writer is None:
            self.begin(batch.schema, self.config.write_mode, state)
        self._writer.write(batch.to_arrow())

    def commit(self, state: State) -> None:
        """Publish this checkpoint's parts and the commit record in one manifest rename."""
        if self._writer is None:
            raise ConnectorError("commit without begin: nothing to publish")
        if self._lock is not None:
            self._lock.check()
        published = dict(self.context.extras.get("published") or {})
        published.setdefault("parts", self._writer.new_part_names())
        record = _commit_record(self.context.recipe_name, self.context.run_id, state, published)
        self._writer.commit(record)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()

    def acquire_lock(self, recipe_name: str, holder: Any) -> None:
        """Take the dataset's lock for ``recipe_name`` (``locks.py``) or raise LeaseHeldError at once."""
        from dataloader_filestore.filesystems import is_local
        from dataloader_filestore.locks import DatasetLock, lock_store

        self._ensure_open()
        if self._lock is not None:
            return
        self._refuse_a_file_as_dataset()
        backend = "local" if is_local(self.config) else _remote_backend(self.config)
        lock = DatasetLock(
            lock_store(self.fs, backend), self.root, self._display_prefix() + self.root, recipe_name,
            ttl_s=self.config.lock_ttl_s,
        )
        lock.acquire(holder)
        self._lock = lock

    def release_lock(self, recipe_name: str) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    #: A dataset has no DDL: the schema gate reports drift without statements to run.
    schema_ddl = False

    @property
    def schema_types(self) -> dict[str, str] | None:
        """The portable-to-Parquet mapping (``PARQUET_TYPES``); other formats keep no exact types."""
        return PARQUET_TYPES if self.config.format == "parquet" else None

    @property
    def schema_target(self) -> str:
        return f"dataset {self._display_prefix() + (self.root or self.config.path)}"

    def current_schema(self) -> pa.Schema | None:
        """The committed dataset's schema: its parts' schemas, unified along the type lattice.

        None before the first commit. Parts that disagree beyond the lattice (an ``int64`` part
        beside a ``string`` one) are refused, naming both parts.
        """
        import posixpath

        from dataloader_filestore.manifest import read_manifest
        from dataloader_filestore.source import FileReader, unify_schemas

        if self.context.role != "destination":
            return None
        self._ensure_open()
        display = self._display_prefix() + self.root
        manifest = read_manifest(self.fs, self.root, display)
        if manifest is None or not manifest.parts:
            return None
        reader = FileReader(self.fs, self.root, self._format, display_prefix=self._display_prefix(),
                            compression=self.config.options.get("compression"))
        schema, _ = unify_schemas(
            ((name, reader.schema_of(posixpath.join(self.root, name))) for name in manifest.part_names()), exact=True, what=f"the parts of {display}",
            advice="rewrite the dataset (write_mode: overwrite) or cast in the recipe",
        )
        return schema

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        from dataloader_filestore.dataset import load_committed_state

        self._ensure_open()
        return load_committed_state(self.fs, self.root, recipe_name, self._display_prefix() + self.root)


#: Portable type (``dataloader.schema.types``) -> the Arrow type a Parquet part stores it as.
PARQUET_TYPES: dict[str, str] = {
    "bool": "bool",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "float32": "float",
    "float64": "double",
    "decimal": "decimal128({p}, {s})",
    "string": "string",
    "binary": "binary",
    "date": "date32",
    "time": "time64[us]",
    "timestamp": "timestamp[us]",
    "timestamp_tz": "timestamp[us, tz=UTC]",
}


def _encode_schema(schema: pa.Schema) -> str:
    """``schema`` as text a partition spec can carry (Arrow IPC, base64)."""
    import base64

    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _decode_schema(text: str) -> pa.Schema:
    import base64

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _remote_backend(config: FilestoreConfig) -> str:
    from dataloader_filestore.remote import parse_location

    return parse_location(config).backend


def _commit_record(recipe_name: str, run_id: str, state: State, published: dict[str, Any]) -> dict[str, Any]:
    from dataloader.run.ledger import CommitRecord

    return CommitRecord.for_commit(recipe_name, run_id, state, published=published).to_dict()


__all__ = ["FilestoreConnector"]
