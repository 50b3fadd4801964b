"""One commit of a BigQuery destination: Parquet → load job → staging table → one transaction.

``begin`` opens a local Parquet file; ``write`` appends each batch to it (with ``_dataloader_seq``,
the row's position in the run, so that the last row per merge key wins); ``publish`` loads the
file into a staging table created with an explicit schema (a resumable upload of the file, or,
with ``staging``, an upload to a run- and commit-unique GCS prefix and ``load_table_from_uri``;
the objects are deleted afterwards, best effort), then runs one multi-statement
transaction that appends / replaces / merges into the target **and** writes the commit record,
and finally drops the staging table. Nothing is visible in the target before that transaction
commits; if it fails, BigQuery rolls all of it back.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from dataloader.errors import ConnectorError
from dataloader.run.ledger import CommitRecord, CommitRecordTable

from dataloader_bigquery import types
from dataloader_bigquery.client import Clients

SEQ = "_dataloader_seq"
STAGE_PREFIX = "_dataloader_stage_"
#: Staging tables expire by themselves if a crashed run never dropped them.
STAGE_EXPIRY = dt.timedelta(days=1)


def quote(*parts: str) -> str:
    return ".".join("`" + p.replace("\\", "\\\\").replace("`", "\\`") + "`" for p in parts)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)[:120]


class StagedWrite:
    """The rows of one commit, from ``begin`` to ``publish`` (or ``discard``)."""

    def __init__(self, clients: Clients, table: tuple[str, str, str], mode: str, merge_keys: list[str], number: int) -> None:
        self.clients = clients
        self.project, self.dataset, self.table = table
        self.mode = mode
        self.merge_keys = merge_keys
        self.number = number
        self.rows = 0
        self.schema: Any = None  # the load schema (Arrow), None until the first batch or begin's schema
        self._dir = tempfile.TemporaryDirectory(prefix="dataloader-bigquery-")
        self._path = Path(self._dir.name) / "rows.parquet"
        self._writer: Any = None

    @property
    def label(self) -> str:
        return f"{self.dataset}.{self.table}"

    # -- rows --------------------------------------------------------------------------------
    def begin(self, schema: Any) -> None:
        if schema is not None:
            self._open(schema)

    def _open(self, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for name in self.merge_keys:
            if name not in schema.names:
                raise ConnectorError(f"merge key {name!r} is not a column of the rows ({', '.join(schema.names)})")
        if SEQ in schema.names:
            raise ConnectorError(f"column name {SEQ!r} is reserved by the bigquery destination")
        types.schema_fields(schema)  # refuse an unmappable column before any upload
        self.schema = types.load_schema(schema)
        self._writer = pq.ParquetWriter(self._path, self.schema.append(pa.field(SEQ, pa.int64())))

    def write(self, batch: Any) -> None:
        import pyarrow as pa

        if self._writer is None:
            self._open(batch.schema)
        columns = [batch.column(name).cast(field.type) for name, field in zip(self.schema.names, self.schema, strict=True)]
        seq = pa.array(range(self.rows, self.rows + batch.num_rows), pa.int64())
        self._writer.write_batch(pa.RecordBatch.from_arrays([*columns, seq], schema=self._writer.schema))
        self.rows += batch.num_rows

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._dir.cleanup()

    # -- publishing ----------------------------------------------------------------------------
    def publish(self, record: CommitRecord, create: dict[str, Any]) -> None:
        """Load, then commit rows and record in one transaction; drop the staging table."""
        state_table = CommitRecordTable(quote(self.project, self.dataset, CommitRecordTable.TABLE), paramstyle="at", text_type="STRING")
        self.clients.run_query(state_table.create_sql(), {}, doing="creating the commit-record table")
        statements: list[tuple[str, dict[str, Any]]] = []
        stage = None
        try:
            if self.schema is not None:
                self._writer.close()
                self._writer = None
                fields = types.schema_fields(self.schema)
                self.clients.ensure_table((self.project, self.dataset, self.table), fields, **create)
                # Named before it is created: a failed load still drops it below.
                stage = (self.project, self.dataset, f"{STAGE_PREFIX}{safe_name(self.table)}_{uuid.uuid4().hex[:12]}")
                self._load_stage(stage, fields, record.run_id)
                statements = self._publish_statements(stage)
            statements += state_table.write_statements(record)
            self.clients.run_script(statements, job_prefix=f"dataloader_commit_{safe_name(record.run_id)}_{self.number}")
        finally:
            if stage is not None:
                self.clients.drop_table(stage)
            self.discard()

    def _load_stage(self, stage: tuple[str, str, str], fields: list[Any], run_id: str) -> None:
        from google.cloud.bigquery import SchemaField

        stage_fields = [*fields, SchemaField(SEQ, "INT64")]
        self.clients.create_stage(stage, stage_fields, expires=dt.datetime.now(dt.timezone.utc) + STAGE_EXPIRY)
        staging = self.clients.config.staging
        if staging is None:
            self.clients.load_parquet(self._path, stage, stage_fields)
            return
        names = [f"{self.object_prefix(staging.prefix, run_id)}part-00000.parquet"]
        try:
            uris = [self.clients.upload(self._path, names[0])]
            self.clients.load_uris(uris, stage, stage_fields)
        finally:
            self.clients.delete_objects(names)

    def object_prefix(self, prefix: str, run_id: str) -> str:
        """``<prefix><run>/<table>/<commit>-<random>/``: unique per run and commit."""
        return f"{prefix}{safe_name(run_id)}/{safe_name(self.label)}/{self.number:06d}-{uuid.uuid4().hex[:12]}/"

    def _publish_statements(self, stage: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        target = quote(self.project, self.dataset, self.table)
        source = quote(*stage)
        names = [quote(n) for n in self.schema.names]
        column_list = ", ".join(names)
        if self.mode == "merge":
            return [(merge_sql(target, source, self.schema.names, self.merge_keys), {})]
        statements: list[tuple[str, dict[str, Any]]] = []
        if self.mode == "overwrite":
            statements.append((f"DELETE FROM {target} WHERE TRUE", {}))
        statements.append((f"INSERT INTO {target} ({column_list}) SELECT {column_list} FROM {source}", {}))
        return statements


def merge_sql(target: str, source: str, columns: list[str], keys: list[str]) -> str:
    """``MERGE`` of the staged rows, the last row per key (highest ``_dataloader_seq``) winning."""
    q = [quote(c) for c in columns]
    partition = ", ".join(quote(k) for k in keys)
    latest = (
        f"SELECT {', '.join(q)} FROM {source} "
        f"WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {quote(SEQ)} DESC) = 1"
    )
    on = " AND ".join(f"T.{quote(k)} = S.{quote(k)}" for k in keys)
    updates = ", ".join(f"{c} = S.{c}" for c, name in zip(q, columns, strict=True) if name not in keys)
    matched = f" WHEN MATCHED THEN UPDATE SET {updates}" if updates else ""
    return (
        f"MERGE {target} T USING ({latest}) S ON {on}{matched} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(q)}) VALUES ({', '.join('S.' + c for c in q)})"
    )


__all__ = ["StagedWrite", "merge_sql", "quote"]
