"""Per-recipe state: incremental cursors, watermarks, checkpoints.

State is a plain JSON document so that it can live in any backend and be read by a person
(``dataloader show-state``). It advances only after the destination has committed the rows it
describes: the engine hands sources a *copy* of the committed state to update while reading, and
saves that copy only after ``commit``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from dataloader import faults
from dataloader.errors import LeaseHeldError, StateError

if TYPE_CHECKING:
    from dataloader.run.ledger import LeaseHolder

STATE_FORMAT_VERSION = 1


@dataclass
class State:
    """What a recipe remembers between runs.

    - ``cursor_values``: ``{cursor_column: last committed high-water value}`` (JSON form).
    - ``watermarks``: per cursor column, its Arrow type and the keys of rows already loaded at the
      high-water value, so ties are neither lost nor duplicated; sources with other strategies
      (file modification times) keep their own marks here too.
    - ``checkpoints``: progress of an unfinished run, for ``--resume``.
    - ``metadata``: anything else (last run id, timestamps).
    """

    cursor_values: dict[str, Any] = field(default_factory=dict)
    watermarks: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_FORMAT_VERSION,
            "cursor_values": copy.deepcopy(self.cursor_values),
            "watermarks": copy.deepcopy(self.watermarks),
            "checkpoints": copy.deepcopy(self.checkpoints),
            "metadata": copy.deepcopy(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        return cls(
            cursor_values=copy.deepcopy(data.get("cursor_values") or {}),
            watermarks=copy.deepcopy(data.get("watermarks") or {}),
            checkpoints=copy.deepcopy(data.get("checkpoints") or {}),
            metadata=copy.deepcopy(data.get("metadata") or {}),
        )

    def copy(self) -> State:
        return State.from_dict(self.to_dict())

    # -- incremental cursors -------------------------------------------------------------
    def cursor_value(self, column: str, default: Any = None) -> Any:
        """The committed high-water value of ``column`` as a typed Python value.

        Sources read rows with ``column >= value`` (inclusive); the engine drops the rows at the
        boundary that were already loaded. ``default`` (the recipe's ``initial_value``) applies
        when no run has committed yet.
        """
        if column not in self.cursor_values:
            return default
        kind = (self.watermarks.get(column) or {}).get("kind")
        return decode_value(self.cursor_values[column], kind)

    def set_cursor(
        self, column: str, value: Any, *, boundary_keys: list[str] | None = None, key_form: str | None = None
    ) -> None:
        encoded, kind = encode_value(value)
        self.cursor_values[column] = encoded
        mark = dict(self.watermarks.get(column) or {})
        mark["kind"] = kind
        keys = sorted(boundary_keys or [])
        mark.pop("boundary_keys_z", None)
        if len(keys) > PACK_KEYS_OVER:
            mark["boundary_keys"] = []
            mark["boundary_keys_z"] = pack_keys(keys)
        else:
            mark["boundary_keys"] = keys
        if key_form:
            mark["key_form"] = key_form
        else:
            mark.pop("key_form", None)
        self.watermarks[column] = mark

    def boundary_keys(self, column: str) -> set[str]:
        mark = self.watermarks.get(column) or {}
        if mark.get("boundary_keys_z"):
            return set(unpack_keys(mark["boundary_keys_z"]))
        return set(mark.get("boundary_keys") or [])


#: Above this many boundary keys the state stores them compressed (sorted keys compress well).
PACK_KEYS_OVER = 1_000


_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")


def pack_keys(keys: list[str]) -> str:
    """Keys in a compact, lossless text form (``i:`` whole numbers as deltas, ``z:`` any text)."""
    import base64
    import zlib

    if all(_INTEGER.fullmatch(key) for key in keys):
        numbers = sorted(int(key) for key in keys)
        deltas = [numbers[0]] + [b - a for a, b in zip(numbers, numbers[1:], strict=False)]
        text, tag = ",".join(map(str, deltas)), "i:"
    else:
        text, tag = "\x1e".join(keys), "z:"
    return tag + base64.b64encode(zlib.compress(text.encode("utf-8", "surrogatepass"), 9)).decode("ascii")


def unpack_keys(packed: str) -> list[str]:
    import base64
    import itertools
    import zlib

    tag, body = (packed[:2], packed[2:]) if packed[:2] in ("i:", "z:") else ("z:", packed)
    text = zlib.decompress(base64.b64decode(body)).decode("utf-8", "surrogatepass")
    if not text:
        return []
    if tag == "i:":
        return [str(n) for n in itertools.accumulate(int(d) for d in text.split(","))]
    return text.split("\x1e")


def encode_value(value: Any) -> tuple[Any, str]:
    """A JSON-ready form of a cursor value, and the kind needed to decode it."""
    if value is None:
        return None, "null"
    if isinstance(value, bool):
        return value, "bool"
    if isinstance(value, int):
        return value, "int"
    if isinstance(value, float):
        return value, "float"
    if isinstance(value, Decimal):
        return str(value), "decimal"
    if isinstance(value, dt.datetime):
        return value.isoformat(), "datetime"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    if isinstance(value, dt.time):
        return value.isoformat(), "time"
    if isinstance(value, str):
        return value, "str"
    raise StateError(
        f"cannot store a cursor value of type {type(value).__name__}; use a number, text, date or timestamp column",
        value=repr(value),
    )


def decode_value(value: Any, kind: str | None) -> Any:
    if value is None or kind in (None, "null", "bool", "int", "float", "str"):
        return value
    if kind == "decimal":
        return Decimal(value)
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "time":
        return dt.time.fromisoformat(value)
    return value


@runtime_checkable
class StateBackend(Protocol):
    """Where state lives. ``load`` returns ``{}`` for a recipe that has never committed."""

    def load(self, recipe_name: str) -> dict[str, Any]: ...

    def save(self, recipe_name: str, state: dict[str, Any]) -> None: ...


@runtime_checkable
class Lease(Protocol):
    """A held lease: the run renews it while it runs and releases it at the end."""

    holder: LeaseHolder

    def renew(self) -> None:
        """Extend the lease; raise ``LeaseLostError`` if another run has taken it."""
        ...

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        ...


@runtime_checkable
class LeasingBackend(Protocol):
    """A state backend that holds the per-recipe lease keeping two runs of a recipe apart.

    ``acquire_lease`` never waits: it raises :class:`~dataloader.errors.LeaseHeldError` naming the
    holder when a live lease exists, and takes over one that expired (``ttl_s`` passed without a
    renewal) or whose holder is a dead process on this host.
    """

    def acquire_lease(self, recipe_name: str, holder: LeaseHolder, ttl_s: float) -> Lease: ...


class LocalStateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state_dir: str = ".state"


class LocalStateBackend:
    """State as ``<state_dir>/<recipe_name>.json``, replaced atomically on every save.

    A save writes a temporary file in the same directory, fsyncs it, renames it over the old file
    and fsyncs the directory, so a crash leaves either the old state or the new one, never half.
    A save refuses to replace a file that changed since this backend loaded it (another process
    saved in between): the file's identity (inode, modification time, size) is its version.
    """

    def __init__(self, state_dir: str | os.PathLike[str] | LocalStateConfig = ".state") -> None:
        if isinstance(state_dir, LocalStateConfig):
            state_dir = state_dir.state_dir
        self.state_dir = Path(state_dir)
        #: What each recipe's file was when this backend last loaded or saved it (None: absent).
        self._seen: dict[str, tuple[int, int, int] | None] = {}

    def path_for(self, recipe_name: str) -> Path:
        if not recipe_name or "/" in recipe_name or "\\" in recipe_name or recipe_name.startswith("."):
            raise StateError(f"invalid recipe name for state: {recipe_name!r}", recipe=recipe_name)
        return self.state_dir / f"{recipe_name}.json"

    def load(self, recipe_name: str) -> dict[str, Any]:
        path = self.path_for(recipe_name)
        try:
            with open(path, encoding="utf-8") as handle:
                self._seen[recipe_name] = _identity(os.fstat(handle.fileno()))
                text = handle.read()
        except FileNotFoundError:
            self._seen[recipe_name] = None
            return {}
        except OSError as exc:
            raise StateError(f"cannot read state file {path}: {exc.strerror or exc}", path=str(path)) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(
                f"state file {path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                f"fix it or clear it with `dataloader reset-state {recipe_name}`",
                path=str(path),
            ) from exc
        if not isinstance(data, dict):
            raise StateError(f"state file {path} does not hold a JSON object", path=str(path))
        return data

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        path = self.path_for(recipe_name)
        payload = json.dumps(state, indent=2, sort_keys=True, default=str).encode("utf-8")
        tmp_name = None
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{recipe_name}.", suffix=".tmp", dir=self.state_dir)
            with os.fdopen(fd, "wb") as handle:
                half = len(payload) // 2
                handle.write(payload[:half])
                handle.flush()
                faults.point("state_write")
                handle.write(payload[half:])
                handle.flush()
                os.fsync(handle.fileno())
            with _save_lock(self.state_dir, recipe_name):
                self._check_unchanged(recipe_name, path)
                os.replace(tmp_name, path)
                tmp_name = None
                self._seen[recipe_name] = _identity(os.stat(path))
            _fsync_dir(self.state_dir)
        except OSError as exc:
            raise StateError(
                f"cannot write state file {path}: {exc.strerror or exc}; the previous state is unchanged",
                path=str(path),
            ) from exc
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass

    def _check_unchanged(self, recipe_name: str, path: Path) -> None:
        if recipe_name not in self._seen:
            return  # never loaded here: nothing to compare with
        try:
            current: tuple[int, int, int] | None = _identity(os.stat(path))
        except FileNotFoundError:
            current = None
        if current != self._seen[recipe_name]:
            raise StateError(
                f"the state of '{recipe_name}' in {path} was changed by another run since this one loaded it; "
                "it was not overwritten. Another run of this recipe is writing the same state folder: "
                "let one finish and start again",
                path=str(path),
                recipe=recipe_name,
            )

    def acquire_lease(self, recipe_name: str, holder: LeaseHolder, ttl_s: float = 120.0) -> Lease:
        """Hold ``<state_dir>/<recipe>.lock`` for the run (``flock``: a dead process holds nothing)."""
        self.path_for(recipe_name)  # validates the name
        return _acquire_file_lease(self.state_dir, recipe_name, holder)

    def lease_holder(self, recipe_name: str) -> LeaseHolder | None:
        """Who holds the recipe's lease now (None: nobody), without taking it."""
        import fcntl

        from dataloader.run.ledger import LeaseHolder as Holder

        self.path_for(recipe_name)
        try:
            fd = os.open(self.state_dir / f"{recipe_name}.lock", os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it (closing the descriptor drops the probe)
        except BlockingIOError:
            try:
                return Holder.from_dict(json.loads(os.pread(fd, 4096, 0) or b"{}"))
            except ValueError:
                return None
        finally:
            os.close(fd)

    def delete(self, recipe_name: str) -> bool:
        """Forget a recipe's state; returns whether there was any."""
        path = self.path_for(recipe_name)
        self._seen.pop(recipe_name, None)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"cannot delete state file {path}: {exc.strerror or exc}", path=str(path)) from exc
        _fsync_dir(self.state_dir)
        return True


class _FileLease:
    """A lease held as an exclusive ``flock`` on ``<state_dir>/<recipe>.lock``.

    The kernel drops the lock when its process dies, so a killed run never leaves a stale lease;
    the file's content (the holder) is only there to tell the next run who is running.
    """

    def __init__(self, fd: int, path: Path, holder: LeaseHolder) -> None:
        self._fd: int | None = fd
        self.path = path
        self.holder = holder

    def renew(self) -> None:
        """A flock does not expire; nothing to renew."""

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing drops the flock


def _acquire_file_lease(state_dir: Path, recipe_name: str, holder: LeaseHolder) -> _FileLease:
    import fcntl

    from dataloader.run.ledger import LeaseHolder as Holder

    path = state_dir / f"{recipe_name}.lock"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the lease file {path}: {exc.strerror or exc}", path=str(path)) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = _read_holder(fd, Holder)
        os.close(fd)
        raise LeaseHeldError(
            recipe_name,
            other,
            where=str(path),
            hint="wait for it to finish (the lock is released the moment that process exits, also when it is killed)",
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StateError(f"cannot lock the lease file {path}: {exc.strerror or exc}", path=str(path)) from exc
    payload = json.dumps(holder.to_dict()).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, payload, 0)
    return _FileLease(fd, path, holder)


def _read_holder(fd: int, holder_type: Any) -> Any:
    """The holder written in a lock file; the winner of a race writes it just after its flock,
    so an empty file is read again for a moment before giving up."""
    import time

    for _ in range(50):
        try:
            data = os.pread(fd, 4096, 0)
            if data:
                return holder_type.from_dict(json.loads(data))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    return None


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


@contextlib.contextmanager
def _save_lock(state_dir: Path, recipe_name: str) -> Iterator[None]:
    """A short exclusive lock around the compare-and-replace of one recipe's state file."""
    import fcntl

    fd = os.open(state_dir / f".{recipe_name}.save.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["State", "StateBackend", "Lease", "LeasingBackend", "LocalStateBackend", "LocalStateConfig", "encode_value", "decode_value"]
