"""A file format that only the run's plugin host knows is found at validation and at run time.

``from_yaml(..., host=H)`` and ``run_recipe(..., host=H)`` must look formats up in ``H``, not in
the process-wide registry (an embedding application builds its own host with its own plugins).
"""

from __future__ import annotations

import types
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dataloader import LocalStateBackend, run_recipe
from dataloader.errors import RecipeError
from dataloader.hookspecs import hookimpl
from dataloader.plugins import PluginHost
from dataloader.recipe import from_yaml


def _host_with_private_format() -> PluginHost:
    from dataloader_filestore.formats.csv_format import CsvFormat, CsvOptions

    private = types.SimpleNamespace(
        register_formats=hookimpl(lambda register: register("private_csv", CsvFormat, config=CsvOptions))
    )
    host = PluginHost()
    host.register(private, name="private-formats", distribution="tests")
    return host


def _recipe(tmp_path: Path) -> Path:
    (tmp_path / "in.csv").write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"""
name: private_format
source: {{type: filestore, path: "{tmp_path / 'in.csv'}", format: private_csv, options: {{delimiter: ","}}}}
destination: {{type: filestore, path: "{tmp_path / 'out'}", format: parquet}}
""",
        encoding="utf-8",
    )
    return path


def test_a_format_of_the_given_host_validates_and_runs(tmp_path: Path) -> None:
    host = _host_with_private_format()
    recipe = from_yaml(_recipe(tmp_path), host=host)
    result = run_recipe(recipe, LocalStateBackend(str(tmp_path / ".state")), host=host)
    assert result.status == "success" and result.rows_written == 2
    rows = pq.read_table(next((tmp_path / "out").glob("part-*.parquet"))).to_pylist()
    assert sorted(row["id"] for row in rows) == [1, 2]


def test_the_process_wide_registry_does_not_know_it(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="private_csv"):
        from_yaml(_recipe(tmp_path))
