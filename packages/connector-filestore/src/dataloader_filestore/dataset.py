"""Writing a dataset directory: part files, published all at once by the manifest.

A run writes ``.tmp-<run_id>-<NNNNN><ext>`` files, starting a new one every
``max_rows_per_file`` rows. ``commit`` finishes them, renames them to
``part-<run_id>-<NNNNN><ext>`` and then replaces ``_dataloader_manifest.json`` (temporary file +
rename). The manifest is what readers go by: ``append`` lists the old parts plus the new ones,
``overwrite`` only the new ones (old parts are deleted after the manifest is replaced).
``abort`` deletes the run's files; the manifest, and so the dataset, stays as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import pyarrow as pa
from dataloader.errors import ConnectorError
from dataloader.state import State

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
        self.parts: list[_Part] = []
        self.current: _Part | None = None
        self.previous: Manifest | None = None
        self.published = False

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def begin(self, schema: pa.Schema | None, mode: str) -> None:
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
        self.previous = read_manifest(self.fs, self.root)
        if self.previous is not None and self.previous.format not in (None, self.format_name):
            raise ConnectorError(
                f"{self.display} holds a {self.previous.format} dataset; write {self.format_name} to another path",
                path=self.display,
            )

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
        number = len(self.parts)
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

    def commit(self, state: State) -> None:
        self._finish_current()
        self._check_unchanged()
        try:
            for part in self.parts:
                self.fs.mv(self.path(part.temp), self.path(part.final))
            manifest = self._next_manifest(state)
            write_manifest(self.fs, self.root, manifest, f".tmp-manifest-{self.run_tag}.json")
        except Exception as exc:
            raise io_error(exc, f"cannot commit the dataset {self.display}: {exc}", path=self.display) from exc
        self.published = True
        self._clean_up(manifest)

    def _check_unchanged(self) -> None:
        """Refuse to publish over a manifest another run committed since ``begin`` (its parts would be lost)."""
        current = read_manifest(self.fs, self.root)
        seen = self.previous.updated_at if self.previous is not None else None
        if (current.updated_at if current is not None else None) != seen:
            raise ConnectorError(
                f"another run committed to {self.display} while this one was writing; nothing was published. "
                "Run loads into one dataset one at a time, then run this one again",
                path=self.display,
            )

    def _next_manifest(self, state: State) -> Manifest:
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        kept = list(self.previous.parts) if self.previous is not None and self.mode == "append" else []
        new = [{"name": part.final, "rows": part.rows, "run_id": self.run_id} for part in self.parts]
        states = dict(self.previous.states) if self.previous is not None else {}
        states[self.recipe_name] = {"run_id": self.run_id, "state": state.to_dict(), "committed_at": now}
        return Manifest(format=self.format_name, parts=kept + new, states=states, updated_at=now)

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
        if self.published:
            return
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


def load_committed_state(fs: Any, root: str, recipe_name: str) -> dict[str, Any] | None:
    manifest = read_manifest(fs, root.rstrip("/"))
    if manifest is None:
        return None
    entry = manifest.states.get(recipe_name)
    if not isinstance(entry, dict):
        return None
    return {"run_id": entry.get("run_id"), "state": entry.get("state") or {}}
