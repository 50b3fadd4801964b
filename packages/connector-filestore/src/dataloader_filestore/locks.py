"""The dataset lock: one run of a recipe at a time writes to a dataset.

The lock is an object inside the dataset, ``_dataloader/locks/<recipe>.json``, holding who took
it (``LeaseHolder.to_dict()``), when, and when it was last renewed. It is taken by a
conditional create, so of two runs starting together exactly one wins and the other fails at
once with :class:`~dataloader.errors.LeaseHeldError` naming the holder:

- local files: ``open(O_CREAT | O_EXCL)``;
- S3: ``PutObject`` with ``If-None-Match: *`` (S3 refuses with 412 when the key exists);
- SFTP: an exclusive open (``SSH_FXF_EXCL``).

While it runs, the holder rewrites the lock every ``ttl / 3`` seconds from a daemon thread. A
lock is stale when its holder's process is gone (same host, no such pid) or when it was not
renewed for ``ttl`` seconds (a run on another host that died; clocks are assumed to agree within
a fraction of ``ttl``). A stale lock is taken over with a compare-and-swap, so two runs taking
over the same stale lock cannot both win:

- S3: ``PutObject`` with ``If-Match: <the stale lock's ETag>``;
- local files and SFTP: the stale lock is renamed to a unique name (a rename succeeds for one
  caller only), read back to check it is the stale lock that was judged (if not, it is put back
  without replacing anything), then the new lock is created exclusively.

Renewals are the same compare-and-swap against the holder's own last version, so a run whose
lock was taken over notices it, and ``commit`` then refuses to publish.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import threading
from abc import ABC, abstractmethod
from typing import Any

from dataloader.errors import ConnectorError

log = logging.getLogger("dataloader.filestore")

LOCK_DIR = "_dataloader/locks"


class LockStore(ABC):
    """The four operations a lock needs, on one backend. ``version`` identifies one write."""

    def tidy(self, path: str) -> None:
        """After a release: remove the lock's folders if empty (stores with real directories)."""
        return None  # object stores have no folders to remove

    @abstractmethod
    def create(self, path: str, data: bytes) -> Any | None:
        """Create ``path`` holding ``data`` unless it exists; the new version, or None."""

    @abstractmethod
    def read(self, path: str) -> tuple[bytes, Any] | None:
        """The lock's bytes and their version, or None when there is no lock."""

    @abstractmethod
    def swap(self, path: str, version: Any, data: bytes) -> Any | None:
        """Replace ``path`` with ``data`` only if it is still ``version``; the new version, or None."""

    @abstractmethod
    def delete(self, path: str, version: Any) -> None:
        """Remove ``path`` if it is still ``version`` (best effort)."""


class _RenamingStore(LockStore):
    """Local files and SFTP: exclusive create; compare-and-swap by renaming to a unique name."""

    def swap(self, path: str, version: Any, data: bytes) -> Any | None:
        directory, name = path.rsplit("/", 1)
        tomb = f"{directory}/.{name}.{secrets.token_hex(6)}.stale"
        try:
            self._rename(path, tomb)
        except FileNotFoundError:
            return None
        try:
            found = self._read_bytes(tomb)
        except FileNotFoundError:
            found = None
        if found != version:
            self._restore(tomb, path)  # not the version we judged: put it back, replacing nothing
            return None
        self._remove(tomb)
        return self.create(path, data)

    def delete(self, path: str, version: Any) -> None:
        found = self.read(path)
        if found is not None and found[1] == version:
            self._remove(path)

    def read(self, path: str) -> tuple[bytes, Any] | None:
        try:
            data = self._read_bytes(path)
        except FileNotFoundError:
            return None
        return data, data

    @abstractmethod
    def _rename(self, old: str, new: str) -> None:
        """Rename ``old`` to ``new``; FileNotFoundError when ``old`` is gone."""

    @abstractmethod
    def _restore(self, tomb: str, path: str) -> None:
        """Put a lock moved aside back at ``path``, unless ``path`` was taken meanwhile."""

    @abstractmethod
    def _read_bytes(self, path: str) -> bytes:
        """The file's bytes; FileNotFoundError when it is gone."""

    @abstractmethod
    def _remove(self, path: str) -> None:
        """Remove the file (gone already is fine)."""


