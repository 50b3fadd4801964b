"""The dataset manifest: which part files are committed, and the commit record stored with them.

``<dataset>/_dataloader_manifest.json``::

    {"version": 1, "format": "parquet", "commit_id": "<random hex>",
     "parts": [{"name": "part-<run_id>-00000.parquet", "rows": 1000, "run_id": "..."}],
     "states": {"<recipe>": {"recipe_name": "...", "run_id": "...", "state": {...},
                             "published": {...}, "committed_at": "..."}},
     "updated_at": "..."}

A commit writes a new manifest under a temporary name and renames it over the old one, so a
reader sees the old list of parts or the new one, never a mix. One writer per dataset at a time
(the dataset lock, ``locks.py``). ``commit_id`` is new for every commit: a writer compares it
to tell whether another run committed meanwhile, and whether its own rename happened after an
error that left the outcome unknown.

Part names are checked whenever a manifest is read or written: a name must be one this
connector writes (``part-<run tag>-<number><extension>``: no path separator, no ``..``, nothing
absolute), and no name may be listed twice. A manifest that breaks either rule was not written
by this connector, and following it could read a file outside the dataset, or a part twice.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from dataloader.errors import ConnectorError

MANIFEST_NAME = "_dataloader_manifest.json"
MANIFEST_VERSION = 1

#: Every name ``DatasetWriter`` gives a committed part: ``part-<run tag>-<NNNNN><extension>``.
PART_NAME = re.compile(r"^part-[A-Za-z0-9_.-]+-\d{5,}(\.[A-Za-z0-9]+)+$")


@dataclass
class Manifest:
    format: str | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, Any] = field(default_factory=dict)
    updated_at: str | None = None
    commit_id: str | None = None

    def part_names(self) -> list[str]:
        return [part["name"] for part in self.parts]

    def identity(self) -> tuple[str | None, str | None]:
        """What changes with every commit (manifests before ``commit_id`` have only the time)."""
        return self.commit_id, self.updated_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "format": self.format,
            "commit_id": self.commit_id,
            "parts": self.parts,
            "states": self.states,
            "updated_at": self.updated_at,
        }


def manifest_path(root: str) -> str:
    return f"{root.rstrip('/')}/{MANIFEST_NAME}"


def check_part_names(names: list[Any], where: str) -> None:
    """Raise ConnectorError naming ``where`` unless every name is a safe part name, listed once."""
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not PART_NAME.match(name) or ".." in name:
            raise ConnectorError(
                f"the dataset manifest {where} lists the part {name!r}, which is not a part name this connector "
                "writes (part-<run>-<number>.<ext>, inside the dataset directory); the manifest was edited or "
                "written by another tool: restore it, or load into a new dataset path",
                file=where,
                part=str(name),
            )
        if name in seen:
            raise ConnectorError(
                f"the dataset manifest {where} lists the part {name!r} twice; its rows would be read twice. "
                "Restore the manifest from a backup, or rebuild the dataset with write_mode: overwrite",
                file=where,
                part=name,
            )
        seen.add(name)


def read_manifest(fs: Any, root: str, display: str | None = None) -> Manifest | None:
    """The committed manifest of the dataset at ``root``, or None when there is none."""
    path = manifest_path(root)
    shown = manifest_path(display) if display else path
    try:
        with fs.open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConnectorError(
            f"cannot read the dataset manifest {shown}: {exc}; restore it or remove the dataset directory",
            file=shown,
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("parts"), list):
        raise ConnectorError(f"the dataset manifest {shown} is not a dataloader manifest", file=shown)
    parts = data["parts"]
    if not all(isinstance(part, dict) and "name" in part for part in parts):
        raise ConnectorError(
            f"the dataset manifest {shown} has a part entry without a name; restore it or remove the dataset directory",
            file=shown,
        )
    check_part_names([part["name"] for part in parts], shown)
    return Manifest(
        format=data.get("format"),
        parts=parts,
        states=data.get("states") or {},
        updated_at=data.get("updated_at"),
        commit_id=data.get("commit_id"),
    )


def write_manifest(fs: Any, root: str, manifest: Manifest, temp_name: str, display: str | None = None) -> None:
    """Replace the manifest atomically: write ``temp_name`` in the dataset, then rename it.

    Refuses (before writing anything) a manifest whose part names break the rules above.
    """
    check_part_names(manifest.part_names(), manifest_path(display) if display else manifest_path(root))
    payload = json.dumps(manifest.to_dict(), indent=2, sort_keys=True, default=str).encode("utf-8")
    temp = f"{root.rstrip('/')}/{temp_name}"
    with fs.open(temp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        fsync(handle)
    fs.mv(temp, manifest_path(root))


def fsync(handle: Any) -> None:
    """Best effort: local files reach the disk before they are renamed; remote stores have no fsync."""
    try:
        os.fsync(handle.fileno())
    except Exception:  # fsspec files without a descriptor raise assorted errors: nothing to sync then
        pass
