"""Start local-bigquery with DuckDB's extensions from site-packages (runs in the emulator's venv).

Usage: python launch.py EXTENSION_DIR serve --host 127.0.0.1 --port N --grpc-port M --data-dir D

1. Every ``duckdb_extension_*`` package's extension file is installed into EXTENSION_DIR, and
   every DuckDB connection the emulator opens uses that directory with auto-install off: an
   extension that is missing fails at once instead of being downloaded.
2. local-bigquery 0.3.2 runs ``MERGE`` as its own DuckDB transaction (``BEGIN`` ... ``COMMIT``).
   Inside a script's ``BEGIN TRANSACTION`` that ``BEGIN`` fails and DuckDB aborts the script's
   transaction ("Current transaction is aborted"). The patch below lets such a MERGE join the
   script's transaction, as BigQuery does.
"""

from __future__ import annotations

import pathlib
import sys

import duckdb

extension_dir = pathlib.Path(sys.argv.pop(1))
site_packages = pathlib.Path(duckdb.__file__).resolve().parent.parent
_connect = duckdb.connect


def connect(database=":memory:", read_only=False, config=None, **kwargs):  # noqa: ANN001, ANN201
    config = dict(config or {})
    config.setdefault("extension_directory", str(extension_dir))
    config.setdefault("autoinstall_known_extensions", False)
    return _connect(database, read_only, config, **kwargs)


def install_extensions() -> None:
    con = connect()
    try:
        for path in sorted(site_packages.glob("duckdb_extension_*/extensions/v*/*.duckdb_extension")):
            con.execute(f"INSTALL '{path}'")
    finally:
        con.close()


def patch_merge_in_transaction() -> None:
    import sqlglot.expressions as exp
    from local_bigquery.jobs import merge, query

    in_transaction: set[int] = set()
    statement, run_merge, execute = query._statement, merge.run, query.execute

    class JoinTransaction:
        def __init__(self, cur):  # noqa: ANN001
            self._cur = cur

        def __getattr__(self, name):  # noqa: ANN001, ANN204
            return getattr(self._cur, name)

        def execute(self, sql, *args, **kwargs):  # noqa: ANN001, ANN201
            if sql == "BEGIN":
                raise duckdb.TransactionException("already inside the script's transaction")
            return self._cur.execute(sql, *args, **kwargs)

    def tracked_statement(cur, tree, *args, **kwargs):  # noqa: ANN001, ANN201
        result = statement(cur, tree, *args, **kwargs)
        if isinstance(tree, exp.Transaction):
            in_transaction.add(id(cur))
        elif isinstance(tree, (exp.Commit, exp.Rollback)):
            in_transaction.discard(id(cur))
        return result

    def merge_in_transaction(cur, tree, context):  # noqa: ANN001, ANN201
        return run_merge(JoinTransaction(cur) if id(cur) in in_transaction else cur, tree, context)

    def fresh_job(cur, *args, **kwargs):  # noqa: ANN001, ANN201
        if kwargs.get("session") is None:
            in_transaction.discard(id(cur))  # each job outside a session has its own cursor
        return execute(cur, *args, **kwargs)

    query._statement, merge.run, query.execute = tracked_statement, merge_in_transaction, fresh_job


if __name__ == "__main__":
    duckdb.connect = connect
    install_extensions()
    patch_merge_in_transaction()
    from local_bigquery.cli import main

    main()
