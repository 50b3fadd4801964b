"""``dataloader init``: write a small example project that runs as soon as the DuckDB and filestore
connectors are installed (see docs/install.md: never a plain ``pip install dataloader``).

The files live beside this module in ``templates/`` so they ship in the wheel and can be read and
tested like any other file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dataloader.errors import DataLoaderError

#: template file -> where it goes in the new project
FILES = {
    "quickstart.yaml": "recipes/quickstart.yaml",
    "customers.csv": "data/customers.csv",
    "README.md": "README.md",
    "gitignore": ".gitignore",
}


def scaffold(directory: Path, *, force: bool = False) -> list[Path]:
    """Write the example project into ``directory``; refuses to overwrite files unless ``force``."""
    targets = {name: directory / relative for name, relative in FILES.items()}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not force:
        raise DataLoaderError(
            f"not overwriting existing files: {', '.join(existing)}; use --force or choose an empty directory",
            files=existing,
        )
    templates = resources.files("dataloader.scaffold") / "templates"
    written = []
    try:
        for name, path in targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise DataLoaderError(f"cannot write the project into {directory}: {exc.strerror or exc}") from exc
    return written
