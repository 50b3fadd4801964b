"""The commit protocol: commit records, the SQL table that holds them, and leases.

A run's progress is true only once the destination has committed it. So a destination that can
(``Capabilities.commits_state``) stores a :class:`CommitRecord` (recipe, run id, the state that
describes the rows, what the commit published) *inside the same transaction as the rows*. The
engine reads that record on every start and whenever the outcome of a commit is unknown (an error
raised by ``commit``, a lost reply, a crash): the destination's record is the truth, the state
backend's copy is a cache.

SQL destinations keep the record in one table, ``_dataloader_state``, through
:class:`CommitRecordTable`, so no connector hand-builds it: one row per recipe, replaced with
``DELETE`` + ``INSERT`` (portable; no dialect's upsert needed) inside the destination's transaction.

Two runs of one recipe must never interleave: the engine takes a lease from the state backend and,
where the destination offers one, a lock there (:class:`LeaseHolder` says who holds it). The loser
fails at once with :class:`~dataloader.errors.LeaseHeldError`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataloader.state import State

#: Name of the commit-record table in SQL destinations.
STATE_TABLE = "_dataloader_state"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# -- commit records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CommitRecord:
    """What a destination stores inside its own commit: the truth about a recipe's progress.

    ``published`` says what that commit made visible, small and without row data: ``rows``,
    ``mode``, ``checkpoint`` (1, 2, ... for a checkpoint's commit), ``final`` (the run's last
    commit), and whatever else the destination wants to keep (a file dataset's part names).
    """

    recipe_name: str
    run_id: str
    state: dict[str, Any]
    published: dict[str, Any] = field(default_factory=dict)
    committed_at: str = ""

    @classmethod
    def for_commit(
        cls, recipe_name: str, run_id: str, state: State | dict[str, Any], published: dict[str, Any] | None = None
    ) -> CommitRecord:
        data = state if isinstance(state, dict) else state.to_dict()
        return cls(recipe_name, run_id, data, dict(published or {}), utc_now())

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe_name": self.recipe_name,
            "run_id": self.run_id,
            "state": self.state,
            "published": self.published,
            "committed_at": self.committed_at,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any], recipe_name: str, run_id: str | None = None) -> CommitRecord:
        """Read a record, also the legacy form (a bare state dict, with the run id beside it)."""
        if "state" in data and isinstance(data.get("state"), dict):
            return cls(
                recipe_name=str(data.get("recipe_name") or recipe_name),
                run_id=str(data.get("run_id") or run_id or ""),
                state=data["state"],
                published=dict(data.get("published") or {}),
                committed_at=str(data.get("committed_at") or ""),
            )
        return cls(recipe_name=recipe_name, run_id=str(run_id or ""), state=data, published={}, committed_at="")

    @classmethod
    def from_json(cls, text: str | bytes, recipe_name: str, run_id: str | None = None) -> CommitRecord:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a commit record is a JSON object")
        return cls.from_dict(data, recipe_name, run_id)

    @property
    def checkpoint(self) -> int | None:
        value = self.published.get("checkpoint")
        return int(value) if value is not None else None

    def is_commit_of(self, run_id: str, checkpoint: int | None) -> bool:
        """Whether this record was written by that commit (a run id and its checkpoint number)."""
        return self.run_id == run_id and self.checkpoint == checkpoint


# -- the SQL table ------------------------------------------------------------------------------
_PARAMSTYLES = ("qmark", "format", "pyformat", "at")


class CommitRecordTable:
    """SQL for the commit-record table (``_dataloader_state``) in any SQL destination.

    One row per recipe: ``recipe_name``, ``run_id``, ``state`` (the :class:`CommitRecord` as
    JSON text) and ``committed_at`` (ISO text). ``qualified_name`` is quoted by the connector
    (its dialect knows how); ``paramstyle`` is the driver's: ``qmark`` (``?``), ``format``
    (``%s``), ``pyformat`` (``%(name)s``) or ``at`` (``@name``, BigQuery). For the named styles the
    parameters are a dict, else a tuple.
    """

    TABLE = STATE_TABLE

    def __init__(self, qualified_name: str, *, paramstyle: str = "qmark", text_type: str = "VARCHAR") -> None:
        if paramstyle not in _PARAMSTYLES:
            raise ValueError(f"paramstyle must be one of {', '.join(_PARAMSTYLES)}")
        self.name = qualified_name
        self.paramstyle = paramstyle
        self.text_type = text_type

    def _params(self, **values: Any) -> tuple[list[str], Any]:
        names = list(values)
        if self.paramstyle == "qmark":
            return ["?"] * len(names), tuple(values.values())
        if self.paramstyle == "format":
            return ["%s"] * len(names), tuple(values.values())
        if self.paramstyle == "pyformat":
            return [f"%({n})s" for n in names], dict(values)
        return [f"@{n}" for n in names], dict(values)

    def create_sql(self) -> str:
        t = self.text_type
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} "
            f"(recipe_name {t} NOT NULL, run_id {t} NOT NULL, state {t} NOT NULL, committed_at {t})"
        )

    def write_statements(self, record: CommitRecord) -> list[tuple[str, Any]]:
        marks, params = self._params(recipe_name=record.recipe_name)
        delete = (f"DELETE FROM {self.name} WHERE recipe_name = {marks[0]}", params)
        marks, params = self._params(
            recipe_name=record.recipe_name, run_id=record.run_id, state=record.to_json(), committed_at=record.committed_at
        )
        insert = (
            f"INSERT INTO {self.name} (recipe_name, run_id, state, committed_at) VALUES ({', '.join(marks)})",
            params,
        )
        return [delete, insert]

    def read_statement(self, recipe_name: str) -> tuple[str, Any]:
        marks, params = self._params(recipe_name=recipe_name)
        return (
            f"SELECT run_id, state FROM {self.name} WHERE recipe_name = {marks[0]} ORDER BY committed_at DESC",
            params,
        )

    def parse(self, recipe_name: str, row: Sequence[Any] | None) -> CommitRecord | None:
        """The record from a row of :meth:`read_statement` (``run_id``, ``state``), or None."""
        if not row:
            return None
        run_id, text = row[0], row[1]
        if isinstance(text, dict):  # a driver that decodes JSON columns itself
            return CommitRecord.from_dict(text, recipe_name, run_id)
        return CommitRecord.from_json(text, recipe_name, run_id)


# -- leases -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaseHolder:
    """Who runs a recipe: enough for a person to find the process, or to know it is gone."""

    run_id: str
    host: str
    pid: int
    since: str

    @classmethod
    def current(cls, run_id: str) -> LeaseHolder:
        return cls(run_id=run_id, host=socket.gethostname(), pid=os.getpid(), since=utc_now())

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "host": self.host, "pid": self.pid, "since": self.since}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeaseHolder:
        return cls(
            run_id=str(data.get("run_id") or "?"),
            host=str(data.get("host") or "?"),
            pid=int(data.get("pid") or 0),
            since=str(data.get("since") or "?"),
        )

    def describe(self) -> str:
        return f"run {self.run_id} on host {self.host}, pid {self.pid}, since {self.since}"


def holder_is_dead(holder: LeaseHolder) -> bool:
    """True only when the holder ran on this host and its process no longer exists."""
    if holder.host != socket.gethostname() or holder.pid <= 0:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(holder.pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False




# -- the ledger of one run ----------------------------------------------------------------------
class Ledger:
    """One run's side of the commit protocol: where its state comes from and how its commits land.

    - :meth:`reconcile` decides, on every start, which state is true: the destination's commit
      record when it has one (the state backend's copy is a cache), else the backend's.
    - :meth:`commit` publishes through the destination; when the commit raises, its outcome is
      unknown (the reply may be lost after the server committed), so the ledger asks the
      destination, through a fresh connection, whether the record of *this* commit is there.
    """

    def __init__(
        self,
        recipe_name: str,
        run_id: str,
        destination: Any,
        *,
        commits_state: bool,
        reopen: Any,
        warn: Any,
    ) -> None:
        self.recipe_name = recipe_name
        self.run_id = run_id
        self.destination = destination
        self.commits_state = commits_state
        self._reopen = reopen  # () -> a new, unopened destination connector of the same config
        self._warn = warn
        self.commits = 0
        self.origin = "none"
        #: Published with every commit besides the ledger's keys (the run's schema versions).
        self.extra: dict[str, Any] = {}

    # where the state comes from -----------------------------------------------------------
    def committed_record(self) -> CommitRecord | None:
        if not self.commits_state:
            return None
        found = self.destination.load_committed_state(self.recipe_name)
        if not found:
            return None
        return CommitRecord.from_dict(dict(found), self.recipe_name)

    def reconcile(self, local: dict[str, Any]) -> tuple[dict[str, Any], CommitRecord | None]:
        """The true committed state (a dict), given the backend's copy, and the record it came from."""
        record = self.committed_record()
        if record is None:
            self.origin = "backend" if local else "none"
            return local, None
        self.origin = "destination"
        interrupted = (local.get("checkpoints") or {}).get("run_id")
        if interrupted and interrupted == record.run_id:
            self._warn(f"run {interrupted} committed before it was interrupted; its state is adopted")
        elif _comparable(local) != _comparable(record.state):
            what = "has no state" if not local else "holds an older state"
            self._warn(
                f"the state backend {what} for '{self.recipe_name}'; using the state the destination committed "
                f"with run {record.run_id} ({record.committed_at or 'time unknown'})"
            )
        return record.state, record

    # publishing ---------------------------------------------------------------------------
    def published(self, *, final: bool, rows: int, mode: str) -> dict[str, Any]:
        self.commits += 1
        return {**self.extra, "checkpoint": self.commits, "final": final, "rows": rows, "mode": mode}

    def commit(self, state: Any, published: dict[str, Any]) -> None:
        destination = self.destination
        extras = getattr(getattr(destination, "context", None), "extras", None)
        if isinstance(extras, dict):
            extras["published"] = published
        method = getattr(destination, "commit", None)
        if not callable(method):
            return
        from dataloader import faults

        try:
            method(state)
            faults.point("commit_reply")
        except Exception as exc:
            if self._landed(published, state):
                self._warn(
                    f"the destination's reply to commit {published['checkpoint']} was lost ({exc}), "
                    "but the destination holds this run's commit record: the commit happened"
                )
                return
            raise

    def _landed(self, published: dict[str, Any], state: Any) -> bool:
        """Ask the destination, on a new connection, whether this commit's record is there."""
        if not self.commits_state:
            return False
        try:
            fresh = self._reopen()
            opener = getattr(fresh, "open", None)
            if callable(opener):
                opener()
            try:
                found = fresh.load_committed_state(self.recipe_name)
            finally:
                closer = getattr(fresh, "close", None)
                if callable(closer):
                    closer()
        except Exception:  # cannot tell: the commit is treated as not done, the run fails or retries
            return False
        if not found:
            return False
        record = CommitRecord.from_dict(dict(found), self.recipe_name)
        if record.published:
            return record.is_commit_of(self.run_id, published.get("checkpoint"))
        # A record without ``published`` (an older connector): the same run and the very same state.
        tried = state if isinstance(state, dict) else state.to_dict()
        return record.run_id == self.run_id and _canonical(record.state) == _canonical(tried)


def _canonical(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, default=str)


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of a state that say how far a recipe got (not bookkeeping)."""
    return {
        "cursor_values": state.get("cursor_values") or {},
        "watermarks": state.get("watermarks") or {},
        "rows_done": (state.get("checkpoints") or {}).get("rows_done"),
        "last_run_id": (state.get("metadata") or {}).get("last_run_id"),
    }


__all__ = ["STATE_TABLE", "CommitRecord", "CommitRecordTable", "Ledger", "LeaseHolder", "holder_is_dead", "utc_now"]