class LocalLockStore(_RenamingStore):
    def create(self, path: str, data: bytes) -> Any | None:
        for attempt in range(3):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                return None
            except FileNotFoundError:  # another run's tidy() removed the empty folder just now
                if attempt == 2:
                    raise
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return data

    def _rename(self, old: str, new: str) -> None:
        os.rename(old, new)

    def tidy(self, path: str) -> None:
        folder = os.path.dirname(path)
        for _ in LOCK_DIR.split("/"):
            try:
                os.rmdir(folder)  # only ever removes an empty folder
            except OSError:
                return
            folder = os.path.dirname(folder)

    def _restore(self, tomb: str, path: str) -> None:
        try:
            os.link(tomb, path)  # unlike rename, never replaces a lock someone created meanwhile
        except FileExistsError:
            pass
        os.unlink(tomb)

    def _read_bytes(self, path: str) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    def _remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class SFTPLockStore(_RenamingStore):
    """Over the connector's SFTP session (``fs.call`` re-connects after a dropped connection)."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def create(self, path: str, data: bytes) -> Any | None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)

        def create() -> bool:
            try:
                handle = self.fs.ftp.open(path, "wx")  # paramiko: write + create + exclusive
            except OSError as exc:
                if self._exists(path):
                    return False
                raise exc
            with handle:
                handle.write(data)
            return True

        return data if self.fs.call("create the lock", path, create) else None

    def _exists(self, path: str) -> bool:
        try:
            self.fs.ftp.stat(path)
            return True
        except FileNotFoundError:
            return False

    def tidy(self, path: str) -> None:
        folder = path.rsplit("/", 1)[0]
        for _ in LOCK_DIR.split("/"):
            try:
                self.fs.call("remove directory", folder, lambda f=folder: self.fs.ftp.rmdir(f))
            except Exception:  # not empty, or another run's lock is there: leave it
                return
            folder = folder.rsplit("/", 1)[0]

    def _rename(self, old: str, new: str) -> None:
        self.fs.call("rename", old, lambda: self.fs.ftp.posix_rename(old, new))

    def _restore(self, tomb: str, path: str) -> None:
        try:
            # Plain SFTP rename refuses to replace an existing file (OpenSSH links, then unlinks).
            self.fs.call("rename", tomb, lambda: self.fs.ftp.rename(tomb, path))
        except OSError:
            self._remove(tomb)

    def _read_bytes(self, path: str) -> bytes:
        def read() -> bytes:
            with self.fs.ftp.open(path, "rb") as handle:
                return handle.read()

        return self.fs.call("read", path, read)

    def _remove(self, path: str) -> None:
        def remove() -> None:
            try:
                self.fs.ftp.remove(path)
            except FileNotFoundError:
                pass

        self.fs.call("remove", path, remove)


class S3LockStore(LockStore):
    """Conditional writes: ``If-None-Match: *`` to create, ``If-Match: <ETag>`` to swap."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        bucket, key = path.split("/", 1)
        return bucket, key

    def _put(self, path: str, data: bytes, **condition: str) -> Any | None:
        bucket, key = self._split(path)
        try:
            reply = self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        except FileNotFoundError:
            return None  # If-Match on a lock that is gone: it is not ours any more
        except Exception as exc:
            if _precondition_failed(exc):
                return None
            raise
        return reply.get("ETag")

    def create(self, path: str, data: bytes) -> Any | None:
        return self._put(path, data, IfNoneMatch="*")

    def swap(self, path: str, version: Any, data: bytes) -> Any | None:
        if version is None:
            return None
        return self._put(path, data, IfMatch=version)

    def read(self, path: str) -> tuple[bytes, Any] | None:
        # The ETag first, then the bytes: if the lock changes in between, the bytes are newer than
        # the ETag, and a swap against that older ETag fails, so nothing is ever replaced wrongly.
        try:
            self.fs.invalidate_cache(path)
            etag = self.fs.info(path).get("ETag")
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return data, etag

    def delete(self, path: str, version: Any) -> None:
        # Checked, then deleted: S3 general purpose buckets have no conditional delete everywhere,
        # so a takeover in between is possible, but only of a lock that went stale meanwhile.
        found = self.read(path)
        if found is not None and found[1] == version:
            bucket, key = self._split(path)
            self.fs.call_s3("delete_object", Bucket=bucket, Key=key)


