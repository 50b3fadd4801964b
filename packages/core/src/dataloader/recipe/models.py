"""The recipe's pydantic models.

Validation has two phases. The core models here check the shape every recipe shares (a section has
a ``type``; ``incremental`` belongs to a source, ``write_mode``/``merge_keys`` to a destination;
runtime numbers are in range). Then each connector section, transform step and state section is
validated by the config model its plugin registered (``dataloader.recipe.validation``). The
validated plugin instances are what ``Recipe`` holds and what the engine uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from dataloader.config import ConfigModel, ConnectorConfig, IncrementalConfig
from dataloader.errors import DataLoaderError

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


class SourceConfig(ConnectorConfig):
    """Phase-one view of a source section: a ``type`` plus keys its connector will check."""

    model_config = ConfigDict(extra="allow")


class DestinationConfig(ConnectorConfig):
    """Phase-one view of a destination section: a ``type`` plus keys its connector will check."""

    model_config = ConfigDict(extra="allow")


class StepConfig(BaseModel):
    """One transform step: its registered ``type``, the plugin's validated ``config``, its position."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    type: str
    config: SerializeAsAny[Any] = None
    index: int = 0


class TransformConfig(ConfigModel):
    """The ``transform`` section: steps run in order on every batch."""

    steps: list[StepConfig] = Field(default_factory=list)


class RetryConfig(ConfigModel):
    """Retries of transient connector failures (``TransientConnectorError``), with backoff."""

    max_attempts: int = Field(default=3, ge=1)
    initial_delay: float = Field(default=0.5, ge=0)
    max_delay: float = Field(default=30.0, ge=0)


class RuntimeConfig(ConfigModel):
    """How a run executes."""

    batch_size: int = Field(default=10_000, gt=0)
    parallelism: int = Field(default=1, ge=1)
    #: Batches buffered between the reader thread and the writer: bounds memory.
    queue_size: int = Field(default=4, ge=1)
    #: Commit what was loaded every this many source rows (at the next batch boundary), so a long
    #: run that dies resumes after its last checkpoint. Needs a destination that commits state.
    checkpoint_every: int | None = Field(default=None, gt=0)
    #: How long the recipe's lease lasts without renewal (the run renews it every third of this).
    lease_ttl_s: float = Field(default=120.0, gt=0)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    max_failed_rows: int | None = Field(default=None, ge=0)
    max_failed_ratio: float | None = Field(default=None, ge=0, le=1)
    #: Where rejected rows go: a local path or any fsspec URL; ``{recipe}`` and ``{run_id}`` fill in.
    dead_letter_path: str = "errors/{recipe}/{run_id}.jsonl"
    #: Which registered executor runs the pipeline (``list-executors``); its own keys sit beside this.
    executor: str = "local"
    #: The executor's validated options (the runtime keys its config model took); set by validation.
    executor_config: Any = Field(default=None, exclude=True)


class StateConfig(BaseModel):
    """The optional ``state`` section: which registered state backend keeps this recipe's state."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    backend: str = "local"
    options: dict[str, Any] = Field(default_factory=dict)
    config: SerializeAsAny[Any] = None


class SchemaColumn(ConfigModel):
    """One declared column of the ``schema:`` section (``type`` is a portable type name)."""

    name: str = Field(min_length=1)
    type: str
    nullable: bool = True
    primary_key: bool = False
    unique: bool = False

    @field_validator("type")
    @classmethod
    def _portable(cls, value: str) -> str:
        from dataloader.schema.types import parse

        try:
            return parse(value)
        except DataLoaderError as exc:
            raise ValueError(str(exc)) from None


class SchemaEvolution(ConfigModel):
    """How drift between the rows and the destination's table is handled (``docs/schema.md``)."""

    #: ``manual``: detect, change nothing, fail before writing, print the DDL; ``auto``: apply the
    #: compatible changes; ``warn``: log the drift and load what fits the table as it is.
    mode: Literal["manual", "auto", "warn"] = "manual"
    allow_new_columns: bool = True
    allow_column_deletion: bool = True
    allow_type_changes: bool = True


