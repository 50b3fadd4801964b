"""The JSON Schema of recipes, built from the installed plugins' config models.

``dataloader json-schema`` prints it; an editor with the YAML language server uses it for
completion and inline errors (docs/recipes.md#editor-set-up). Each plugin section is selected by
its discriminating key, with ``if``/``then`` so an editor reports the errors of the chosen plugin
only:

- ``source`` / ``destination``: ``type`` names a connector (a source may not carry
  ``write_mode``/``merge_keys``, a destination may not carry ``incremental``);
- ``transform.steps[]``: ``type`` names a transform;
- ``quality_checks[]``: ``check`` names a quality check;
- ``state``: ``backend`` names a state backend;
- a connector section with ``format`` and ``options`` keys (the filestore connector): ``format``
  names a file format whose model checks ``options``.

The schema checks keys and value types, not completeness: a recipe may inherit any key through
``extends:``, which a schema cannot follow, so no key is required. Wherever a value is not a plain
string, a string holding a ``{{ template }}`` is accepted too. ``dataloader validate`` remains the
full check.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from dataloader import __version__
from dataloader.plugins import Registry

SCHEMA_ID = "https://dataloader.invalid/schemas/recipe.json"
TEMPLATE = {"type": "string", "pattern": r"\{\{|\{%"}
#: (kind, key of the section that names the plugin)
SECTIONS = {
    "connector": "type",
    "transform": "type",
    "format": "format",
    "state_backend": "backend",
    "quality_check": "check",
}
_MISPLACED = {"source": ("write_mode", "merge_keys"), "destination": ("incremental",)}


def recipe_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a recipe file, for the plugins in ``registry``."""
    builder = _Sections(registry)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"dataloader recipe (dataloader {__version__})",
        "type": "object",
        "additionalProperties": False,
        "properties": _top_level(builder),
        "$defs": builder.defs,
    }
    _accept_templates(schema)
    return schema


class _Sections:
    """The config models of the plugins in a registry, as JSON Schema sections."""

    def __init__(self, registry: Registry) -> None:
        from dataloader.recipe.models import RuntimeConfig

        self.registry = registry
        models: dict[tuple[str, str], type[BaseModel]] = {("runtime", "runtime"): RuntimeConfig}
        for kind in SECTIONS:
            for entry in registry.all(kind):
                if isinstance(entry.config, type) and issubclass(entry.config, BaseModel):
                    models[(kind, entry.name)] = entry.config
        keys, top = models_json_schema([(model, "validation") for model in models.values()], ref_template="#/$defs/{model}")
        self.defs: dict[str, Any] = top.get("$defs", {})
        self.refs = {where: keys[(model, "validation")]["$ref"].rsplit("/", 1)[1] for where, model in models.items()}

    def runtime(self) -> dict[str, Any]:
        return copy.deepcopy(self.defs[self.refs[("runtime", "runtime")]])

    def section(self, kind: str, name: str, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """The inlined schema of one plugin's section: its model plus the discriminating key."""
        ref = self.refs.get((kind, name))
        body = copy.deepcopy(self.defs[ref]) if ref is not None else {"type": "object"}
        properties = body.setdefault("properties", {})
        for key in drop:
            properties.pop(key, None)
        properties[SECTIONS[kind]] = {"const": name}
        body["additionalProperties"] = False  # the core forbids extra keys, whatever the model says
        body.pop("required", None)
        if kind == "connector" and {"format", "options"} <= set(properties):
            body["allOf"] = [
                {"if": _names("format", fmt), "then": {"properties": {"options": _options(self.section("format", fmt))}}}
                for fmt in self.registry.names("format")
            ]
        body.pop("title", None)
        return body

    def chooser(self, kind: str, *, drop: tuple[str, ...] = (), description: str) -> dict[str, Any]:
        """A section whose discriminating key picks one of the plugins of ``kind``."""
        key, names = SECTIONS[kind], self.registry.names(kind)
        return {
            "type": "object",
            "description": description,
            "properties": {key: {"enum": names} if names else {"type": "string"}},
            "allOf": [{"if": _names(key, name), "then": self.section(kind, name, drop=drop)} for name in names],
        }


def _top_level(sections: _Sections) -> dict[str, Any]:
    """The recipe's top-level keys."""
    from dataloader.recipe.models import NAME_PATTERN

    return {
        "name": {"type": "string", "pattern": NAME_PATTERN, "description": "The recipe's name: its state key."},
        "description": {"type": ["string", "null"]},
        "extends": {"type": "string", "description": "A parent recipe, relative to this file."},
        "delete": {"type": "array", "items": {"type": "string"}, "description": "Dotted key paths to remove."},
        "source": sections.chooser("connector", drop=_MISPLACED["source"], description="Where rows are read."),
        "destination": sections.chooser("connector", drop=_MISPLACED["destination"], description="Where rows go."),
        "transform": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "steps": {"type": "array", "items": sections.chooser("transform", description="One transform step.")}
            },
        },
        "runtime": sections.runtime(),
        "quality_checks": {
            "type": ["array", "null"],
            "items": sections.chooser("quality_check", description="One quality check."),
        },
        "state": sections.chooser("state_backend", description="Where the recipe's state is kept."),
        "schema": _schema_section(sections.defs),
    }


def _schema_section(defs: dict[str, Any]) -> dict[str, Any]:
    """The ``schema:`` section (column contract and evolution policy), from its pydantic model."""
    from dataloader.recipe.models import SchemaSection

    section = SchemaSection.model_json_schema()
    defs.update(section.pop("$defs", {}))
    section["description"] = "The schema contract and evolution policy (docs/schema.md)."
    return section


def _names(key: str, name: str) -> dict[str, Any]:
    return {"properties": {key: {"const": name}}, "required": [key]}


def _options(format_section: dict[str, Any]) -> dict[str, Any]:
    options = copy.deepcopy(format_section)
    options["properties"].pop("format", None)
    return options


def _accept_templates(node: Any) -> None:
    """Let a ``{{ template }}`` string stand wherever a typed scalar is expected."""
    if isinstance(node, list):
        for item in node:
            _accept_templates(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if key in ("properties", "$defs", "patternProperties"):
            for name, sub in value.items():
                if isinstance(sub, dict):
                    value[name] = _templatable(sub)
                    _accept_templates(sub)
        elif isinstance(value, (dict, list)):
            _accept_templates(value)


def _templatable(sub: dict[str, Any]) -> dict[str, Any]:
    scalar_types = {"integer", "number", "boolean"}
    kinds = sub.get("type")
    typed = bool(scalar_types & set(kinds)) if isinstance(kinds, list) else kinds in scalar_types
    constrained = typed or "enum" in sub or "pattern" in sub or "format" in sub or "anyOf" in sub or "$ref" in sub
    if not constrained or "const" in sub:
        return sub
    return {"anyOf": [sub, TEMPLATE]}


__all__ = ["SCHEMA_ID", "recipe_schema"]
