"""The ``postgres`` state backend: a recipe's state and lease as rows in any PostgreSQL database.

``state: {backend: postgres, dsn: "postgresql://user@host/db", schema: public}`` (or the separate
``host``/``port``/``database``/``user``/``password`` keys of a postgres connector section). The
database may be the destination's own.

Two tables in ``schema``, created on first use:

- ``_dataloader_backend_state (recipe_name PRIMARY KEY, version, state JSONB, updated_at)``: a save
  is one transaction that updates the row only ``WHERE version = <the version this backend
  loaded>`` (or inserts it when there was none); zero rows touched means another run saved in
  between, and the save is refused with a :class:`StateError`. A crash before ``COMMIT`` (a killed
  process, a dropped connection) leaves the previous row: PostgreSQL rolls the transaction back.
- ``_dataloader_backend_leases (recipe_name PRIMARY KEY, token, holder JSONB, expires_at)``: taking
  the lease is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the current lease is expired
  (by the *server's* clock, so machines' clocks do not matter) or its holder is a dead process on
  this host; renewing and releasing are updates conditioned on the holder's own token, so a
  renewal after a takeover raises :class:`LeaseLostError`.

Connections are short: one per operation, so a run holds no idle session for its lease.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dataloader import faults
from dataloader.config import ConfigModel
from dataloader.errors import DataLoaderError, LeaseHeldError, LeaseLostError, StateError
from dataloader.run.ledger import LeaseHolder, holder_is_dead
from pydantic import Field

STATE_TABLE = "_dataloader_backend_state"
LEASE_TABLE = "_dataloader_backend_leases"


class PostgresStateConfig(ConfigModel):
    """Connection keys as in a postgres connector section, plus the schema of the state tables."""

    dsn: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = None
    user: str | None = None
    password: str | None = None
    sslmode: str | None = None
    connect_timeout: int = Field(default=10, ge=1)
    connect_attempts: int = Field(default=3, ge=1)
    retry_initial_delay: float = Field(default=0.5, ge=0)
    retry_max_delay: float = Field(default=8.0, ge=0)
    schema_: str = Field(default="public", alias="schema", min_length=1)


class PostgresStateBackend:
    def __init__(self, config: PostgresStateConfig) -> None:
        from dataloader_postgres.connection import describe_server

        self.config = config
        self.where = f"postgres {describe_server(config)}, schema {config.schema_}"  # type: ignore[arg-type]
        self._seen: dict[str, int] = {}
        self._ready = False

    def __repr__(self) -> str:
        return f"PostgresStateBackend({self.where!r})"

    # connections -------------------------------------------------------------------------------
    def _name(self, table: str) -> Any:
        from dataloader_postgres.connection import driver

        return driver().sql.Identifier(self.config.schema_, table)

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Any]:
        """A cursor in one transaction, committed at the end; errors become one StateError."""
        from dataloader_postgres.connection import connect, driver, translate

        psycopg2 = driver()
        try:
            conn = connect(self.config)  # type: ignore[arg-type]
        except DataLoaderError as exc:
            raise StateError(f"state backend {exc.message}") from exc
        try:
            if not self._ready:
                self._create_tables(conn)
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except psycopg2.Error as exc:
            _rollback(conn)
            raise StateError(f"state backend {translate(exc, self.config, doing, conn=conn).message}") from exc  # type: ignore[arg-type]
        except BaseException:
            _rollback(conn)
            raise
        finally:
            conn.close()

    def _create_tables(self, conn: Any) -> None:
        from dataloader_postgres.connection import driver

        sql = driver().sql
        with conn.cursor() as cur:
            # Two runs creating the tables at once: serialise on an advisory lock for this DDL.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('dataloader state tables'))")
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.config.schema_)))
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (recipe_name TEXT PRIMARY KEY, version BIGINT NOT NULL, "
                    "state JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                ).format(self._name(STATE_TABLE))
            )
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (recipe_name TEXT PRIMARY KEY, token TEXT NOT NULL, "
                    "holder JSONB NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
                ).format(self._name(LEASE_TABLE))
            )
        conn.commit()
        self._ready = True

    # state -------------------------------------------------------------------------------------
    def load(self, recipe_name: str) -> dict[str, Any]:
        from dataloader_postgres.connection import driver

        sql = driver().sql
        with self._transaction(f"loading the state of '{recipe_name}'") as cur:
            cur.execute(
                sql.SQL("SELECT version, state::text FROM {} WHERE recipe_name = %s").format(self._name(STATE_TABLE)),
                (recipe_name,),
            )
            row = cur.fetchone()
        if row is None:
            self._seen[recipe_name] = 0
            return {}
        self._seen[recipe_name] = int(row[0])
        data = json.loads(row[1])
        return data if isinstance(data, dict) else {}

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        from dataloader_postgres.connection import driver

        sql = driver().sql
        payload = json.dumps(state, sort_keys=True, default=str)
        table = self._name(STATE_TABLE)
        loaded = self._seen.get(recipe_name)
        with self._transaction(f"saving the state of '{recipe_name}'") as cur:
            if loaded is None:  # never loaded here: save on top of whatever is there
                cur.execute(sql.SQL("SELECT version FROM {} WHERE recipe_name = %s FOR UPDATE").format(table), (recipe_name,))
                row = cur.fetchone()
                loaded = int(row[0]) if row else 0
            if loaded:
                cur.execute(
                    sql.SQL(
                        "UPDATE {} SET state = %s::jsonb, version = version + 1, updated_at = now() "
                        "WHERE recipe_name = %s AND version = %s"
                    ).format(table),
                    (payload, recipe_name, loaded),
                )
            else:
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} (recipe_name, version, state) VALUES (%s, 1, %s::jsonb) "
                        "ON CONFLICT (recipe_name) DO NOTHING"
                    ).format(table),
                    (recipe_name, payload),
                )
            if cur.rowcount != 1:
                raise StateError(
                    f"the state of '{recipe_name}' in {self.where} was saved by another run since this one loaded it "
                    f"(expected version {loaded}); it was not overwritten. Two runs of this recipe share this state: "
                    "let one finish and start again",
                    recipe=recipe_name,
                    expected_version=loaded,
                )
            faults.point("state_write")  # written, not yet committed
        self._seen[recipe_name] = loaded + 1

    def delete(self, recipe_name: str) -> bool:
        from dataloader_postgres.connection import driver

        sql = driver().sql
        with self._transaction(f"deleting the state of '{recipe_name}'") as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE recipe_name = %s").format(self._name(STATE_TABLE)), (recipe_name,))
            deleted = cur.rowcount > 0
        self._seen.pop(recipe_name, None)
        return deleted

    # lease -------------------------------------------------------------------------------------
    def acquire_lease(self, recipe_name: str, holder: LeaseHolder, ttl_s: float = 120.0) -> PostgresLease:
        from dataloader_postgres.connection import driver

        sql = driver().sql
        table = self._name(LEASE_TABLE)
        token = uuid.uuid4().hex
        with self._transaction(f"taking the lease of '{recipe_name}'") as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} AS l (recipe_name, token, holder, expires_at) "
                    "VALUES (%s, %s, %s::jsonb, now() + make_interval(secs => %s)) "
                    "ON CONFLICT (recipe_name) DO UPDATE SET token = EXCLUDED.token, holder = EXCLUDED.holder, "
                    "expires_at = EXCLUDED.expires_at WHERE l.expires_at < clock_timestamp() RETURNING token"
                ).format(t=table),
                (recipe_name, token, json.dumps(holder.to_dict()), ttl_s),
            )
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("SELECT token, holder::text, expires_at::text FROM {} WHERE recipe_name = %s FOR UPDATE").format(table),
                    (recipe_name,),
                )
                row = cur.fetchone()
                other = LeaseHolder.from_dict(json.loads(row[1])) if row else None
                if other is None or not holder_is_dead(other):
                    raise LeaseHeldError(
                        recipe_name,
                        other,
                        where=f"{self.where}, table {LEASE_TABLE}",
                        hint=f"wait for it to finish; if that run is gone, its lease expires at {row[2] if row else '?'} "
                        "and the next run takes it over",
                    )
                cur.execute(  # its holder died on this host: take it over (the row is locked)
                    sql.SQL(
                        "UPDATE {} SET token = %s, holder = %s::jsonb, expires_at = now() + make_interval(secs => %s) "
                        "WHERE recipe_name = %s"
                    ).format(table),
                    (token, json.dumps(holder.to_dict()), ttl_s, recipe_name),
                )
        return PostgresLease(self, recipe_name, token, holder, ttl_s)

    def lease_holder(self, recipe_name: str) -> LeaseHolder | None:
        from dataloader_postgres.connection import driver

        sql = driver().sql
        with self._transaction(f"reading the lease of '{recipe_name}'") as cur:
            cur.execute(
                sql.SQL("SELECT holder::text FROM {} WHERE recipe_name = %s AND expires_at > clock_timestamp()").format(
                    self._name(LEASE_TABLE)
                ),
                (recipe_name,),
            )
            row = cur.fetchone()
        return LeaseHolder.from_dict(json.loads(row[0])) if row else None

    def _update_own_lease(self, recipe_name: str, token: str, ttl_s: float | None) -> bool:
        from dataloader_postgres.connection import driver

        sql = driver().sql
        table = self._name(LEASE_TABLE)
        with self._transaction(f"renewing the lease of '{recipe_name}'") as cur:
            if ttl_s is None:
                cur.execute(sql.SQL("DELETE FROM {} WHERE recipe_name = %s AND token = %s").format(table), (recipe_name, token))
            else:
                cur.execute(
                    sql.SQL(
                        "UPDATE {} SET expires_at = now() + make_interval(secs => %s) WHERE recipe_name = %s AND token = %s"
                    ).format(table),
                    (ttl_s, recipe_name, token),
                )
            return cur.rowcount == 1


def _rollback(conn: Any) -> None:
    """Roll back, unless the connection is already gone (the server rolls back then)."""
    try:
        conn.rollback()
    except Exception:
        pass


class PostgresLease:
    def __init__(self, backend: PostgresStateBackend, recipe_name: str, token: str, holder: LeaseHolder, ttl_s: float) -> None:
        self._backend = backend
        self._recipe = recipe_name
        self._token = token
        self.holder = holder
        self.ttl_s = ttl_s
        self._released = False

    def renew(self) -> None:
        if self._released or not self._backend._update_own_lease(self._recipe, self._token, self.ttl_s):
            raise LeaseLostError(
                f"run {self.holder.run_id} lost the lease of '{self._recipe}' in {self._backend.where}: another run "
                "took it over after it expired; this run stops so that the two never interleave",
                recipe=self._recipe,
            )

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._backend._update_own_lease(self._recipe, self._token, None)


__all__ = ["PostgresLease", "PostgresStateBackend", "PostgresStateConfig"]
