"""Relative data paths resolve against the recipe file that set them, like ``extends:``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from dataloader import hookimpl
from dataloader.cli import cli
from dataloader.config import ConnectorConfig
from dataloader.connector import BaseConnector, Capabilities
from dataloader.plugins import PluginHost, use_host
from dataloader.recipe import from_yaml


class FileConfig(ConnectorConfig):
    recipe_paths: ClassVar[tuple[str, ...]] = ("path",)
    path: str
    note: str = ""


class FileConnector(BaseConnector):
    capabilities = Capabilities(read=True, write=True, write_modes=frozenset({"append"}))


class _Plugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("file", FileConnector, config=FileConfig)


@pytest.fixture(autouse=True)
def host():
    host = PluginHost(load_entrypoints=False)
    host.register(_Plugin(), name="paths-test", distribution="tests")
    with use_host(host):
        yield host


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_relative_path_is_relative_to_the_file_that_set_it(tmp_path, monkeypatch):
    write(tmp_path / "shared/base.yaml", "name: base\nsource: {type: file, path: data/in.csv}\n")
    child = write(
        tmp_path / "jobs/child.yaml",
        "name: child\nextends: ../shared/base.yaml\ndestination: {type: file, path: \"{{ var('out', 'out/x') }}\", note: a/b}\n",
    )
    monkeypatch.setenv("DATALOADER_PROJECT_ROOT", str(tmp_path))  # the parent lives beside jobs/
    monkeypatch.chdir(tmp_path / "jobs")
    recipe = from_yaml(child.name)
    assert recipe.source.path == str(Path("../shared/data/in.csv"))
    assert recipe.destination.path == "out/x"  # child.yaml is in the working directory
    assert recipe.destination.note == "a/b"  # not a path key: untouched
    monkeypatch.chdir(tmp_path)
    assert from_yaml("jobs/child.yaml", vars={"out": "o.csv"}).destination.path == str(Path("jobs/o.csv"))


@pytest.mark.parametrize("value", ["/abs/in.csv", "s3://bucket/in.csv", ":memory:", "~/in.csv"])
def test_absolute_paths_urls_and_memory_are_left_alone(tmp_path, value):
    recipe = write(tmp_path / "r/r.yaml", f"name: r\nsource: {{type: file, path: '{value}'}}\ndestination: {{type: file, path: /o}}\n")
    assert from_yaml(recipe).source.path == value


def test_render_shows_the_resolved_path(tmp_path, monkeypatch):
    write(tmp_path / "r/r.yaml", "name: r\nsource: {type: file, path: in.csv}\ndestination: {type: file, path: /o}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["render", "r/r.yaml"], catch_exceptions=False)
    assert f"path: {Path('r/in.csv')}" in result.output


def test_the_quick_start_runs_from_any_folder(tmp_path, monkeypatch):
    for module in ("dataloader_duckdb", "dataloader_filestore", "duckdb"):
        pytest.importorskip(module)
    import shutil

    import duckdb
    from dataloader.plugins import reset

    root = Path(__file__).resolve().parents[3]
    shutil.copytree(root / "examples", tmp_path / "repo/examples")
    elsewhere = tmp_path / "somewhere/else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    reset()
    with use_host(PluginHost()):
        result = CliRunner().invoke(cli, ["run", str(tmp_path / "repo/examples/recipes/quickstart.yaml"),
                                          "--state-dir", str(tmp_path / "state")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(tmp_path / "repo/quickstart.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from main.customers").fetchone() == (200,)
    assert not list(elsewhere.iterdir()) or not list(elsewhere.glob("*.duckdb"))
