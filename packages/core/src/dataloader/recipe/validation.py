"""Validating a merged, rendered recipe tree: every problem collected, each with its key path.

A recipe with several mistakes reports them all at once (``dataloader validate`` prints one line
per problem) rather than making the author fix them one run at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from dataloader.config import MERGE_KEYS_NEEDED, ConnectorConfig, supported_write_modes
from dataloader.connector import Capabilities
from dataloader.errors import PluginError
from dataloader.plugins import Registry
from dataloader.recipe.messages import field_names, pydantic_error_message, unknown_key_message
from dataloader.recipe.models import (
    NAME_PATTERN,
    TOP_LEVEL_KEYS,
    RuntimeConfig,
    StateConfig,
    StepConfig,
    TransformConfig,
)


@dataclass
class Problems:
    """Problems found so far, as ``(key_path, message)``; files and lines are added by the caller."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))

    def extend_from(self, exc: ValidationError, prefix: str, model: type[BaseModel] | None) -> None:
        for error in exc.errors(include_url=False):
            loc = [str(part) for part in error["loc"]]
            key = ".".join([prefix, *loc]) if prefix else ".".join(loc)
            self.add(key, pydantic_error_message(error, model, error["loc"]))


def validate_tree(tree: dict[str, Any], registry: Registry) -> tuple[dict[str, Any], Problems]:
    """Check ``tree``; returns the keyword arguments for :class:`Recipe` and the problems found.

    Plugin models that look up other plugins (a file format's options) see ``registry`` through
    :func:`dataloader.plugins.active_registry`.
    """
    from dataloader.plugins import using_registry

    with using_registry(registry):
        return _validate_tree(tree, registry)


def _validate_tree(tree: dict[str, Any], registry: Registry) -> tuple[dict[str, Any], Problems]:
    problems = Problems()
    fields: dict[str, Any] = {}
    for key in tree:
        if key not in TOP_LEVEL_KEYS:
            problems.add(str(key), unknown_key_message(str(key), [*TOP_LEVEL_KEYS, "extends", "delete"]))
    name = tree.get("name")
    if name is None:
        problems.add("name", "required key is missing")
    elif not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        problems.add("name", f"must be letters, digits, '_', '.' or '-' (got {name!r})")
    else:
        fields["name"] = name
    if "description" in tree:
        if tree["description"] is not None and not isinstance(tree["description"], str):
            problems.add("description", "must be a string")
        else:
            fields["description"] = tree["description"]
    for role in ("source", "destination"):
        config = _connector(tree, role, registry, problems)
        if config is not None:
            fields[role] = config
    fields["transform"] = _transform(tree.get("transform"), registry, problems)
    fields["runtime"] = _runtime(tree.get("runtime"), registry, problems)
    runtime, destination = fields["runtime"], fields.get("destination")
    if runtime is not None and runtime.checkpoint_every and getattr(destination, "write_mode", None) == "overwrite":
        problems.add(
            "runtime.checkpoint_every",
            "an overwrite publishes all rows at once, so it cannot checkpoint; use write_mode append or merge, "
            "or remove checkpoint_every",
        )
    _check_checkpoints(tree, runtime, registry, problems)
    checks = tree.get("quality_checks", [])
    if checks is None:
        checks = []
    if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
        problems.add("quality_checks", "must be a list of mappings")
    else:
        from dataloader.quality import validate_checks

        for key, message in validate_checks(checks, registry)[1]:
            problems.add(key, message)
        fields["quality_checks"] = checks
    if tree.get("state") is not None:
        fields["state"] = _state(tree["state"], registry, problems)
    if tree.get("schema") is not None:
        from dataloader.recipe.models import SchemaSection

        fields["schema_"] = _model(SchemaSection, tree["schema"], "schema", problems)
    return fields, problems


def _runtime(section: Any, registry: Registry, problems: Problems) -> RuntimeConfig | None:
    """The core's runtime keys, plus the selected executor's own keys checked by its config model."""
    if not isinstance(section, dict):
        return _model(RuntimeConfig, section, "runtime", problems)
    known = set(RuntimeConfig.model_fields) - {"executor_config"}
    core = {k: v for k, v in section.items() if k in known}
    rest = {k: v for k, v in section.items() if k not in known}
    name = core.get("executor", "local")
    executor_config = None
    try:
        registration = registry.get("executor", str(name))
    except PluginError as exc:
        problems.add("runtime.executor", str(exc))
        registration = None
    if registration is not None and isinstance(registration.config, type) and issubclass(registration.config, BaseModel):
        found = Problems()
        executor_config = _model(registration.config, rest, "runtime", found)
        allowed = [k for k in field_names(RuntimeConfig) if k != "executor_config"] + field_names(registration.config)
        for key, message in found.items:  # an unknown key is unknown to both models: list both
            if message.startswith("unknown key"):
                message = unknown_key_message(key.rsplit(".", 1)[-1], allowed)
            problems.add(key, message)
    elif rest:
        core.update(rest)  # no model to check them: RuntimeConfig reports them as unknown keys
    runtime = _model(RuntimeConfig, core, "runtime", problems)
    if runtime is not None:
        runtime.executor_config = executor_config
    return runtime


