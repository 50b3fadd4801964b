"""``dataloader render --explain``: where each resolved value of a recipe came from.

For every scalar of the resolved recipe: the file and line in the ``extends`` chain that set it
last, and, for a value rendered from a template, the ``env_var``/``var`` it read and whether that
was set or its default was used. Values are shown masked, as ``render`` shows them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dataloader.recipe.check import Checked, leaves, template_calls, value_at


@dataclass
class Provenance:
    """One resolved value and where it came from."""

    key: str
    value: Any
    file: str
    line: int | None
    rendered_from: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        sources = "; ".join(_describe_source(item) for item in self.rendered_from)
        return f"{self.key}: {json.dumps(self.value, default=str)}  <- {where}" + (f", {sources}" if sources else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain(checked: Checked, masked: Mapping[str, Any], *, vars: Mapping[str, Any], env: Mapping[str, str]) -> list[Provenance]:
    """The provenance of every scalar in ``masked`` (the resolved recipe with secrets masked)."""
    lines = []
    for key, value in leaves(dict(masked)):
        file, line = checked.origins.locate(key)
        raw = value_at(checked.merged, key)
        sources = []
        if isinstance(raw, str):
            for function, name in template_calls(raw):
                given = name in (env if function == "env_var" else vars)
                sources.append({"function": function, "name": name, "set": given})
            if "recipe.name" in raw:
                sources.append({"function": "recipe.name", "name": "name", "set": True})
        lines.append(Provenance(key, value, file, line, sources))
    return lines


def _describe_source(item: dict[str, Any]) -> str:
    function, name = item["function"], item["name"]
    if function == "recipe.name":
        return "the recipe's name"
    label = f"env_var {name}" if function == "env_var" else f"var {name}"
    if item["set"]:
        return label + (" (set)" if function == "env_var" else " (--var)")
    return label + " (not set: the default)"


__all__ = ["Provenance", "explain"]
