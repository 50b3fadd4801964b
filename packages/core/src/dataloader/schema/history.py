"""Schema versions, kept in the destination's commit record (``published["schema_versions"]``).

Each commit carries the whole (small) list forward, so the versions live and die with the rows'
own commits; a new version is added when a run's table columns differ from the latest one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dataloader.run.ledger import utc_now


def committed_versions(destination: Any, recipe_name: str) -> list[dict[str, Any]]:
    loader = getattr(destination, "load_committed_state", None)
    if not callable(loader):
        return []
    record = loader(recipe_name) or {}
    return list((record.get("published") or {}).get("schema_versions") or [])


def next_published(destination: Any, recipe_name: str, target: str, outcome: Any) -> dict[str, Any]:
    """What the run's commits publish about the schema: the version list, with this run's if new."""
    versions = committed_versions(destination, recipe_name)
    latest = versions[-1] if versions else None
    if latest is None or latest.get("columns") != outcome.columns or latest.get("table") != target:
        run_id = getattr(getattr(destination, "context", None), "run_id", None)
        versions.append(
            {
                "version": (latest or {}).get("version", 0) + 1,
                "table": target,
                "run_id": run_id,
                "at": utc_now(),
                "columns": outcome.columns,
                "changes": [c.to_dict() for c in outcome.changes if c.action in ("apply", "warn")],
            }
        )
    return {"schema_versions": versions}


def mirror_path(directory: str | os.PathLike[str], recipe_name: str) -> Path:
    """The local mirror of ``recipe_name``'s versions: ``<directory>/schema/<recipe_name>.json``."""
    return Path(directory) / "schema" / f"{recipe_name}.json"


def write_mirror(directory: str | os.PathLike[str], recipe_name: str, versions: list[dict[str, Any]]) -> Path:
    """Replace the mirror with ``versions`` atomically (a private temp file, then ``os.replace``)."""
    path = mirror_path(directory, recipe_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(versions, handle, indent=2, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_mirror(directory: str | os.PathLike[str], recipe_name: str) -> list[dict[str, Any]] | None:
    """The mirrored versions, or ``None`` when there is no (readable) mirror."""
    try:
        data = json.loads(mirror_path(directory, recipe_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return list(data) if isinstance(data, list) else None


__all__ = ["committed_versions", "next_published", "mirror_path", "write_mirror", "read_mirror"]
