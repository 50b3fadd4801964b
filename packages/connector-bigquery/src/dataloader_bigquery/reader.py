"""Reading a table or a query into Arrow record batches.

A whole table is read through the Storage Read API directly (one read session, up to
``parallelism`` streams read concurrently). A query, and a table read incrementally (the cursor
condition is a query parameter, never text spliced into SQL), first runs as a query job; its
result table is then read the same way, in one stream when the run needs the rows in order. When
the Storage Read API is not to be had (``read_api: rest``, the library missing, or the credentials
lacking ``bigquery.readsessions.create``), the REST API's pages are read instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from dataloader.errors import DataLoaderError

from dataloader_bigquery.client import Clients, translate, translating
from dataloader_bigquery.writer import quote


def read_session_table(table: tuple[str, str, str]) -> str:
    return f"projects/{table[0]}/datasets/{table[1]}/tables/{table[2]}"


def storage_available(clients: Clients) -> bool:
    if clients.config.read_api != "storage":
        return False
    try:
        clients.read_client()
    except DataLoaderError:
        return False
    return True


def read_table(clients: Clients, table: tuple[str, str, str], streams: int) -> Iterator[Any]:
    """Every row of ``table``: Storage Read API streams, or REST pages as the fallback."""
    if storage_available(clients):
        session = _session(clients, table, streams)
        if session is not None:
            yield from _read_streams(clients, session)
            return
    yield from _read_rest(clients, table)


def _session(clients: Clients, table: tuple[str, str, str], streams: int) -> Any:
    """A read session, or None when the credentials may not use the Storage Read API."""
    from google.api_core import exceptions as api
    from google.cloud.bigquery_storage_v1 import types as storage

    request = storage.ReadSession(table=read_session_table(table), data_format=storage.DataFormat.ARROW)
    try:
        return clients.read_client().create_read_session(
            parent=f"projects/{clients.project}",
            read_session=request,
            max_stream_count=max(1, streams),
            retry=clients.retry,
            timeout=clients.timeout,
        )
    except api.PermissionDenied:
        return None  # no bigquery.readsessions.create: read through REST
    except Exception as exc:
        raise translate(exc, clients.config, f"opening a read session on {table[1]}.{table[2]}", clients.where()) from exc


def _read_stream(clients: Clients, session: Any, stream: Any) -> Iterator[Any]:
    """The stream's Arrow IPC messages, decoded with the session's schema (no copy per row).

    The library's stream reconnects at the last offset when the connection drops mid-stream.
    """
    import pyarrow as pa

    schema = pa.ipc.read_schema(pa.py_buffer(session.arrow_schema.serialized_schema))
    doing = f"reading stream {stream.name.rsplit('/', 1)[-1]}"
    with translating(clients.config, doing, clients.where()):
        responses = clients.read_client().read_rows(stream.name, retry=clients.retry, timeout=clients.config.job_timeout_s)
        for response in responses:
            message = response.arrow_record_batch.serialized_record_batch
            if message:
                batch = pa.ipc.read_record_batch(pa.py_buffer(message), schema)
                if batch.num_rows:
                    yield batch


def _read_streams(clients: Clients, session: Any) -> Iterator[Any]:
    streams = list(session.streams)
    if len(streams) <= 1:
        for stream in streams:
            yield from _read_stream(clients, session, stream)
        return
    yield from _concurrently(clients, session, streams)


def _concurrently(clients: Clients, session: Any, streams: list[Any]) -> Iterator[Any]:
    """One thread per stream; batches arrive in whatever order the streams deliver them.

    The streams share the core's bounded channel (:func:`dataloader.handoff.iterate_in_threads`):
    the first failure stops them all and is raised in the consuming thread.
    """
    from dataloader.handoff import iterate_in_threads

    producers = [functools.partial(_read_stream, clients, session, stream) for stream in streams]
    return iterate_in_threads(producers, 2 * len(streams), workers=len(streams), name="dataloader-bigquery-stream")


def _read_rest(clients: Clients, table: tuple[str, str, str]) -> Iterator[Any]:
    doing = f"reading {table[1]}.{table[2]} through the REST API"
    with translating(clients.config, doing, clients.where()):
        rows = clients.rest.list_rows(".".join(table), retry=clients.retry, timeout=clients.timeout)
        for batch in rows.to_arrow_iterable(bqstorage_client=None):
            if batch.num_rows:
                yield batch


def select_sql(relation: str, conditions: list[str], order: list[str]) -> str:
    sql = f"SELECT * FROM {relation}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if order:
        sql += " ORDER BY " + ", ".join(quote(c) for c in order)
    return sql


def read_query(clients: Clients, sql: str, params: dict[str, Any], streams: int) -> Iterator[Any]:
    """Run ``sql`` as a query job, then read its result table."""
    job = clients.submit_query(sql, params, doing="running the source query")
    rows = clients._wait(job, "running the source query")
    destination = job.destination
    if destination is not None and storage_available(clients):
        yield from read_table(clients, (destination.project, destination.dataset_id, destination.table_id), streams)
        return
    with translating(clients.config, "reading the query result through the REST API", clients.where()):
        for batch in rows.to_arrow_iterable(bqstorage_client=None):
            if batch.num_rows:
                yield batch


__all__ = ["read_query", "read_table", "select_sql"]
