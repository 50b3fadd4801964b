"""The packages as a user gets them: wheels built from this repo, installed through core's extras.

The public registry has an unrelated project called ``dataloader`` (versions 1.x and 2.0). These
tests build our wheels into a local folder and check that ``pip install 'dataloader[...]'`` pinned
to our version resolves every one of our distributions from that folder, and that the installed
CLI finds the connectors through their entry points and runs the quick start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())


def core_version() -> str:
    for line in (ROOT / "packages/core/pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("packages/core/pyproject.toml has no version")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), *map(str, PACKAGES)],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """A fresh venv where a user ran ``pip install 'dataloader[duckdb,filestore,postgres,dynamodb,snowflake,bigquery]==<ours>'``."""
    target = tmp_path_factory.mktemp("venv") / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    requirement = f"dataloader[duckdb,filestore,postgres,dynamodb,snowflake,bigquery]=={core_version()}"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--find-links", str(wheelhouse), requirement],
        check=True,
    )
    return target


def installed(venv_dir: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv_dir / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return {item["name"].lower(): item["version"] for item in json.loads(out)}


def test_every_package_builds_a_wheel(wheelhouse: Path) -> None:
    names = {w.name.split("-")[0].replace("_", "-") for w in wheelhouse.glob("*.whl")}
    expected = {tomllike_name(p) for p in PACKAGES}
    assert names == expected


def tomllike_name(package: Path) -> str:
    for line in (package / "pyproject.toml").read_text().splitlines():
        if line.startswith("name"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError(f"{package} has no name")


def test_extras_install_our_connector_wheels_not_the_registry_project(user_venv: Path, wheelhouse: Path) -> None:
    versions = installed(user_venv)
    assert versions["dataloader"] == core_version()
    for dist in (
        "dataloader-connector-duckdb",
        "dataloader-connector-filestore",
        "dataloader-connector-postgres",
        "dataloader-state-dynamodb",
        "dataloader-connector-snowflake",
        "dataloader-connector-bigquery",
    ):
        assert dist in versions, f"{dist} was not installed by the extras"
        assert list(wheelhouse.glob(f"{dist.replace('-', '_')}-{versions[dist]}-*.whl")), f"{dist} did not come from the wheelhouse"


def test_installed_cli_lists_connectors_with_their_distributions(user_venv: Path) -> None:
    result = subprocess.run(
        [str(user_venv / "bin" / "dataloader"), "list-connectors", "--json"],
        check=True, capture_output=True, text=True,
    )
    listed = {item["name"]: item for item in json.loads(result.stdout)}
    assert listed["duckdb"]["distribution"] == "dataloader-connector-duckdb"
    assert listed["filestore"]["distribution"] == "dataloader-connector-filestore"
    assert listed["postgres"]["distribution"] == "dataloader-connector-postgres"
    assert listed["snowflake"]["distribution"] == "dataloader-connector-snowflake"
    assert listed["bigquery"]["distribution"] == "dataloader-connector-bigquery"
    assert "merge" in listed["duckdb"]["write_modes"]


def test_installed_cli_lists_the_state_backends_of_every_wheel(user_venv: Path) -> None:
    result = subprocess.run(
        [str(user_venv / "bin" / "dataloader"), "list-state-backends", "--json"],
        check=True, capture_output=True, text=True,
    )
    listed = {item["name"]: item["distribution"] for item in json.loads(result.stdout)}
    assert listed == {
        "local": "dataloader",
        "fsspec": "dataloader-connector-filestore",
        "postgres": "dataloader-connector-postgres",
        "dynamodb": "dataloader-state-dynamodb",
    }


def test_installed_cli_runs_the_quickstart(user_venv: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cli = str(user_venv / "bin" / "dataloader")
    validated = subprocess.run([cli, "validate", "examples/recipes/quickstart.yaml"], cwd=tmp_path, env=env,
                               capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    ran = subprocess.run([cli, "run", "examples/recipes/quickstart.yaml"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    count = subprocess.run(
        [str(user_venv / "bin" / "python"), "-c",
         "import duckdb; print(duckdb.connect('quickstart.duckdb').execute('select count(*) from main.customers').fetchall()[0][0])"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    )
    assert int(count.stdout) == 200
