"""Writing a dataset directory: part files, published all at once by the manifest.

A run writes ``.tmp-<run_id>-<NNNNN><ext>`` files, starting a new one every
``max_rows_per_file`` rows. ``commit`` finishes them, renames them to
``part-<run_id>-<NNNNN><ext>`` and then replaces ``_dataloader_manifest.json`` (temporary file +
rename). The manifest is what readers go by: ``append`` lists the old parts plus the new ones,
``overwrite`` only this run's parts (old parts are deleted after the manifest is replaced).
``abort`` deletes the files of the uncommitted checkpoint; the manifest stays as it was.

A run may commit several times (one commit per checkpoint; the engine calls ``begin`` again
after each). One writer serves them all, so part numbers keep counting up; a retried attempt of
the same run (a new writer) starts after the highest number any file of this run already has in
the directory. So a part name is never reused within a run, and a commit never renames a new
part over one an earlier checkpoint published.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from typing import Any

import pyarrow as pa
from dataloader.errors import ConnectorError

from dataloader_filestore.compression import EXTENSION_OF, detect, open_writer
from dataloader_filestore.filesystems import io_error
from dataloader_filestore.manifest import Manifest, fsync, read_manifest, write_manifest
from dataloader_filestore.source import conform

log = logging.getLogger("dataloader.filestore")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class _Part:
    """One part file being written."""

    def __init__(self, temp: str, final: str) -> None:
        self.temp, self.final = temp, final
        self.rows = 0
        self.raw: Any = None
        self.stream: Any = None
        self.writer: Any = None

    def finish(self) -> None:
        self.writer.close()
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.flush()
        fsync(self.raw)
        self.raw.close()

    def discard(self) -> None:
        # Remote write handles (S3, SFTP) have discard(): abort the upload instead of publishing it.
        raw_discard = getattr(self.raw, "discard", None)
        for handle in (self.writer, self.stream, self.raw):
            try:
                if handle is None:
                    continue
                if handle is self.raw and callable(raw_discard):
                    raw_discard()
                else:
                    handle.close()
            except Exception:  # the part is being thrown away; its handles may already be broken
                pass


class DatasetWriter:
    """The write side of one run against the dataset at ``root``."""

    def __init__(
        self, fs: Any, root: str, fmt: Any, *, format_name: str, compression: str | None,
        max_rows_per_file: int, recipe_name: str, run_id: str, display: str,
    ) -> None:
        self.fs, self.root, self.fmt = fs, root.rstrip("/"), fmt
        self.format_name = format_name
        self.codec = detect("", compression) if getattr(fmt, "compressible", True) else None
        self.max_rows = max_rows_per_file
        self.recipe_name = recipe_name
        self.run_id = run_id
        self.run_tag = _UNSAFE.sub("_", run_id)
        self.display = display
        self.extension = getattr(fmt, "file_extension", None) or fmt.extensions[0]
        if self.codec:
            self.extension += EXTENSION_OF[self.codec]
        self.mode = "append"
        self.schema: pa.Schema | None = None
        #: Parts of the checkpoint being written (not committed yet).
        self.parts: list[_Part] = []
        self.current: _Part | None = None
        self.previous: Manifest | None = None
        self.next_number: int | None = None
        self.started = False

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def begin(self, schema: pa.Schema | None, mode: str) -> None:
        """Start a run, or (called again after a checkpoint's commit) the run's next checkpoint."""
        if self.started:
            if schema is not None and self.schema is None:
                self.schema = schema
            return
        self.mode, self.schema = mode, schema
        try:
            if self.fs.exists(self.root) and self.fs.info(self.root).get("type") != "directory":
                raise ConnectorError(
                    f"destination path {self.display} is a file; a filestore destination is a directory of part files",
                    path=self.display,
                )
            self.fs.makedirs(self.root, exist_ok=True)
        except ConnectorError:
            raise
        except Exception as exc:
            raise io_error(exc, f"cannot create the dataset directory {self.display}: {exc}", path=self.display) from exc
        self.previous = read_manifest(self.fs, self.root, self.display)
        if self.previous is not None and self.previous.format not in (None, self.format_name):
            raise ConnectorError(
                f"{self.display} holds a {self.previous.format} dataset; write {self.format_name} to another path",
                path=self.display,
            )
        self.next_number = self._first_free_number()
        self.started = True

    def _first_free_number(self) -> int:
        """One past the highest part number any file of this run has here (a retried attempt's start)."""
        pattern = re.compile(rf"^(?:part-|\.tmp-){re.escape(self.run_tag)}-(\d+)")
        names = list(self.previous.part_names()) if self.previous is not None else []
        try:
            names += [path.rsplit("/", 1)[-1] for path in self.fs.glob(f"{self.root}/*")]
        except Exception as exc:
            raise io_error(exc, f"cannot list the dataset directory {self.display}: {exc}", path=self.display) from exc
        numbers = [int(match.group(1)) for match in map(pattern.match, names) if match]
        return max(numbers) + 1 if numbers else 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self.schema is None:
            self.schema = batch.schema
        elif not batch.schema.equals(self.schema):
            batch = conform(batch, self.schema, what="a batch of this run", reference="the run's first batch")
        offset = 0
        while offset < batch.num_rows:
            part = self.current or self._open_part()
            take = min(batch.num_rows - offset, self.max_rows - part.rows)
            try:
                part.writer.write(batch.slice(offset, take))
            except ConnectorError:
                raise
            except Exception as exc:
                raise io_error(exc, f"cannot write {self.display}/{part.temp}: {exc}", file=part.temp) from exc
            part.rows += take
            offset += take
            if part.rows >= self.max_rows:
                self._finish_current()

    def _open_part(self) -> _Part:
        number = self.next_number or 0
        self.next_number = number + 1
        part = _Part(f".tmp-{self.run_tag}-{number:05d}{self.extension}", f"part-{self.run_tag}-{number:05d}{self.extension}")
        self.parts.append(part)
        try:
            part.raw = self.fs.open(self.path(part.temp), "wb")
            part.stream = open_writer(part.raw, self.codec)
            part.writer = self.fmt.writer(part.stream, self.schema)
        except ConnectorError:
            raise
        except Exception as exc:
            raise io_error(exc, f"cannot create {self.display}/{part.temp}: {exc}", file=part.temp) from exc
        self.current = part
        return part

    def _finish_current(self) -> None:
        if self.current is not None:
            part, self.current = self.current, None
            try:
                part.finish()
            except Exception as exc:
                raise io_error(exc, f"cannot finish {self.display}/{part.temp}: {exc}", file=part.temp) from exc

    def commit(self, record: dict[str, Any]) -> None:
        """Publish this checkpoint's parts, and ``record`` (the commit record) with them.

        When the manifest's rename fails, the outcome can be unknown (a reply lost after the
        server renamed it): the manifest is read back, and if it is ours the commit happened.
        """
        self._finish_current()
        self._check_unchanged()
        manifest = self._next_manifest(record)
        try:
            for part in self.parts:
                self.fs.mv(self.path(part.temp), self.path(part.final))
            write_manifest(self.fs, self.root, manifest, f".tmp-manifest-{self.run_tag}.json", self.display)
        except ConnectorError:
            raise
        except Exception as exc:
            if not self._is_current(manifest):
                raise io_error(exc, f"cannot commit the dataset {self.display}: {exc}", path=self.display) from exc
            log.warning("the commit to %s reported %s, but its manifest is in place: committed", self.display, exc)
        self.previous = manifest
        self.parts = []
        self._clean_up(manifest)

    def _is_current(self, manifest: Manifest) -> bool:
        try:
            current = read_manifest(self.fs, self.root, self.display)
        except ConnectorError:
            return False
        return current is not None and current.identity() == manifest.identity()

    def _check_unchanged(self) -> None:
        """Refuse to publish over a manifest another run committed since ``begin`` (its parts would be lost)."""
        current = read_manifest(self.fs, self.root, self.display)
        seen = self.previous.identity() if self.previous is not None else None
        if (current.identity() if current is not None else None) != seen:
            raise ConnectorError(
                f"another run committed to {self.display} while this one was writing; nothing was published. "
                "Run loads into one dataset one at a time, then run this one again",
                path=self.display,
            )

    def _next_manifest(self, record: dict[str, Any]) -> Manifest:
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        old = list(self.previous.parts) if self.previous is not None else []
        # overwrite keeps only what this run committed at earlier checkpoints
        kept = old if self.mode == "append" else [p for p in old if p.get("run_id") == self.run_id]
        new = [{"name": part.final, "rows": part.rows, "run_id": self.run_id} for part in self.parts]
        states = dict(self.previous.states) if self.previous is not None else {}
        states[self.recipe_name] = record
        return Manifest(
            format=self.format_name, parts=kept + new, states=states, updated_at=now, commit_id=secrets.token_hex(8)
        )

    def new_part_names(self) -> list[str]:
        return [part.final for part in self.parts]

    def _clean_up(self, manifest: Manifest) -> None:
        """After an overwrite, delete parts no longer listed, and temporary files of dead runs."""
        listed = set(manifest.part_names())
        try:
            names = [path.rsplit("/", 1)[-1] for path in self.fs.glob(f"{self.root}/*")]
        except Exception as exc:  # the commit already happened; leftovers are only untidy
            log.warning("could not list %s to clean up: %s", self.display, exc)
            return
        stale = [
            name for name in names
            if (name.startswith(".tmp-") or (self.mode == "overwrite" and name.startswith("part-"))) and name not in listed
        ]
        for name in stale:
            try:
                self.fs.rm(self.path(name))
            except Exception as exc:
                log.warning("could not delete %s/%s: %s", self.display, name, exc)

    def abort(self) -> None:
        """Delete the uncommitted checkpoint's files; what earlier checkpoints published stays."""
        if self.current is not None:
            self.current.discard()
            self.current = None
        for part in self.parts:
            for name in (part.temp, part.final):
                try:
                    if self.fs.exists(self.path(name)):
                        self.fs.rm(self.path(name))
                except Exception as exc:
                    log.warning("could not delete %s/%s: %s", self.display, name, exc)
        self.parts = []


def load_committed_state(fs: Any, root: str, recipe_name: str, display: str | None = None) -> dict[str, Any] | None:
    """The commit record stored in the manifest for ``recipe_name`` (older manifests: run id and state)."""
    manifest = read_manifest(fs, root.rstrip("/"), display)
    if manifest is None:
        return None
    entry = manifest.states.get(recipe_name)
    if not isinstance(entry, dict):
        return None
    return {
        "recipe_name": entry.get("recipe_name") or recipe_name,
        "run_id": entry.get("run_id"),
        "state": entry.get("state") or {},
        "published": entry.get("published") or {},
        "committed_at": entry.get("committed_at") or manifest.updated_at,
    }
