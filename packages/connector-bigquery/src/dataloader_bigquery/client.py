"""The client libraries, built once per connector, and the one place their errors are translated.

``google-cloud-bigquery`` (REST) and ``google-cloud-bigquery-storage`` (gRPC) load here, lazily.
Every call the connector makes goes through :class:`Clients` with a bounded retry (rate limits,
5xx, ``backendError``; ``retry_deadline_s``) and a per-request timeout (``timeout_s``): the
library's defaults retry for up to ten minutes. Errors leave as
:class:`~dataloader.errors.ConnectorError`, or
:class:`~dataloader.errors.TransientConnectorError` when retrying the operation may succeed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from dataloader.errors import ConnectorError, DataLoaderError, TransientConnectorError
from dataloader.install import install_hint

from dataloader_bigquery.config import BigQueryConfig

INSTALL_HINT = install_hint("bigquery")
log = logging.getLogger("dataloader.bigquery")
#: Error reasons (BigQuery's ``errors[].reason``) worth retrying.
TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "jobRateLimitExceeded", "quotaExceeded", "jobBackendError"}
)
#: HTTP statuses worth retrying.
TRANSIENT_CODES = frozenset({408, 429, 500, 502, 503, 504})


def bigquery_module() -> Any:
    try:
        from google.cloud import bigquery
    except ImportError as exc:
        raise ConnectorError(
            f"the bigquery connector needs google-cloud-bigquery, which is not installed: {INSTALL_HINT}"
        ) from exc
    return bigquery


def credentials_for(config: BigQueryConfig) -> Any:
    """Credentials from the recipe, or None for application default credentials."""
    if config.anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    from google.oauth2 import service_account

    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    if config.credentials_json is not None:
        info = json.loads(config.credentials_json.get_secret_value())
        try:
            return service_account.Credentials.from_service_account_info(info, scopes=scopes)
        except (ValueError, KeyError) as exc:
            # The library's message may quote the key; never pass it on.
            raise ConnectorError(
                "credentials_json is not a usable service-account key (missing or malformed "
                f"{type(exc).__name__}); paste the whole key file downloaded from the console"
            ) from None
    if config.service_account_file:
        try:
            return service_account.Credentials.from_service_account_file(config.service_account_file, scopes=scopes)
        except FileNotFoundError:
            raise ConnectorError(
                f"service_account_file {config.service_account_file!r} does not exist", key="service_account_file"
            ) from None
        except (ValueError, KeyError) as exc:
            raise ConnectorError(
                f"service_account_file {config.service_account_file!r} is not a service-account key "
                f"({type(exc).__name__})",
                key="service_account_file",
            ) from None
    return None


class Clients:
    """The REST client, the Storage Read client (made on first use) and the call options."""

    def __init__(self, config: BigQueryConfig) -> None:
        self.config = config
        bigquery = bigquery_module()
        self.bigquery = bigquery
        self.retry = bigquery.DEFAULT_RETRY.with_deadline(config.retry_deadline_s)
        self.timeout = config.timeout_s
        with translating(config, "connecting"):
            credentials = credentials_for(config)
            options = {"api_endpoint": config.api_endpoint} if config.api_endpoint else None
            self.rest = bigquery.Client(
                project=config.project,
                credentials=credentials,
                location=config.location,
                client_options=options,
            )
        self.project: str = self.rest.project
        self._credentials = credentials
        self._read: Any = None
        self._storage: Any = None

    def where(self) -> str:
        endpoint = f" at {self.config.api_endpoint}" if self.config.api_endpoint else ""
        return f"bigquery (project {self.project}{endpoint})"

    def read_client(self) -> Any:
        """The Storage Read API client (gRPC); on ``storage_api_endpoint`` when set."""
        if self._read is None:
            try:
                from google.cloud import bigquery_storage_v1
            except ImportError as exc:
                raise ConnectorError(
                    f"the Storage Read API needs google-cloud-bigquery-storage: {INSTALL_HINT}, or set read_api: rest"
                ) from exc
            self._read = self._make_read_client(bigquery_storage_v1)
        return self._read

    def _make_read_client(self, bigquery_storage_v1: Any) -> Any:
        endpoint = self.config.storage_api_endpoint
        if endpoint and self.config.anonymous:
            # An emulator speaks plain-text gRPC and sends large messages; the public endpoint is
            # never contacted.
            import grpc
            from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

            channel = grpc.insecure_channel(
                endpoint, options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
            )
            return bigquery_storage_v1.BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
        options = {"api_endpoint": endpoint} if endpoint else None
        return bigquery_storage_v1.BigQueryReadClient(credentials=self.rest._credentials, client_options=options)

    # -- calls (each bounded, each translated) -----------------------------------------------
    def _ref(self, table: tuple[str, str, str]) -> str:
        return ".".join(table)

    def parameters(self, params: dict[str, Any]) -> list[Any]:
        return [query_parameter(self.bigquery, name, value) for name, value in params.items()]

    def _wait(self, job: Any, doing: str) -> Any:
        with translating(self.config, doing, self.where()):
            return job.result(timeout=self.config.job_timeout_s, retry=self.retry)

    def submit_query(self, sql: str, params: dict[str, Any], *, doing: str, job_id: str | None = None) -> Any:
        """Start a query job. With ``job_id``, a retried submission finds the first one (409)."""
        from google.api_core import exceptions as api

        config = self.bigquery.QueryJobConfig(query_parameters=self.parameters(params))
        with translating(self.config, doing, self.where()):
            try:
                return self.rest.query(
                    sql, job_config=config, job_id=job_id, retry=self.retry, timeout=self.timeout, job_retry=None
                )
            except api.Conflict:
                if job_id is None:
                    raise
                return self.rest.get_job(job_id, retry=self.retry, timeout=self.timeout)

    def run_query(self, sql: str, params: dict[str, Any], *, doing: str) -> Any:
        """Run a query to the end; its row iterator."""
        job = self.submit_query(sql, params, doing=doing)
        return self._wait(job, doing)

    def run_script(self, statements: list[tuple[str, dict[str, Any]]], *, job_prefix: str) -> None:
        """``BEGIN TRANSACTION; ...; COMMIT TRANSACTION;`` as one job: all of it or nothing."""
        params: dict[str, Any] = {}
        for _sql, values in statements:
            for name, value in values.items():
                if name in params and params[name] != value:
                    raise ValueError(f"parameter @{name} has two values in one script")
                params[name] = value
        body = "".join(f"{sql};\n" for sql, _values in statements)
        script = f"BEGIN TRANSACTION;\n{body}COMMIT TRANSACTION;"
        job_id = f"{job_prefix}_{uuid.uuid4().hex[:12]}"
        job = self.submit_query(script, params, doing="committing (the publishing transaction)", job_id=job_id)
        self._wait(job, "committing (the publishing transaction)")

    def get_table(self, table: tuple[str, str, str], doing: str) -> Any:
        """The table's metadata, or None when it does not exist."""
        from google.api_core import exceptions as api

        with translating(self.config, doing, self.where()):
            try:
                return self.rest.get_table(self._ref(table), retry=self.retry, timeout=self.timeout)
            except api.NotFound:
                return None

    def ensure_dataset(self, project: str, dataset: str) -> None:
        with translating(self.config, f"creating dataset {dataset}", self.where()):
            ref = self.bigquery.Dataset(f"{project}.{dataset}")
            if self.config.location:
                ref.location = self.config.location
            self.rest.create_dataset(ref, exists_ok=True, retry=self.retry, timeout=self.timeout)

    def ensure_table(
        self, table: tuple[str, str, str], fields: list[Any], *, partition_by: Any = None, cluster_by: list[str] | None = None
    ) -> None:
        """Create the target with ``fields`` (and partitioning, clustering) unless it exists."""
        if self.get_table(table, f"looking up table {table[1]}.{table[2]}") is not None:
            return
        if self.config.create_dataset:
            self.ensure_dataset(table[0], table[1])
        created = self.bigquery.Table(self._ref(table), schema=fields)
        if partition_by is not None:
            expiration = int(partition_by.expiration_days * 86_400_000) if partition_by.expiration_days else None
            created.time_partitioning = self.bigquery.TimePartitioning(
                type_=partition_by.type, field=partition_by.field, expiration_ms=expiration
            )
        if cluster_by:
            created.clustering_fields = list(cluster_by)
        with translating(self.config, f"creating table {table[1]}.{table[2]}", self.where()):
            self.rest.create_table(created, exists_ok=True, retry=self.retry, timeout=self.timeout)

    def create_stage(self, table: tuple[str, str, str], fields: list[Any], *, expires: Any) -> None:
        stage = self.bigquery.Table(self._ref(table), schema=fields)
        stage.expires = expires
        with translating(self.config, f"creating staging table {table[2]}", self.where()):
            self.rest.create_table(stage, exists_ok=False, retry=self.retry, timeout=self.timeout)

    def _load_config(self, fields: list[Any]) -> Any:
        bigquery = self.bigquery
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=fields,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        )
        options = bigquery.format_options.ParquetOptions()
        options.enable_list_inference = True
        config.parquet_options = options
        return config

    def load_parquet(self, path: Any, table: tuple[str, str, str], fields: list[Any]) -> None:
        """A load job of the local Parquet file (a resumable upload) into ``table``."""
        doing = f"loading the staged rows into {table[2]}"
        with translating(self.config, doing, self.where()), open(path, "rb") as handle:
            job = self.rest.load_table_from_file(
                handle, self._ref(table), job_config=self._load_config(fields), num_retries=3, timeout=self.timeout, rewind=True
            )
        self._wait(job, doing)

    def load_uris(self, uris: list[str], table: tuple[str, str, str], fields: list[Any]) -> None:
        """A load job of Parquet objects already in GCS (``staging``) into ``table``."""
        doing = f"loading the staged objects into {table[2]}"
        with translating(self.config, doing, self.where()):
            job = self.rest.load_table_from_uri(
                uris, self._ref(table), job_config=self._load_config(fields), retry=self.retry, timeout=self.timeout
            )
        self._wait(job, doing)

    # -- GCS staging (google-cloud-storage, imported only when ``staging`` is set) ---------------
    def storage_client(self) -> Any:
        if self._storage is None:
            try:
                from google.cloud import storage
            except ImportError as exc:
                raise ConnectorError(
                    f"staging needs google-cloud-storage, which is not installed: {INSTALL_HINT}", key="staging"
                ) from exc
            staging = self.config.staging
            assert staging is not None
            options = {"api_endpoint": staging.api_endpoint} if staging.api_endpoint else None
            with translating(self.config, "connecting to GCS", self.gcs_where()):
                self._storage = storage.Client(project=self.project, credentials=self._credentials, client_options=options)
        return self._storage

    def gcs_where(self) -> str:
        staging = self.config.staging
        assert staging is not None
        endpoint = f" at {staging.api_endpoint}" if staging.api_endpoint else ""
        return f"gcs ({staging.uri}{endpoint})"

    def upload(self, path: Any, name: str) -> str:
        """Upload the local file to object ``name`` of the staging bucket; its ``gs://`` URI."""
        staging = self.config.staging
        assert staging is not None
        doing = f"uploading the staged rows to gs://{staging.bucket}/{name}"
        with translating(self.config, doing, self.gcs_where()):
            blob = self.storage_client().bucket(staging.bucket).blob(name)
            # if_generation_match=0: never overwrite an object (names are unique per commit).
            blob.upload_from_filename(str(path), content_type="application/octet-stream", if_generation_match=0,
                                      timeout=self.timeout, retry=self._gcs_retry())
        return f"gs://{staging.bucket}/{name}"

    def delete_objects(self, names: list[str]) -> None:
        """Delete staged objects; a failure is logged, never raised (the rows are committed or not)."""
        staging = self.config.staging
        assert staging is not None
        from google.api_core import exceptions as api

        for name in names:
            try:
                self.storage_client().bucket(staging.bucket).blob(name).delete(timeout=self.timeout, retry=self._gcs_retry())
            except api.NotFound:
                continue
            except Exception as exc:  # noqa: BLE001 - cleanup is best effort by design
                log.warning("could not delete staged object gs://%s/%s (%s); delete it by hand",
                            staging.bucket, name, translate(exc, self.config, "deleting a staged object").message)

    def _gcs_retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_deadline(self.config.retry_deadline_s)

    def drop_table(self, table: tuple[str, str, str]) -> None:
        with translating(self.config, f"dropping staging table {table[2]}", self.where()):
            self.rest.delete_table(self._ref(table), not_found_ok=True, retry=self.retry, timeout=self.timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing sockets; nothing to report
            self.rest.close()
        if self._read is not None:
            with contextlib.suppress(Exception):
                self._read.transport.close()
        self._read = None
        if self._storage is not None:
            with contextlib.suppress(Exception):
                self._storage.close()
        self._storage = None


def query_parameter(bigquery: Any, name: str, value: Any) -> Any:
    """A scalar query parameter typed from the Python value (cursor values come typed from state)."""
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        kind = "NUMERIC" if isinstance(exponent, int) and -exponent <= 9 and abs(value) < 10**29 else "BIGNUMERIC"
    elif isinstance(value, dt.datetime):
        kind = "TIMESTAMP" if value.tzinfo is not None else "DATETIME"
    elif isinstance(value, dt.date):
        kind = "DATE"
    elif isinstance(value, dt.time):
        kind = "TIME"
    elif isinstance(value, bytes):
        kind = "BYTES"
    else:
        kind, value = "STRING", None if value is None else str(value)
    return bigquery.ScalarQueryParameter(name, kind, value)


def _reasons(exc: BaseException) -> list[str]:
    return [e.get("reason", "") for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)]


