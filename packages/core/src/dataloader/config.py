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
#: What every check of a merge without keys says (validation and each destination's ``begin``).
MERGE_KEYS_NEEDED = "write_mode merge needs merge_keys (the columns that identify a row), e.g. merge_keys: [id]"


def check_merge_keys(mode: str, merge_keys: list[str] | None, **context: Any) -> None:
    """Raise ``ConnectorError`` when ``mode`` is ``merge`` and there are no ``merge_keys``.

    :param mode: the write mode the run uses.
    :param merge_keys: the destination's ``merge_keys``.
    :param context: extra fields for the error (``table=...``).
    """
    if mode == "merge" and not merge_keys:
        from dataloader.errors import ConnectorError

        raise ConnectorError(MERGE_KEYS_NEEDED, **context)


def supported_write_modes(modes: Any) -> list[str]:
    """``modes`` (a connector's ``capabilities.write_modes``) in the documented order."""
    return [mode for mode in WRITE_MODES if mode in modes]


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


__all__ = [
    "ConfigModel",
    "ConnectorConfig",
    "IncrementalConfig",
    "MERGE_KEYS_NEEDED",
    "WriteMode",
    "WRITE_MODES",
    "check_merge_keys",
    "supported_write_modes",
]
