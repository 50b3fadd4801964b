"""Finding a format by name in the core registry and building it from the recipe's ``options``."""

from __future__ import annotations

from typing import Any

from dataloader.errors import ConnectorError, PluginError
from pydantic import BaseModel, ValidationError


def validate_options(name: str, options: dict[str, Any]) -> BaseModel | dict[str, Any]:
    """The format's options model built from ``options``; a ValueError names each bad key.

    Raised as ValueError so that pydantic reports it under the recipe key, at ``validate`` time.
    """
    from dataloader.plugins import active_registry

    try:
        registration = active_registry().get("format", name)
    except PluginError as exc:
        raise ValueError(str(exc)) from None
    model = registration.config
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return dict(options)
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"options.{'.'.join(str(p) for p in error['loc']) or '?'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ValueError(f"invalid options for format '{name}': {problems}") from None


def build_format(name: str, options: dict[str, Any], registry: Any = None) -> Any:
    """The format object for ``name``, ready to read and write, from ``registry`` (the run's) if given."""
    from dataloader.plugins import active_registry, using_registry

    registry = registry or active_registry()
    try:
        registration = registry.get("format", name)
        with using_registry(registry):
            validated = validate_options(name, options)
    except (PluginError, ValueError) as exc:
        raise ConnectorError(str(exc), format=name) from exc
    return registration.build(validated)
