"""The ``fsspec`` state backend: a recipe's state and lease as files on S3, SFTP or a local disk.

``state: {backend: fsspec, url: "s3://bucket/prefix", endpoint_url: ..., key: ..., secret: ...}``
takes the same keys as a filestore ``path`` (``sftp://host/dir`` and ``file:///dir`` work too)
and opens the file system with the filestore connector's own code.

Everything rests on one primitive, *publish a whole file under a name only if that name is free*:

- S3: one ``PutObject`` with ``If-None-Match: *`` (a single PUT is never seen half-written; a
  second writer gets 412 Precondition Failed);
- SFTP: upload to a temporary name, then the plain SFTP ``rename``, which OpenSSH's server does
  with ``link()`` + ``unlink()`` and so refuses when the target exists (``posix-rename`` would
  replace it);
- local: write and fsync a temporary file, then ``link()`` it to the name (fails if it exists).

Layout under ``url``: ``<recipe>/state-<n>.json`` (version ``n``; the highest is the state) and
``<recipe>/lease-<n>.json`` (generation ``n``; the highest is the lease). A save publishes version
``loaded + 1``: two runs that loaded the same version cannot both save, the second is refused
(optimistic concurrency), and a reader sees the old version or the new one, never part of one.
A lease is taken by publishing generation ``current + 1`` when the current one is released,
expired (``ttl_s`` without renewal, by the clocks of the machines involved) or held by a dead
process on this host; of two runs taking over at once exactly one publishes that generation.
Renewing rewrites the holder's own generation after checking that no later one exists.

Limits (docs/state.md): expiry compares the writer's clock with the reader's, so clocks must agree
to well within ``ttl_s``; a holder that stalls past its expiry learns that it lost the lease at its
next renewal (``LeaseLostError``), not at once.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from dataloader import faults
from dataloader.errors import DataLoaderError, LeaseHeldError, LeaseLostError, StateError
from dataloader.run.ledger import LeaseHolder, holder_is_dead
from pydantic import ConfigDict, field_validator

from dataloader_filestore.remote.location import SCHEMES, parse_location, redact, scheme_of
from dataloader_filestore.remote.options import RemoteOptions

_NUMBERED = re.compile(r"^(state|lease)-(\d{12})\.json$")
#: Older state versions kept besides the current one (a reader may still be fetching it).
_KEEP_BEHIND = 1


class FsspecStateConfig(RemoteOptions):
    """``url`` plus the filestore keys for reaching it (``endpoint_url``, ``key``, ``secret`` ...)."""

    model_config = ConfigDict(extra="forbid")

    url: str

    @field_validator("url")
    @classmethod
    def _supported_scheme(cls, value: str) -> str:
        scheme = scheme_of(value)
        if scheme is not None and scheme not in SCHEMES:
            raise ValueError(
                f"the fsspec state backend reaches s3://, sftp:// and file:// URLs (or a plain folder), not {scheme}://"
            )
        if not value.split("://", 1)[-1].strip("/"):
            raise ValueError("give a bucket, host or folder: s3://bucket/prefix, sftp://host/dir, file:///dir")
        return value


class FsspecStateBackend:
    """State and lease as numbered files under ``url``; see the module docstring for the rules."""

    def __init__(self, config: FsspecStateConfig) -> None:
        self.config = config
        self._location = parse_location(SimpleNamespace(path=config.url, host=config.host, port=config.port,
                                                        username=config.username, backend=None))
        self.where = self._location.display()
        self._fs: Any = None
        self._root = ""
        self._seen: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FsspecStateBackend({redact(self.where)!r})"

    # the file system ---------------------------------------------------------------------------
    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            from dataloader_filestore.remote import open_remote

            fields = {name: getattr(self.config, name) for name in RemoteOptions.model_fields}
            fields["backend"] = None
            with self._io("open"):
                self._fs, root = open_remote(SimpleNamespace(path=self.config.url, **fields))
            self._root = root.rstrip("/") or "/"
        return self._fs, self._root

    @contextmanager
    def _io(self, doing: str) -> Iterator[None]:
        """Turn any failure of the file system into one StateError naming the place (no secrets)."""
        try:
            yield
        except StateError:
            raise
        except DataLoaderError as exc:
            raise StateError(f"state backend fsspec ({self.where}): {exc.message}") from exc
        except Exception as exc:
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            raise StateError(
                f"state backend fsspec ({self.where}): could not {doing}: {type(exc).__name__}: {text}",
                where=self.where,
            ) from exc

    def _dir(self, recipe_name: str) -> str:
        if not recipe_name or "/" in recipe_name or "\\" in recipe_name or recipe_name.startswith("."):
            raise StateError(f"invalid recipe name for state: {recipe_name!r}", recipe=recipe_name)
        _, root = self._filesystem()
        return posixpath.join(root, recipe_name)

    def _numbers(self, recipe_name: str, kind: str) -> list[int]:
        fs, _ = self._filesystem()
        folder = self._dir(recipe_name)
        with self._io(f"list {folder}"):
            try:
                names = fs.ls(folder, detail=False)
            except FileNotFoundError:
                return []
        found = []
        for name in names:
            match = _NUMBERED.match(posixpath.basename(str(name).rstrip("/")))
            if match and match.group(1) == kind:
                found.append(int(match.group(2)))
        return sorted(found)

    def _path(self, recipe_name: str, kind: str, number: int) -> str:
        return posixpath.join(self._dir(recipe_name), f"{kind}-{number:012d}.json")

    def _read(self, path: str) -> dict[str, Any] | None:
        fs, _ = self._filesystem()
        with self._io(f"read {path}"):
            try:
                with fs.open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                return None
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise StateError(f"state backend fsspec: {path} is not valid JSON ({exc})", path=path) from exc
        if not isinstance(value, dict):
            raise StateError(f"state backend fsspec: {path} does not hold a JSON object", path=path)
        return value

    def _publish(self, path: str, payload: bytes, midway: Callable[[], None] = lambda: None) -> bool:
        """Make ``path`` hold ``payload`` whole, only if ``path`` does not exist yet."""
        fs, _ = self._filesystem()
        backend = self._location.backend
        with self._io(f"write {path}"):
            if backend == "s3":
                return _publish_s3(fs, path, payload, midway)
            fs.makedirs(posixpath.dirname(path), exist_ok=True)
            if backend == "sftp":
                return _publish_sftp(fs, path, payload, midway)
            return _publish_local(path, payload, midway)

    def _overwrite(self, path: str, payload: bytes) -> None:
        """Replace ``path`` (a lease generation only its holder writes) in one step."""
        fs, _ = self._filesystem()
        with self._io(f"write {path}"):
            if self._location.backend == "local":
                tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
                with open(tmp, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            else:  # S3: a PUT; SFTP: the filestore writer's temporary name + posix-rename
                with fs.open(path, "wb") as handle:
                    handle.write(payload)

    def _remove(self, paths: list[str]) -> None:
        """Best effort: an old version or generation left behind is only clutter."""
        fs, _ = self._filesystem()
        for path in paths:
            try:
                fs.rm(path)
            except Exception:
                pass

    # state -------------------------------------------------------------------------------------
    def load(self, recipe_name: str) -> dict[str, Any]:
        for _ in range(5):  # a version pruned between the listing and the read: list again
            versions = self._numbers(recipe_name, "state")
            if not versions:
                self._seen[recipe_name] = 0
                return {}
            data = self._read(self._path(recipe_name, "state", versions[-1]))
            if data is not None:
                self._seen[recipe_name] = versions[-1]
                return data
        raise StateError(f"state backend fsspec ({self.where}): the state of '{recipe_name}' kept changing while read")

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        loaded = self._seen.get(recipe_name)
        if loaded is None:  # never loaded here: save on top of whatever is there
            versions = self._numbers(recipe_name, "state")
            loaded = versions[-1] if versions else 0
        number = loaded + 1
        payload = json.dumps(state, indent=2, sort_keys=True, default=str).encode("utf-8")
        path = self._path(recipe_name, "state", number)
        if not self._publish(path, payload, midway=lambda: faults.point("state_write")):
            raise StateError(
                f"the state of '{recipe_name}' in {self.where} was saved by another run since this one loaded "
                f"it (version {number} exists); it was not overwritten. Two runs of this recipe share this state: "
                "let one finish and start again",
                recipe=recipe_name,
                where=self.where,
                version=number,
            )
        self._seen[recipe_name] = number
        older = [n for n in self._numbers(recipe_name, "state") if n < number - _KEEP_BEHIND]
        self._remove([self._path(recipe_name, "state", n) for n in older])

    def delete(self, recipe_name: str) -> bool:
        """Forget a recipe's state (an empty version on top, so stale writers are still refused)."""
        had = bool(self.load(recipe_name))
        if had:
            self.save(recipe_name, {})
        return had

    # lease -------------------------------------------------------------------------------------
    def acquire_lease(self, recipe_name: str, holder: LeaseHolder, ttl_s: float = 120.0) -> FsspecLease:
        for _ in range(3):
            generations = self._numbers(recipe_name, "lease")
            current = generations[-1] if generations else 0
            if current:
                doc = self._read(self._path(recipe_name, "lease", current))
                if doc is None:
                    continue  # pruned by a new holder meanwhile: look again
                if _is_live(doc):
                    raise self._held(recipe_name, doc)
            token = uuid.uuid4().hex
            number = current + 1
            doc = _lease_doc(holder, token, ttl_s)
            if self._publish(self._path(recipe_name, "lease", number), doc):
                self._remove([self._path(recipe_name, "lease", n) for n in generations])
                # The engine renews from a thread of its own: give the lease its own connection.
                return FsspecLease(FsspecStateBackend(self.config), recipe_name, number, token, holder, ttl_s)
        generations = self._numbers(recipe_name, "lease")
        doc = self._read(self._path(recipe_name, "lease", generations[-1])) if generations else None
        raise self._held(recipe_name, doc or {})

    def lease_holder(self, recipe_name: str) -> LeaseHolder | None:
        """Who holds the recipe's lease now (None: nobody)."""
        generations = self._numbers(recipe_name, "lease")
        doc = self._read(self._path(recipe_name, "lease", generations[-1])) if generations else None
        return LeaseHolder.from_dict(doc["holder"]) if doc and _is_live(doc) else None

    def _held(self, recipe_name: str, doc: dict[str, Any]) -> LeaseHeldError:
        holder = LeaseHolder.from_dict(doc["holder"]) if isinstance(doc.get("holder"), dict) else None
        expires = doc.get("expires_at")
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(expires))) if expires else "?"
        return LeaseHeldError(
            recipe_name,
            holder,
            where=f"{self.where}/{recipe_name}",
            hint=f"wait for it to finish; if that run is gone, its lease expires at {when} and the next run takes it over",
        )


