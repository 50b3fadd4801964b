"""The recipe keys of a ``type: bigquery`` section."""

from __future__ import annotations

import json
import re
from typing import Literal

from dataloader.config import ConfigModel, ConnectorConfig
from pydantic import Field, SecretStr, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")


class PartitionBy(ConfigModel):
    """Time partitioning of a table the destination creates (``field`` null: ingestion time)."""

    field: str | None = None
    type: Literal["HOUR", "DAY", "MONTH", "YEAR"] = "DAY"
    expiration_days: float | None = Field(default=None, gt=0)


class Staging(ConfigModel):
    """A GCS prefix the destination uploads each commit's Parquet to before the load job.

    ``uri`` is ``gs://bucket`` or ``gs://bucket/prefix``; ``api_endpoint`` points the storage
    client elsewhere (an emulator, a private endpoint). The credentials are the destination's.
    """

    uri: str
    api_endpoint: str | None = None

    @field_validator("uri")
    @classmethod
    def _gs_uri(cls, value: str) -> str:
        value = value.strip()
        bucket = value.removeprefix("gs://").split("/", 1)[0]
        if not value.startswith("gs://") or not _BUCKET.match(bucket):
            raise ValueError(f"staging uri {value!r} must be gs://bucket or gs://bucket/prefix")
        return value.rstrip("/")

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("gs://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.uri.removeprefix("gs://").partition("/")[2]
        return f"{rest}/" if rest else ""


class BigQueryConfig(ConnectorConfig):
    """Connection plus what to read or write.

    Connection: ``project`` (the billing project and the default project of names), ``dataset``,
    ``location``. Credentials, first match wins: ``anonymous: true`` (none: for emulators),
    ``credentials_json`` (a service-account key as inline JSON, masked everywhere),
    ``service_account_file`` (a key file), else application default credentials. ``api_endpoint``
    (REST) and ``storage_api_endpoint`` (the Storage Read API's gRPC ``host:port``) point the
    clients elsewhere, e.g. at an emulator or a private endpoint.

    ``table`` is ``name`` (in ``dataset``), ``dataset.name`` or ``project.dataset.name``. A source
    takes ``table`` or ``query``; a destination takes ``table``.
    """

    project: str | None = None
    dataset: str | None = None
    location: str | None = None
    service_account_file: str | None = None
    credentials_json: SecretStr | None = None
    anonymous: bool = False
    api_endpoint: str | None = None
    storage_api_endpoint: str | None = None

    table: str | None = None
    query: str | None = None
    #: ``storage``: the Storage Read API (Arrow streams; falls back to REST when the API is not
    #: available to the credentials); ``rest``: pages of the REST API only.
    read_api: Literal["storage", "rest"] = "storage"

    #: Tables the destination creates: time partitioning and up to four clustering columns.
    partition_by: PartitionBy | None = None
    cluster_by: list[str] = Field(default_factory=list, max_length=4)
    #: Create ``dataset`` (in ``location``) when it does not exist.
    create_dataset: bool = True
    #: Upload each commit's Parquet to this GCS prefix and load it with ``load_table_from_uri``
    #: (``gs://bucket/prefix``, or ``{uri: ..., api_endpoint: ...}``); unset: a direct upload.
    staging: Staging | None = None

    #: Seconds one HTTP request / gRPC call may take.
    timeout_s: float = Field(default=60.0, gt=0)
    #: Seconds a call is retried for on rate limits, 5xx and backend errors (the library's own
    #: default is 10 minutes).
    retry_deadline_s: float = Field(default=120.0, gt=0)
    #: Seconds to wait for a load or query job to finish.
    job_timeout_s: float = Field(default=900.0, gt=0)

    @field_validator("staging", mode="before")
    @classmethod
    def _staging_string(cls, value: object) -> object:
        return {"uri": value} if isinstance(value, str) else value

    @field_validator("query")
    @classmethod
    def _query_without_terminator(cls, value: str | None) -> str | None:
        """The query is wrapped in a sub-select, where a trailing semicolon is a syntax error."""
        if value is None:
            return None
        value = value.strip().rstrip(";").rstrip()
        if not value:
            raise ValueError("query is empty")
        return value

    @model_validator(mode="after")
    def _check(self) -> BigQueryConfig:
        self._check_credentials()
        if self.table and self.query:
            raise ValueError("give either `table` or `query`, not both")
        if not self.table and not self.query:
            raise ValueError("needs `table` (dataset.table) or, for a source, `query`")
        if self.table:
            parts = self.table.split(".")
            if len(parts) > 3 or not all(_NAME.match(p) for p in parts):
                raise ValueError(f"table {self.table!r} must be name, dataset.name or project.dataset.name")
            if len(parts) == 1 and not self.dataset:
                raise ValueError(f"table {self.table!r} has no dataset: set `dataset` or write dataset.{self.table}")
        if self.incremental is not None and self.incremental.strategy != "cursor":
            raise ValueError(f"bigquery supports incremental strategy 'cursor' only, not '{self.incremental.strategy}'")
        if self.incremental is not None and not self.incremental.cursor_column:
            raise ValueError("incremental strategy cursor needs `cursor_column`")
        return self

    def _check_credentials(self) -> None:
        """Checked on the model, not the field: a field's error would quote the (secret) input."""
        if self.credentials_json is None:
            return
        text = self.credentials_json.get_secret_value()
        if not text.strip():
            self.credentials_json = None
            return
        try:
            info = json.loads(text)
        except ValueError:
            raise ValueError("credentials_json is not valid JSON (paste the whole service-account key file)") from None
        if not isinstance(info, dict) or "type" not in info:
            raise ValueError("credentials_json must be a service-account key: a JSON object with a 'type' key")

    def table_parts(self, default_project: str) -> tuple[str, str, str]:
        """``(project, dataset, table)`` of ``table``."""
        assert self.table is not None
        parts = self.table.split(".")
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        if len(parts) == 2:
            return default_project, parts[0], parts[1]
        assert self.dataset is not None
        return default_project, self.dataset, parts[0]

    def describe_target(self) -> str:
        return f"table {self.table}" if self.table else "query"


__all__ = ["BigQueryConfig", "PartitionBy", "Staging"]
