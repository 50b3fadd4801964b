"""The pre-commit hook as a user meets it: ``pre-commit try-repo <this repo> dataloader-validate``.

pre-commit clones the repository, installs its root with pip (the root ``pyproject.toml`` pulls
the core and every connector package from that clone, so only the package index is reached, for
third-party dependencies) and runs ``dataloader validate --allow-missing-env`` on the files. Slow
(a fresh hook environment is built, about a minute), so it runs in the ``dist`` tox env.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
name: good
extends: base.yaml
source:
  type: filestore
  path: data/customers.csv
  format: csv
destination:
  type: duckdb
  database: "{{ env_var('WAREHOUSE_PATH') }}"
  table: main.customers
"""

BASE = """\
# dataloader: base
name: base
runtime: {batch_size: 500}
"""

BAD = """\
name: bad
source: {type: filestore, path: data/customers.csv, format: csv}
destination:
  type: duckdb
  database: w.duckdb
  tabel: main.customers
"""


def pre_commit() -> list[str]:
    found = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which("pre-commit")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("pre-commit is not installed (the dist tox env installs it)")
        pytest.skip("pre-commit is not installed")
    return [found]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's repository with recipes to check."""
    repo = tmp_path_factory.mktemp("user-repo")
    (repo / "recipes").mkdir()
    (repo / "recipes" / "good.yaml").write_text(GOOD)
    (repo / "recipes" / "base.yaml").write_text(BASE)
    (repo / "recipes" / "bad.yaml").write_text(BAD)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    return repo


def try_repo(project: Path, home: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WAREHOUSE_PATH"}
    env["PRE_COMMIT_HOME"] = str(home)
    return subprocess.run(
        [*pre_commit(), "try-repo", str(ROOT), "dataloader-validate", "--verbose", "--files", *files],
        cwd=project, env=env, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def hook_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def test_hook_passes_for_a_valid_recipe_and_a_base_recipe_without_secrets(project: Path, hook_home: Path) -> None:
    done = try_repo(project, hook_home, "recipes/good.yaml", "recipes/base.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recipes/good.yaml: ok (placeholders for unset WAREHOUSE_PATH)" in done.stdout
    assert "recipes/base.yaml: ok (base recipe, checked as a fragment)" in done.stdout


def test_hook_fails_naming_the_file_line_and_key(project: Path, hook_home: Path) -> None:
    done = try_repo(project, hook_home, "recipes/bad.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "recipes/bad.yaml:6: destination.tabel: unknown key" in done.stdout
