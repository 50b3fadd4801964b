"""Recipes: YAML files that say what to read, how to transform it and where to write it.

``from_yaml(path)`` loads a recipe with its ``extends`` chain, applies ``delete`` paths, renders
templates and validates every section (the connector, transform and state sections with their
plugins' own config models). See docs/recipes.md for the format.
"""

from __future__ import annotations

from dataloader.config import IncrementalConfig
from dataloader.recipe.build import from_yaml
from dataloader.recipe.loader import RecipeWarning
from dataloader.recipe.models import (
    DestinationConfig,
    Recipe,
    RetryConfig,
    RuntimeConfig,
    SourceConfig,
    StateConfig,
    StepConfig,
    TransformConfig,
)

__all__ = [
    "DestinationConfig",
    "IncrementalConfig",
    "Recipe",
    "RecipeWarning",
    "RetryConfig",
    "RuntimeConfig",
    "SourceConfig",
    "StateConfig",
    "StepConfig",
    "TransformConfig",
    "from_yaml",
]
