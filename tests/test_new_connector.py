"""``dataloader new-connector NAME`` as a plugin author uses it: generate, install, run the contract.

A fresh venv gets the core from this repo and the generated package (with its ``test`` extra),
and the package's own ``tests/test_contract.py`` (the shipped ``ConnectorContractSuite``) must
pass. Slow (a venv and its installs), so it runs in the ``dist`` tox env.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pip_install(python: Path, *requirements: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements], check=True
    )


def test_generated_connector_installs_and_passes_the_contract_suite(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, dataloader = env_dir / "bin" / "python", env_dir / "bin" / "dataloader"
    pip_install(python, str(ROOT / "packages/core"))

    generated = subprocess.run(
        [str(dataloader), "new-connector", "parquet_lake", "--dir", str(tmp_path)], capture_output=True, text=True
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    package = tmp_path / "connector-parquet-lake"
    assert f"created {package / 'tests' / 'test_contract.py'}" in generated.stdout

    pip_install(python, f"{package}[test]")
    listed = subprocess.run([str(dataloader), "list-connectors", "--json"], capture_output=True, text=True)
    found = {row["name"]: row["distribution"] for row in json.loads(listed.stdout)}
    assert found["parquet_lake"] == "dataloader-connector-parquet-lake"
    # The author's venv is not ours: options tox sets for this suite (e.g. --timeout from
    # pytest-timeout) must not leak into it.
    clean_env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    tested = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package, capture_output=True, text=True, timeout=600, env=clean_env,
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout and "failed" not in tested.stdout