def _precondition_failed(exc: BaseException) -> bool:
    """Whether S3 refused a conditional write (412, or 409 for a concurrent conditional write)."""
    for error in (exc, exc.__cause__, exc.__context__):
        if error is None:
            continue
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code"))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409") or status in (412, 409):
                return True
        if "PreconditionFailed" in str(error) or "ConditionalRequestConflict" in str(error):
            return True
    return False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class DatasetLock:
    """The lock of one recipe on one dataset, held by this process until :meth:`release`."""

    def __init__(self, store: LockStore, root: str, display: str, recipe_name: str, ttl_s: float) -> None:
        self.store = store
        self.path = f"{root.rstrip('/')}/{LOCK_DIR}/{recipe_name}.json"
        self.where = f"{display.rstrip('/')}/{LOCK_DIR}/{recipe_name}.json"
        self.recipe_name = recipe_name
        self.ttl_s = ttl_s
        self.holder: Any = None
        self.acquired_at: str | None = None
        self.version: Any = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    # the lock's content --------------------------------------------------------------------
    def _payload(self) -> bytes:
        return json.dumps(
            {
                "recipe_name": self.recipe_name,
                "holder": self.holder.to_dict(),
                "acquired_at": self.acquired_at,
                "renewed_at": _now().isoformat(),
                "ttl_s": self.ttl_s,
                "nonce": secrets.token_hex(8),  # every write differs, so a version is never reused
            },
            sort_keys=True,
        ).encode("utf-8")

    def _other_holder(self, data: bytes) -> tuple[Any, bool]:
        """The holder named in ``data`` and whether that lock is stale."""
        from dataloader.run.ledger import LeaseHolder, holder_is_dead

        try:
            content = json.loads(data.decode("utf-8"))
            holder = LeaseHolder.from_dict(content["holder"])
            renewed = dt.datetime.fromisoformat(content["renewed_at"])
            ttl = float(content.get("ttl_s") or self.ttl_s)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None, False  # unreadable (a crash mid-create, or a stranger's file): judged by age below
        expired = (_now() - renewed).total_seconds() > ttl
        return holder, expired or holder_is_dead(holder)

    # acquire / renew / release -------------------------------------------------------------
    def acquire(self, holder: Any) -> None:
        """Take the lock or raise LeaseHeldError at once; never wait."""
        from dataloader.errors import LeaseHeldError

        self.holder, self.acquired_at = holder, _now().isoformat()
        for _ in range(3):  # a lock released or taken over between our steps: look again
            payload = self._payload()
            version = self._call("create", lambda p=payload: self.store.create(self.path, p))
            if version is not None:
                break
            found = self._call("read", lambda: self.store.read(self.path))
            if found is None:
                continue
            data, seen = found
            other, stale = self._other_holder(data)
            if other is None and data:
                raise ConnectorError(
                    f"the dataset lock {self.where} is not a dataloader lock; remove it if no run is writing",
                    file=self.where,
                )
            if not stale:
                raise LeaseHeldError(
                    self.recipe_name, other, where=self.where,
                    hint=f"if that run is gone, its lock expires {self.ttl_s:g}s after its last renewal, "
                    f"or delete {self.where}",
                )
            payload = self._payload()
            version = self._call("take over", lambda p=payload, s=seen: self.store.swap(self.path, s, p))
            if version is not None:
                log.warning("took over the stale dataset lock %s of %s", self.where, other.describe() if other else "?")
                break
        else:
            raise LeaseHeldError(self.recipe_name, None, where=self.where)
        self.version, self.lost = version, False
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="dataloader-dataset-lock", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        with self._guard:
            if self.version is None or self.lost:
                return
            payload = self._payload()
            version = self._call("renew", lambda: self.store.swap(self.path, self.version, payload))
            if version is None:
                self.lost = True
                log.error("the dataset lock %s was taken over by another run", self.where)
            else:
                self.version = version

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.renew()
            except Exception as exc:  # a renewal that fails is retried at the next tick
                log.warning("could not renew the dataset lock %s: %s", self.where, exc)

    def check(self) -> None:
        """Before a commit: refuse to publish if another run took the lock over."""
        if self.lost:
            from dataloader.errors import LeaseLostError

            raise LeaseLostError(
                f"the dataset lock {self.where} was taken over by another run (this run did not renew it within "
                f"{self.ttl_s:g}s); nothing more was published. Raise the destination's lock_ttl_s if runs stall that long",
                file=self.where,
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._guard:
            if self.version is None:
                return
            version, self.version = self.version, None
            try:
                if not self.lost:
                    self.store.delete(self.path, version)
                    self.store.tidy(self.path)
            except Exception as exc:  # the lock then expires after ttl_s
                log.warning("could not release the dataset lock %s: %s", self.where, exc)

    def _call(self, what: str, func: Any) -> Any:
        from dataloader_filestore.filesystems import io_error

        try:
            return func()
        except ConnectorError:
            raise
        except Exception as exc:
            raise io_error(exc, f"cannot {what} the dataset lock {self.where}: {exc}", file=self.where) from exc


def lock_store(fs: Any, backend: str) -> LockStore:
    if backend == "s3":
        return S3LockStore(fs)
    if backend == "sftp":
        return SFTPLockStore(fs)
    return LocalLockStore()