class FsspecLease:
    """A held generation of a recipe's lease."""

    def __init__(self, backend: FsspecStateBackend, recipe_name: str, number: int, token: str,
                 holder: LeaseHolder, ttl_s: float) -> None:
        self._backend = backend
        self._recipe = recipe_name
        self._number = number
        self._token = token
        self.holder = holder
        self.ttl_s = ttl_s
        self._released = False

    def _still_mine(self) -> bool:
        backend = self._backend
        generations = backend._numbers(self._recipe, "lease")
        if not generations or generations[-1] != self._number:
            return False
        doc = backend._read(backend._path(self._recipe, "lease", self._number))
        return bool(doc) and doc.get("token") == self._token and not doc.get("released")

    def renew(self) -> None:
        if self._released or not self._still_mine():
            raise LeaseLostError(
                f"run {self.holder.run_id} lost the lease of '{self._recipe}' in {self._backend.where}: another run "
                "took it over after it expired; this run stops so that the two never interleave",
                recipe=self._recipe,
            )
        path = self._backend._path(self._recipe, "lease", self._number)
        self._backend._overwrite(path, _lease_doc(self.holder, self._token, self.ttl_s))

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._still_mine():
            path = self._backend._path(self._recipe, "lease", self._number)
            self._backend._overwrite(path, _lease_doc(self.holder, self._token, 0, released=True))


