"""Build hook of the root project: depend on every package under ``packages/`` by its path.

The paths are absolute ``file:`` URLs of the folder being built (pre-commit's clone of the repo),
so pip installs exactly this checkout's core and connectors. A new ``packages/connector-*``
folder is picked up without editing anything here.
"""

from __future__ import annotations

import re
from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface

_NAME = re.compile(r'^name\s*=\s*"([^"]+)"', re.MULTILINE)


class WorkspaceDependencies(MetadataHookInterface):
    def update(self, metadata: dict) -> None:
        packages = Path(self.root) / "packages"
        requirements = []
        for folder in sorted(packages.iterdir()):
            project = folder / "pyproject.toml"
            if not project.is_file():
                continue
            name = _NAME.search(project.read_text(encoding="utf-8"))
            if name is None:
                raise ValueError(f"{project} has no name")
            requirements.append(f"{name.group(1)} @ {folder.resolve().as_uri()}")
        metadata["dependencies"] = requirements
