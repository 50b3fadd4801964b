"""Drift between the rows a run will load and the destination's table, and what the policy does.

:func:`diff` compares two schemas column by column (portable types); :func:`decide` gives each
difference the action of the recipe's ``schema.evolution`` policy; :func:`gate` runs both at
preflight and raises before anything is written when a change is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from dataloader.errors import EngineError
from dataloader.schema import types as ptypes

ADDED, REMOVED, TYPE_CHANGED, NULLABILITY_CHANGED = "added", "removed", "type_changed", "nullability_changed"


@dataclass
class Change:
    kind: str
    column: str
    old: str | None = None
    new: str | None = None
    #: ``apply`` (auto), ``refuse``, ``warn`` (logged, rows fitted to the table), ``none`` (fits as is).
    action: str = "none"
    reason: str = ""
    ddl: str | None = None

    def describe(self) -> str:
        what = {
            ADDED: f"+ column {self.column!r} ({self.new}) added",
            REMOVED: f"- column {self.column!r} ({self.old}) removed",
            TYPE_CHANGED: f"~ column {self.column!r} type {self.old} -> {self.new}",
            NULLABILITY_CHANGED: f"~ column {self.column!r} {self.old} -> {self.new}",
        }[self.kind]
        return f"{what}: {self.action}" + (f" ({self.reason})" if self.reason else "")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


def columns_of(schema: pa.Schema) -> list[dict[str, Any]]:
    """A schema as the history stores it: ``[{name, type, nullable}]`` in portable types."""
    return [{"name": f.name, "type": ptypes.from_arrow(f.type), "nullable": bool(f.nullable)} for f in schema]


def diff(old: list[dict[str, Any]], new: list[dict[str, Any]], *, nullability: bool = True) -> list[Change]:
    """Each difference from ``old`` to ``new``: added, removed, type changed, nullability changed."""
    before = {c["name"]: c for c in old}
    after = {c["name"]: c for c in new}
    changes = [Change(ADDED, n, new=c["type"]) for n, c in after.items() if n not in before]
    changes += [Change(REMOVED, n, old=c["type"]) for n, c in before.items() if n not in after]
    for name, was in before.items():
        now = after.get(name)
        if now is None:
            continue
        if was["type"] != now["type"]:
            changes.append(Change(TYPE_CHANGED, name, old=was["type"], new=now["type"]))
        if nullability and bool(was.get("nullable", True)) != bool(now.get("nullable", True)):
            label = {True: "nullable", False: "not null"}
            changes.append(Change(NULLABILITY_CHANGED, name, old=label[bool(was.get("nullable", True))],
                                  new=label[bool(now.get("nullable", True))]))
    return changes


def decide(changes: list[Change], evolution: Any, target: str, mapping: dict[str, str] | None) -> list[Change]:
    """Give each change its action under ``evolution`` (the recipe's ``schema.evolution``), in place."""
    for change in changes:
        change.ddl = _ddl(change, target, mapping)
        if change.kind == TYPE_CHANGED and change.new == "null":
            change.action, change.reason = "none", "no values yet"
            continue
        if change.kind == TYPE_CHANGED and ptypes.holds(change.old, change.new):
            change.action, change.reason, change.ddl = "none", f"{change.new} values fit the {change.old} column", None
            continue
        if change.kind == NULLABILITY_CHANGED:
            # A column that rows may leave null where the table says not null is the table's to refuse;
            # the contract enforces declared not-null columns on every row. The table is never altered.
            change.action, change.ddl = "none", None
            change.reason = "enforced per row by the contract" if change.new == "not null" else "checked by the table"
            continue
        switch = {ADDED: "allow_new_columns", REMOVED: "allow_column_deletion", TYPE_CHANGED: "allow_type_changes"}
        allowed = getattr(evolution, switch[change.kind])
        widened = ptypes.widen(change.old, change.new) if change.kind == TYPE_CHANGED else None
        if not allowed:
            change.action, change.reason = "refuse", f"schema.evolution.{switch[change.kind]} is false"
        elif evolution.mode == "manual":
            change.action, change.reason = "refuse", "evolution mode manual changes nothing"
        elif change.kind == TYPE_CHANGED and widened is None:
            change.action = "refuse"
            change.reason = f"{change.old} and {change.new} have no common wider type; add a 'cast' transform step"
        elif evolution.mode == "warn":
            change.action = "warn"
            change.reason = {
                ADDED: "the column is not loaded",
                REMOVED: "loaded as null",
                TYPE_CHANGED: f"values are cast to {change.old}",
            }[change.kind]
        else:
            change.action = "apply"
            if change.kind == TYPE_CHANGED:
                change.new = widened
                change.ddl = _ddl(change, target, mapping)
                change.reason = f"widened to {widened}"
            elif change.kind == ADDED:
                change.reason = "added as a nullable column"
            else:
                change.reason, change.ddl = "the column stays, loaded as null", None
    return changes


def _ddl(change: Change, target: str, mapping: dict[str, str] | None) -> str | None:
    quoted = '"' + change.column.replace('"', '""') + '"'
    if change.kind == ADDED:
        return f"ALTER TABLE {target} ADD COLUMN {quoted} {ptypes.native(mapping, change.new)}"
    if change.kind == TYPE_CHANGED:
        wide = ptypes.widen(change.old, change.new) or change.new
        return f"ALTER TABLE {target} ALTER COLUMN {quoted} SET DATA TYPE {ptypes.native(mapping, wide)}"
    return None


@dataclass
class Outcome:
    """What the gate found for one run: the changes, the schema to record, what to publish."""

    target: str
    changes: list[Change] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)
    published: dict[str, Any] = field(default_factory=dict)

    @property
    def refused(self) -> list[Change]:
        return [c for c in self.changes if c.action == "refuse"]

    def report(self) -> list[str]:
        return [c.describe() for c in self.changes]


