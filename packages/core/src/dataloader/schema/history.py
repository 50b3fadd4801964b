"""Schema versions, kept in the destination's commit record (``published["schema_versions"]``).

Each commit carries the whole (small) list forward, so the versions live and die with the rows'
own commits; a new version is added when a run's table columns differ from the latest one.
"""

from __future__ import annotations

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


__all__ = ["committed_versions", "next_published"]
