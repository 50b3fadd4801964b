"""One run of a recipe at a time: a session-level advisory lock held for the whole run.

The lock lives on a connection of its own, opened by ``acquire_lock`` and kept until
``release_lock`` or ``close``. ``pg_try_advisory_lock`` never waits: when another session holds
the key, the run fails at once with :class:`~dataloader.errors.LeaseHeldError` naming that run.
Who holds it is read from the server (``pg_locks`` joined with ``pg_stat_activity``): the
holding connection carries its run id, pid and host in its ``application_name``, and its
``backend_start`` says since when.

A holder that dies (SIGKILL, a crashed host) needs no clean-up: the server ends its session when
the connection drops (at once for a killed process; after the server's TCP keepalive for a
vanished host) and the lock goes with it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from dataloader.errors import LeaseHeldError
from dataloader.run.ledger import LeaseHolder

from dataloader_postgres.connection import connect, describe_server, driver, translate

if TYPE_CHECKING:
    from dataloader_postgres.config import PostgresConfig

#: ``application_name`` of a lock connection starts with this (the server keeps 63 bytes).
APPLICATION_PREFIX = "dataloader-lock"

_HOLDERS = """
SELECT a.pid, a.application_name, a.backend_start
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND l.classid::bigint = %s AND l.objid::bigint = %s
"""


def lock_key(recipe_name: str, schema: str, table: str) -> int:
    """A stable signed 64-bit key for a recipe writing one table (the same in every process)."""
    text = f"dataloader recipe\0{recipe_name}\0{schema}\0{table}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


def application_name(holder: LeaseHolder) -> str:
    return f"{APPLICATION_PREFIX} {holder.run_id} {holder.pid} {holder.host}"[:63]


def holder_from(name: str | None, since: Any) -> LeaseHolder | None:
    """The holder a lock connection's ``application_name`` describes, or None for another client."""
    parts = (name or "").split(" ", 3)
    if len(parts) < 4 or parts[0] != APPLICATION_PREFIX or not parts[2].isdigit():
        return None
    started = since.isoformat(timespec="seconds") if hasattr(since, "isoformat") else str(since or "?")
    return LeaseHolder(run_id=parts[1], host=parts[3], pid=int(parts[2]), since=started)


class RecipeLock:
    """The advisory lock of ``recipe_name`` on ``config``'s target table."""

    def __init__(self, config: PostgresConfig, recipe_name: str) -> None:
        self.config, self.recipe_name = config, recipe_name
        schema, table = config.qualified_table()
        self.target = f"{schema}.{table}"
        self.key = lock_key(recipe_name, schema, table)
        self._conn: Any = None
        self._pid: int | None = None
        self.holder: LeaseHolder | None = None

    @property
    def where(self) -> str:
        return f"a PostgreSQL advisory lock on {describe_server(self.config)} for table {self.target}"

    def acquire(self, holder: LeaseHolder) -> None:
        """Take the lock at once, or raise ``LeaseHeldError`` naming who has it."""
        if self._conn is not None:
            return
        psycopg2 = driver()
        conn = connect(self.config, application_name=application_name(holder))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                if cur.fetchone()[0]:
                    self._conn, self._pid, self.holder = conn, conn.get_backend_pid(), holder
                    return
                cur.execute(_HOLDERS, ((self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF))
                found = cur.fetchone()
        except psycopg2.Error as exc:
            conn.close()
            raise translate(exc, self.config, "taking the run's advisory lock") from exc
        conn.close()
        other = holder_from(found[1], found[2]) if found else None
        backend = f" (server process {found[0]})" if found else ""
        raise LeaseHeldError(
            self.recipe_name,
            other,
            where=self.where,
            hint=(
                "wait for that run to finish; the server releases the lock as soon as its connection "
                f"closes, also when the process was killed. If it hangs, end its session{backend} with "
                "SELECT pg_terminate_backend(<server process>), then run again"
            ),
        )

    def held(self, cur: Any) -> bool:
        """Whether the lock's session still holds it, asked through any cursor on the server."""
        if self._conn is None:
            return True  # no lock was taken (the engine did not ask for one): nothing to check
        cur.execute(_HOLDERS, ((self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF))
        return any(pid == self._pid for pid, _, _ in cur.fetchall())

    def release(self) -> None:
        """Give the lock back (idempotent). Closing the connection releases it on the server."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except driver().Error:
            pass  # a broken connection: the server has ended its session and the lock with it
