"""Relative data paths in a recipe resolve against the recipe file, as ``extends:`` does.

A connector's config model names the keys that hold local paths in ``recipe_paths`` (a class
attribute of :class:`dataloader.config.ConnectorConfig`; the filestore connector lists ``path``,
the DuckDB connector ``database``). After templates are rendered, a relative value of such a key
becomes ``<folder of the recipe file that set the key>/<value>``, so a recipe runs the same from any
working directory. Left as they are: absolute paths, URLs (``s3://...``, ``sftp://...``), DuckDB's
``:memory:``, values that are not strings, and recipes built from a mapping without a file
(``Recipe.from_dict`` without ``path``: relative to the working directory, as before).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from dataloader.plugins import Registry

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def resolve_recipe_paths(tree: dict[str, Any], origins: Any, registry: Registry) -> dict[str, Any]:
    """A copy of ``tree`` whose connector path keys are anchored at the files that set them."""
    out = dict(tree)
    for role in ("source", "destination"):
        section = tree.get(role)
        if not isinstance(section, dict) or not isinstance(section.get("type"), str):
            continue
        try:
            config = registry.get("connector", section["type"]).config
        except Exception:  # an unknown connector is reported by validation, with its suggestions
            continue
        choose = getattr(config, "local_path_keys", None)
        keys = choose(section) if callable(choose) else ()
        if not keys:
            continue
        section = dict(section)
        for key in keys:
            value = section.get(key)
            if not is_relative_local(value):
                continue
            file, _ = origins.locate(f"{role}.{key}")
            if file == "<recipe>":
                continue
            section[key] = os.path.normpath(Path(file).parent / value)
        out[role] = section
    return out


def is_relative_local(value: Any) -> bool:
    """A non-empty string naming a relative local path (not a URL, not ``:memory:``)."""
    if not isinstance(value, str) or not value or value.startswith(":") or _URL.match(value):
        return False
    return not Path(os.path.expanduser(value)).is_absolute() and not value.startswith("~")


__all__ = ["is_relative_local", "resolve_recipe_paths"]