def _lease_doc(holder: LeaseHolder, token: str, ttl_s: float, *, released: bool = False) -> bytes:
    doc = {
        "holder": holder.to_dict(),
        "token": token,
        "ttl_s": ttl_s,
        "expires_at": time.time() + ttl_s,
        "released": released,
    }
    return json.dumps(doc, sort_keys=True).encode("utf-8")


def _is_live(doc: dict[str, Any]) -> bool:
    if doc.get("released"):
        return False
    if float(doc.get("expires_at") or 0) <= time.time():
        return False
    holder = doc.get("holder")
    return not (isinstance(holder, dict) and holder_is_dead(LeaseHolder.from_dict(holder)))


# -- publish-if-absent, per file system ------------------------------------------------------------
def _publish_s3(fs: Any, path: str, payload: bytes, midway: Callable[[], None]) -> bool:
    bucket, _, key = path.partition("/")
    midway()
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=payload, IfNoneMatch="*")
    except Exception as exc:
        if _precondition_failed(exc):
            return False
        raise
    return True


def _precondition_failed(exc: BaseException) -> bool:
    for error in (exc, exc.__cause__, exc.__context__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status in (409, 412):
                return True
        if error is not None and "PreconditionFailed" in str(error):
            return True
    return isinstance(exc, FileExistsError)


def _publish_sftp(fs: Any, path: str, payload: bytes, midway: Callable[[], None]) -> bool:
    tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")

    def upload() -> None:
        with fs.ftp.open(tmp, "wb") as handle:
            handle.write(payload)

    fs.call("upload", tmp, upload)
    midway()
    try:
        fs.call("publish", path, lambda: fs.ftp.rename(tmp, path))  # no-clobber on OpenSSH
        return True
    except OSError:
        if fs.exists(path):
            return False
        raise
    finally:
        try:
            fs.ftp.remove(tmp)
        except OSError:
            pass


def _publish_local(path: str, payload: bytes, midway: Callable[[], None]) -> bool:
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as handle:
            half = len(payload) // 2
            handle.write(payload[:half])
            handle.flush()
            midway()
            handle.write(payload[half:])
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        _fsync_dir(os.path.dirname(path))
        return True
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _fsync_dir(directory: str) -> None:
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


__all__ = ["FsspecLease", "FsspecStateBackend", "FsspecStateConfig"]
