"""``dataloader new-connector NAME``: write a connector package laid out like ours.

The package is complete and working as written (tables as Arrow IPC files, a transactional
destination, cursor incremental reads) so that its contract suite passes before the author changes
anything; they then swap the file handling for their system's API. The templates are the
``connector_templates/*.tmpl`` files beside this module (``string.Template``, ``${name}``).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

from dataloader import __version__
from dataloader.errors import DataLoaderError

NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: template -> path in the package, ``{package}`` filled in
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "CHANGELOG.md.tmpl": "CHANGELOG.md",
    "__init__.py.tmpl": "src/{package}/__init__.py",
    "plugin.py.tmpl": "src/{package}/plugin.py",
    "config.py.tmpl": "src/{package}/config.py",
    "connector.py.tmpl": "src/{package}/connector.py",
    "test_contract.py.tmpl": "tests/test_contract.py",
}


def names_for(name: str) -> dict[str, str]:
    """The names a connector called ``name`` goes by: distribution, import package, class prefix."""
    if not NAME.match(name):
        raise DataLoaderError(
            f"connector name '{name}' must be lower-case letters, digits and '_', starting with a letter "
            "(it is the recipe's `type:` and part of the package name)",
            name=name,
        )
    major, minor = (int(part) for part in __version__.split(".")[:2])
    return {
        "name": name,
        "distribution": f"dataloader-connector-{name.replace('_', '-')}",
        "package": f"dataloader_{name}",
        "class_name": "".join(part.capitalize() for part in name.split("_")),
        "core_major_minor": f"{major}.{minor}",
        "core_next": f"{major}.{minor + 1}",
    }


def new_connector(name: str, parent: Path, *, force: bool = False) -> tuple[Path, list[Path]]:
    """Write ``parent/connector-<name>``; returns the package folder and the files written."""
    values = names_for(name)
    root = parent / f"connector-{name.replace('_', '-')}"
    targets = {template: root / path.format(**values) for template, path in FILES.items()}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not force:
        raise DataLoaderError(
            f"not overwriting existing files: {', '.join(existing)}; use --force or choose another name", files=existing
        )
    templates = resources.files("dataloader.scaffold") / "connector_templates"
    written = []
    try:
        for template, path in targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            text = Template((templates / template).read_text(encoding="utf-8")).substitute(values)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise DataLoaderError(f"cannot write the package into {root}: {exc.strerror or exc}") from exc
    return root, written


__all__ = ["FILES", "names_for", "new_connector"]