class SchemaSection(ConfigModel):
    """The recipe's ``schema:`` section: a column contract and an evolution policy."""

    #: ``strict``: the rows must have exactly the declared columns; ``lenient``: the declared
    #: columns are enforced, others pass; ``infer``: the source's schema is taken as it is.
    #: Default: ``lenient`` when columns are declared, else ``infer``.
    mode: Literal["strict", "infer", "lenient"] | None = None
    columns: list[SchemaColumn] = Field(default_factory=list)
    evolution: SchemaEvolution = Field(default_factory=SchemaEvolution)

    @model_validator(mode="after")
    def _defaults(self) -> SchemaSection:
        if self.mode is None:
            self.mode = "lenient" if self.columns else "infer"
        if self.mode == "strict" and not self.columns:
            raise ValueError("mode 'strict' needs the declared columns (schema.columns)")
        names = [c.name for c in self.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"column {twice[0]!r} is declared twice")
        return self


class Recipe(BaseModel):
    """A validated recipe: what the engine runs.

    ``source`` and ``destination`` are the connector plugins' own config instances (subclasses of
    :class:`dataloader.config.ConnectorConfig`). ``path``, ``files``, ``resolved``, ``secret_paths``
    and ``warnings`` describe where it came from and are not part of its serialised form.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    #: The source connector's own config instance (any pydantic model; usually a ConnectorConfig).
    source: SerializeAsAny[Any]
    transform: TransformConfig = Field(default_factory=TransformConfig)
    destination: SerializeAsAny[Any]
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    quality_checks: list[dict[str, Any]] = Field(default_factory=list)
    state: StateConfig | None = None
    #: The optional schema contract and evolution policy; None keeps each destination's own rules.
    schema_: SchemaSection | None = Field(default=None, alias="schema")

    path: Path | None = Field(default=None, exclude=True)
    files: list[Path] = Field(default_factory=list, exclude=True)
    resolved: dict[str, Any] = Field(default_factory=dict, exclude=True)
    secret_paths: set[str] = Field(default_factory=set, exclude=True)
    warnings: list[str] = Field(default_factory=list, exclude=True)

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        path: str | Path | None = None,
        vars: dict[str, Any] | None = None,
        env: Any = None,
    ) -> Recipe:
        """Build a recipe from an in-memory mapping, with the same rules as a file.

        ``extends`` is resolved relative to ``path``'s folder (or the working directory). The
        builder is ``dataloader.recipe.build.build_recipe``, which installs itself here when the
        ``dataloader.recipe`` package loads (so this module never imports the loader).
        """
        assert _BUILDER, "dataloader.recipe.build has not been imported"
        return _BUILDER[0](data, path=Path(path) if path is not None else None, vars=vars, env=env, lines=None)


#: The recipe builder (``dataloader.recipe.build.build_recipe``), installed by that module.
_BUILDER: list[Any] = []


def install_builder(builder: Any) -> None:
    """Make ``Recipe.from_dict`` build with ``builder`` (called once by ``dataloader.recipe.build``)."""
    _BUILDER[:] = [builder]


def connector_type(recipe: Recipe, role: str) -> str:
    """The registered name of the recipe's ``source`` or ``destination`` connector."""
    config = getattr(recipe, role)
    return getattr(config, "type", None) or recipe.resolved[role]["type"]


#: Keys a recipe may have at the top level after ``extends``/``delete`` are applied.
TOP_LEVEL_KEYS = ("name", "description", "source", "transform", "destination", "runtime", "quality_checks", "state", "schema")

__all__ = [
    "DestinationConfig",
    "IncrementalConfig",
    "Recipe",
    "RetryConfig",
    "RuntimeConfig",
    "SchemaColumn",
    "SchemaEvolution",
    "SchemaSection",
    "SourceConfig",
    "StateConfig",
    "StepConfig",
    "TransformConfig",
    "TOP_LEVEL_KEYS",
    "connector_type",
]
