"""Validation errors in our words: pydantic's messages rewritten, unknown keys with a suggestion.

Shared by recipe validation and by every plugin section the core validates (quality checks,
executors), so a message reads the same wherever the key is.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel


def pydantic_error_message(error: Any, model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        if parent is not None:
            return unknown_key_message(str(loc[-1]) if loc else "", field_names(parent))
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"]
    for prefix in _PYDANTIC_PREFIXES:  # our words, not pydantic's: the reason alone
        if message.startswith(prefix):
            message = message[len(prefix) :]
    message = message[:1].lower() + message[1:]
    if kind not in ("model_type", "dict_type") and "input" in error and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return message


_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def pydantic_message(error: Any, model: type[BaseModel] | None = None) -> str:
    """One pydantic error in our words (``unknown key; did you mean ...``, no "Value error, ")."""
    return pydantic_error_message(error, model, tuple(error["loc"]))


def unknown_key_message(key: str, allowed: list[str]) -> str:
    """``unknown key; did you mean 'host'? (allowed: ...)``, the suggestion only when one is close."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key{hint} (allowed: {', '.join(allowed)})"


def field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested model class at ``loc`` inside ``model``, when the annotations make it plain."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return annotation


__all__ = ["field_names", "pydantic_error_message", "pydantic_message", "unknown_key_message"]
