"""Deep merge of a recipe with its parents, and ``delete:`` paths.

The rules are the contract's: scalars override, dicts merge key by key, ``transform.steps``
concatenate (parent's first, so a child adds steps after the ones it inherits), every other list is
replaced by the child's.
"""

from __future__ import annotations

import copy
from typing import Any

#: Dotted paths of lists that concatenate instead of being replaced.
CONCATENATED_LISTS = frozenset({"transform.steps"})


def deep_merge(parent: dict[str, Any], child: dict[str, Any], _prefix: str = "") -> dict[str, Any]:
    """A new dict: ``child`` laid over ``parent``; neither input is modified."""
    merged = copy.deepcopy(parent)
    for key, value in child.items():
        path = f"{_prefix}{key}"
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = deep_merge(old, value, f"{path}.")
        elif path in CONCATENATED_LISTS and isinstance(old, list) and isinstance(value, list):
            merged[key] = old + copy.deepcopy(value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def delete_path(tree: dict[str, Any], dotted: str) -> bool:
    """Remove ``dotted`` (``a.b.c``; a number indexes a list) from ``tree``; False if it is absent."""
    parts = dotted.split(".")
    node: Any = tree
    for part in parts[:-1]:
        node = _child(node, part)
        if node is None:
            return False
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        del node[int(last)]
        return True
    return False


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None
