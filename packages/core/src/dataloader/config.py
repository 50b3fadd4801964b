"""Base models that plugin config models build on.

A connector's config model subclasses :class:`ConnectorConfig`; the keys defined here are the ones
every connector section may carry, and the core reads them (``type``, ``incremental``,
``write_mode``, ``merge_keys``). Everything else in the section belongs to the connector. Extra
keys are an error that names the key.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

WriteMode = Literal["append", "overwrite", "merge"]
WRITE_MODES: tuple[str, ...] = ("append", "overwrite", "merge")


class ConfigModel(BaseModel):
    """Base for every plugin config model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class IncrementalConfig(ConfigModel):
    """How a source reads only what is new since the last committed run.

    ``cursor``: rows whose ``cursor_column`` is at or past the last committed high-water value
    (inclusive; the engine drops boundary rows already loaded, identified by ``primary_key`` or,
    without one, by the whole row). ``modified_time``: files new or changed since the last run.
    """

    strategy: Literal["cursor", "modified_time"] = "cursor"
    cursor_column: str | None = None
    initial_value: Any = None
    primary_key: list[str] | None = None


class ConnectorConfig(ConfigModel):
    """Keys shared by every connector section of a recipe."""

    #: Keys holding local paths: a relative value resolves against the recipe file that set it
    #: (``dataloader.recipe.paths``).
    recipe_paths: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def local_path_keys(cls, section: dict[str, Any]) -> tuple[str, ...]:
        """The keys of this rendered ``section`` that hold local paths (``recipe_paths``)."""
        return cls.recipe_paths

    type: str
    incremental: IncrementalConfig | None = None
    write_mode: WriteMode = "append"
    merge_keys: list[str] = Field(default_factory=list)


__all__ = ["ConfigModel", "ConnectorConfig", "IncrementalConfig", "WriteMode", "WRITE_MODES"]