def gate(recipe: Any, destination: Any, incoming: pa.Schema, contract: Any = None) -> Outcome:
    """Compare the rows' schema with the destination's table under the recipe's policy.

    Raises :class:`EngineError` listing every difference (and the DDL that would apply it) when one
    is refused; nothing has been written then. Otherwise returns the outcome: in ``warn`` mode the
    contract step is told to fit the rows to the table.
    """
    from dataloader.schema.history import next_published

    section = recipe.schema_
    target = str(getattr(destination, "schema_target", None) or getattr(recipe.destination, "table", None) or "the destination")
    mapping = getattr(destination, "schema_types", None)
    current = _current(destination)
    new_columns = columns_of(incoming)
    outcome = Outcome(target)
    if current is not None:
        outcome.changes = decide(diff(columns_of(current), new_columns), section.evolution, target, mapping)
        if getattr(destination, "schema_ddl", True) is False:
            for change in outcome.changes:
                change.ddl = None
    if outcome.refused:
        lines = [f"schema drift between the rows and {target}:"] + ["  " + line for line in outcome.report()]
        ddl = [c.ddl for c in outcome.changes if c.ddl]
        if ddl:
            lines.append("  the DDL that would apply it (run it yourself, or set schema.evolution.mode: auto):")
            lines += [f"    {statement};" for statement in ddl]
        lines.append("  nothing was written")
        raise EngineError("\n".join(lines), changes=[c.to_dict() for c in outcome.changes], table=target)
    if current is None:
        # A table the run creates has nullable columns (destinations never create NOT NULL), so the
        # first version records them so: the next run's table then matches it.
        outcome.columns = [dict(c, nullable=True) for c in new_columns]
    else:
        outcome.columns = _applied(columns_of(current), new_columns, outcome.changes)
        if section.evolution.mode == "warn" and contract is not None and any(c.action == "warn" for c in outcome.changes):
            contract.fit_to = {f.name: f.type for f in current}
    widen = {c.column: ptypes.native(mapping, c.new) for c in outcome.changes if c.kind == TYPE_CHANGED and c.action == "apply"}
    extras = getattr(getattr(destination, "context", None), "extras", None)
    if widen and isinstance(extras, dict):
        # A destination that does not widen by itself (postgres) alters these columns in the run's transaction.
        extras["schema_widen"] = widen
    outcome.published = next_published(destination, recipe.name, target, outcome)
    return outcome


def _applied(old: list[dict[str, Any]], new: list[dict[str, Any]], changes: list[Change]) -> list[dict[str, Any]]:
    """The table's columns after the run: the old ones, widened, plus the applied additions."""
    widened = {c.column: c.new for c in changes if c.kind == TYPE_CHANGED and c.action == "apply"}
    added = {c.column for c in changes if c.kind == ADDED and c.action == "apply"}
    result = [dict(c, type=widened.get(c["name"], c["type"])) for c in old]
    result += [dict(c, nullable=True) for c in new if c["name"] in added]
    return result


def _current(destination: Any) -> pa.Schema | None:
    reader = getattr(destination, "current_schema", None)
    if callable(reader):
        return reader()
    return None


__all__ = ["ADDED", "REMOVED", "TYPE_CHANGED", "NULLABILITY_CHANGED", "Change", "Outcome", "columns_of", "decide", "diff", "gate"]
