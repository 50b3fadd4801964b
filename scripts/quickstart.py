"""Set up a virtual environment from this repository and run the quick-start recipe.

    python3 scripts/quickstart.py

Creates ``.venv`` (unless it exists), installs the core and the DuckDB and filestore connectors
from this checkout (never from a package registry: the name ``dataloader`` there is another
project), loads ``examples/data/customers.csv`` into ``quickstart.duckdb`` and shows how to query
the result. Needs only Python 3.10+.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("DATALOADER_VENV", ROOT / ".venv"))
PACKAGES = ["packages/core", "packages/connector-duckdb", "packages/connector-filestore"]


def bin_path(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def main() -> int:
    if sys.version_info < (3, 10):
        print("dataloader needs Python 3.10 or newer", file=sys.stderr)
        return 1
    if not bin_path("python").exists():
        step(f"creating a virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    step("installing dataloader with the duckdb and filestore connectors from this checkout")
    run(bin_path("python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        *[str(ROOT / p) for p in PACKAGES])
    step("running examples/recipes/quickstart.yaml")
    run(bin_path("dataloader"), "run", "examples/recipes/quickstart.yaml")
    database = ROOT / "quickstart.duckdb"
    query = "SELECT city, count(*) AS customers, sum(lifetime_value) AS value FROM main.customers GROUP BY city ORDER BY value DESC"
    step(f"the data is in {database}, table main.customers; for example:")
    print(f"    {bin_path('python')} -c \"import duckdb; print(duckdb.connect('{database.name}').sql('{query}'))\"")
    run(bin_path("python"), "-c", f"import duckdb; print(duckdb.connect({str(database)!r}, read_only=True).sql({query!r}))")
    step("to use dataloader from your shell, activate the virtual environment:")
    print(f"    {activate_line()}")
    return 0


def activate_line() -> str:
    """The command that activates the venv in the user's shell."""
    if os.name == "nt":
        return str(VENV / "Scripts" / "activate")
    shell = os.path.basename(os.environ.get("SHELL", ""))
    script = {"fish": "activate.fish", "csh": "activate.csh", "tcsh": "activate.csh"}.get(shell, "activate")
    return f"source {VENV / 'bin' / script}"


if __name__ == "__main__":
    sys.exit(main())
