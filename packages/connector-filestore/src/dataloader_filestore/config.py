"""The recipe section of a filestore source or destination."""

from __future__ import annotations

from typing import Any, ClassVar

from dataloader.config import ConnectorConfig
from pydantic import ConfigDict, Field, field_validator, model_validator

from dataloader_filestore.remote.options import RemoteOptions


class FilestoreConfig(ConnectorConfig, RemoteOptions):
    """``path`` + ``format`` + the format's ``options``; remote keys come from :class:`RemoteOptions`.

    - source ``path``: a file, a directory (every matching file below it, or only the parts listed
      in a dataset manifest) or a glob (``data/*.csv.gz``).
    - destination ``path``: a dataset directory that receives part files.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    #: A relative local ``path`` in a recipe file is relative to that file.
    recipe_paths: ClassVar[tuple[str, ...]] = ("path",)

    @classmethod
    def local_path_keys(cls, section: dict[str, Any]) -> tuple[str, ...]:
        """``path`` is a local path unless ``backend`` makes it remote (a URL is left alone anyway)."""
        return cls.recipe_paths if section.get("backend") in (None, "local") else ()

    path: str = Field(min_length=1)
    #: A format registered through ``register_formats``: csv, json, jsonl, parquet or a plugin's.
    format: str = Field(min_length=1)
    #: Validated by the format's own options model.
    options: dict[str, Any] = Field(default_factory=dict)
    #: Destination: start a new part file after this many rows.
    max_rows_per_file: int = Field(default=1_000_000, ge=1)
    #: Destination: a dataset lock not renewed for this many seconds is stale and may be taken
    #: over (a live run renews it every third of this).
    lock_ttl_s: float = Field(default=120.0, ge=1)

    @field_validator("format")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @model_validator(mode="after")
    def _check_format_options(self) -> FilestoreConfig:
        from dataloader_filestore.formats.registry import validate_options

        validate_options(self.format, self.options)
        return self


__all__ = ["FilestoreConfig"]
