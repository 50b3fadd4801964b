"""The dataset manifest: which part files are committed, and the state committed with them.

``<dataset>/_dataloader_manifest.json``::

    {"version": 1, "format": "parquet",
     "parts": [{"name": "part-<run_id>-00000.parquet", "rows": 1000, "run_id": "..."}],
     "states": {"<recipe>": {"run_id": "...", "state": {...}, "committed_at": "..."}},
     "updated_at": "..."}

A commit writes a new manifest under a temporary name and renames it over the old one, so a
reader sees the old list of parts or the new one, never a mix. One writer per dataset at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from dataloader.errors import ConnectorError

MANIFEST_NAME = "_dataloader_manifest.json"
MANIFEST_VERSION = 1


@dataclass
class Manifest:
    format: str | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, Any] = field(default_factory=dict)
    updated_at: str | None = None

    def part_names(self) -> list[str]:
        return [part["name"] for part in self.parts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "format": self.format,
            "parts": self.parts,
            "states": self.states,
            "updated_at": self.updated_at,
        }


def manifest_path(root: str) -> str:
    return f"{root.rstrip('/')}/{MANIFEST_NAME}"


def read_manifest(fs: Any, root: str) -> Manifest | None:
    """The committed manifest of the dataset at ``root``, or None when there is none."""
    path = manifest_path(root)
    try:
        with fs.open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConnectorError(
            f"cannot read the dataset manifest {path}: {exc}; restore it or remove the dataset directory",
            file=path,
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("parts"), list):
        raise ConnectorError(f"the dataset manifest {path} is not a dataloader manifest", file=path)
    return Manifest(
        format=data.get("format"),
        parts=[p for p in data["parts"] if isinstance(p, dict) and "name" in p],
        states=data.get("states") or {},
        updated_at=data.get("updated_at"),
    )


def write_manifest(fs: Any, root: str, manifest: Manifest, temp_name: str) -> None:
    """Replace the manifest atomically: write ``temp_name`` in the dataset, then rename it."""
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