def is_transient(exc: BaseException) -> bool:
    """Whether BigQuery (or the network) says the operation may succeed when retried."""
    import concurrent.futures

    from google.api_core import exceptions as api

    if isinstance(exc, (api.RetryError, concurrent.futures.TimeoutError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, api.GoogleAPICallError):
        code = getattr(exc, "code", None)
        return (isinstance(code, int) and code in TRANSIENT_CODES) or bool(TRANSIENT_REASONS & set(_reasons(exc)))
    try:
        import requests
    except ImportError:  # pragma: no cover - requests comes with the client library
        return False
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


def translate(exc: BaseException, config: BigQueryConfig, doing: str, where: str = "bigquery") -> DataLoaderError:
    """The one translation of a client-library error into ours."""
    if isinstance(exc, DataLoaderError):
        return exc
    from google.auth import exceptions as auth

    if isinstance(exc, auth.DefaultCredentialsError):
        return ConnectorError(
            f"{where}: {doing} failed: no credentials found; set service_account_file or credentials_json, "
            "run `gcloud auth application-default login`, or set anonymous: true for an emulator",
            doing=doing,
        )
    message = _message(exc)
    secret = config.credentials_json.get_secret_value() if config.credentials_json is not None else None
    if secret and secret in message:  # never echo a key back
        message = message.replace(secret, "********")
    reasons = _reasons(exc)
    facts = {"doing": doing, "reasons": reasons, "status": getattr(exc, "code", None)}
    if is_transient(exc):
        return TransientConnectorError(f"{where}: {doing} failed (worth retrying): {message}", **facts)
    return ConnectorError(f"{where}: {doing} failed: {message}", **facts)


@contextlib.contextmanager
def translating(config: BigQueryConfig, doing: str, where: str = "bigquery") -> Iterator[None]:
    try:
        yield
    except DataLoaderError:
        raise
    except Exception as exc:
        raise translate(exc, config, doing, where) from exc


__all__ = ["Clients", "query_parameter", "bigquery_module", "credentials_for", "is_transient", "translate", "translating"]