def _check_checkpoints(tree: dict[str, Any], runtime: Any, registry: Registry, problems: Problems) -> None:
    """Checkpoints and resume need a destination that stores its commit record with the rows."""
    if runtime is None or not runtime.checkpoint_every:
        return
    kind = (tree.get("destination") or {}).get("type") if isinstance(tree.get("destination"), dict) else None
    if not isinstance(kind, str):
        return
    try:
        factory = registry.get("connector", kind).factory
    except PluginError:
        return
    caps = getattr(factory, "capabilities", None)
    commits = (isinstance(caps, Capabilities) and caps.commits_state) or callable(getattr(factory, "load_committed_state", None))
    if not commits:
        problems.add(
            "runtime.checkpoint_every",
            f"destination '{kind}' cannot store its commit state with the rows, so a checkpointed run could not "
            "resume without losing or duplicating rows; remove checkpoint_every",
        )


def _connector(tree: dict[str, Any], role: str, registry: Registry, problems: Problems) -> ConnectorConfig | None:
    section = tree.get(role)
    if section is None:
        problems.add(role, "required section is missing")
        return None
    if not isinstance(section, dict):
        problems.add(role, f"must be a mapping with a 'type' key, not {type(section).__name__}")
        return None
    kind = section.get("type")
    if not isinstance(kind, str) or not kind:
        problems.add(f"{role}.type", "required key is missing (the connector to use, e.g. duckdb)")
        return None
    misplaced = ("write_mode", "merge_keys") if role == "source" else ("incremental",)
    for key in misplaced:
        if key in section:
            other = "destination" if role == "source" else "source"
            problems.add(f"{role}.{key}", f"belongs in the {other} section, not the {role}")
    try:
        registration = registry.get("connector", kind)
    except PluginError as exc:
        problems.add(f"{role}.type", str(exc))
        return None
    model = registration.config if isinstance(registration.config, type) else ConnectorConfig
    clean = {k: v for k, v in section.items() if k not in misplaced}
    if isinstance(model, type) and issubclass(model, BaseModel) and "type" not in model.model_fields:
        clean.pop("type", None)
    config = _model(model, clean, role, problems)
    if config is None:
        return None
    capabilities = getattr(registration.factory, "capabilities", None)
    if isinstance(capabilities, Capabilities):
        _check_capabilities(kind, role, config, capabilities, section, problems)
    return config


def _check_capabilities(
    kind: str, role: str, config: Any, caps: Capabilities, section: dict[str, Any], problems: Problems
) -> None:
    if role == "source":
        if not caps.read:
            problems.add(f"{role}.type", f"connector '{kind}' cannot read, so it cannot be a source")
        incremental = getattr(config, "incremental", None)
        if incremental is not None and incremental.strategy not in caps.incremental_strategies:
            supported = ", ".join(sorted(caps.incremental_strategies)) or "none"
            problems.add(
                f"{role}.incremental.strategy",
                f"{kind} does not support incremental strategy '{incremental.strategy}' (supports: {supported})",
            )
        return
    if not caps.write:
        problems.add(f"{role}.type", f"connector '{kind}' cannot write, so it cannot be a destination")
        return
    mode = getattr(config, "write_mode", "append")
    if mode not in caps.write_modes:
        supported = ", ".join(supported_write_modes(caps.write_modes)) or "none"
        problems.add(
            f"{role}.write_mode",
            f"{kind} does not support write mode '{mode}'; {kind} supports write modes: {supported}",
        )
    if mode == "merge" and not getattr(config, "merge_keys", None):
        problems.add(f"{role}.merge_keys", MERGE_KEYS_NEEDED)


def _transform(section: Any, registry: Registry, problems: Problems) -> TransformConfig:
    if section is None:
        return TransformConfig()
    if not isinstance(section, dict):
        problems.add("transform", "must be a mapping with a 'steps' list")
        return TransformConfig()
    for key in section:
        if key != "steps":
            problems.add(f"transform.{key}", unknown_key_message(str(key), ["steps"]))
    raw_steps = section.get("steps") or []
    if not isinstance(raw_steps, list):
        problems.add("transform.steps", "must be a list of steps, each a mapping with a 'type'")
        return TransformConfig()
    steps: list[StepConfig] = []
    for index, raw in enumerate(raw_steps):
        where = f"transform.steps.{index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            problems.add(f"{where}.type", "each step needs a 'type' (a registered transform)")
            continue
        try:
            registration = registry.get("transform", raw["type"])
        except PluginError as exc:
            problems.add(f"{where}.type", str(exc))
            continue
        options = {k: v for k, v in raw.items() if k != "type"}
        model = registration.config
        config: Any = options
        if isinstance(model, type) and issubclass(model, BaseModel):
            if "type" in model.model_fields:
                options = dict(raw)
            config = _model(model, options, where, problems)
            if config is None:
                continue
        steps.append(StepConfig(type=raw["type"], config=config, index=index))
    return TransformConfig(steps=steps)


def _state(section: Any, registry: Registry, problems: Problems) -> StateConfig | None:
    if not isinstance(section, dict):
        problems.add("state", "must be a mapping, e.g. {backend: local, state_dir: .state}")
        return None
    backend = section.get("backend", "local")
    if not isinstance(backend, str):
        problems.add("state.backend", "must be the name of a state backend")
        return None
    try:
        registration = registry.get("state_backend", backend)
    except PluginError as exc:
        problems.add("state.backend", str(exc))
        return None
    options = {k: v for k, v in section.items() if k != "backend"}
    config: Any = options
    if isinstance(registration.config, type) and issubclass(registration.config, BaseModel):
        config = _model(registration.config, options, "state", problems)
        if config is None:
            return None
    return StateConfig(backend=backend, options=options, config=config)


def _model(model: type[BaseModel], data: Any, prefix: str, problems: Problems) -> Any:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems.extend_from(exc, prefix, model)
        return None
