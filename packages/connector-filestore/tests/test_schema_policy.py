"""The recipe's schema: section through the CLI against real Parquet datasets (docs/schema.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from click.testing import CliRunner
from dataloader.cli import cli


def _recipe(tmp_path: Path, evolution: dict) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({
        "name": "files",
        "source": {"type": "filestore", "path": str(tmp_path / "src.parquet"), "format": "parquet"},
        "destination": {"type": "filestore", "path": str(tmp_path / "out"), "format": "parquet"},
        "schema": {"evolution": evolution},
    }))
    return str(path)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _parts(tmp_path: Path) -> list[str]:
    return [p["name"] for p in json.loads((tmp_path / "out" / "_dataloader_manifest.json").read_text())["parts"]]


def test_dataset_drift_is_refused_in_manual_and_recorded_in_the_manifest(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32())}), tmp_path / "src.parquet")
    assert _cli("run", _recipe(tmp_path, {"mode": "manual"}))[0] == 0
    pq.write_table(pa.table({"id": pa.array([3], pa.int64()), "email": ["c@x"]}), tmp_path / "src.parquet")
    code, out = _cli("run", _recipe(tmp_path, {"mode": "manual"}))
    assert code == 1
    assert "+ column 'email' (string) added: refuse" in out and "ALTER TABLE" not in out
    assert len(_parts(tmp_path)) == 1
    assert _cli("run", _recipe(tmp_path, {"mode": "auto"}))[0] == 0
    assert len(_parts(tmp_path)) == 2
    manifest = json.loads((tmp_path / "out" / "_dataloader_manifest.json").read_text())
    versions = manifest["states"]["files"]["published"]["schema_versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["columns"] == [{"name": "id", "nullable": True, "type": "int64"},
                                      {"name": "email", "nullable": True, "type": "string"}]
    # The dataset's parts now disagree (int32 and int64 ids): unified along the lattice, no drift left.
    code, out = _cli("check", _recipe(tmp_path, {"mode": "manual"}))
    assert code == 0, out


def test_parts_that_disagree_beyond_the_lattice_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"id": pa.array([1], pa.int64())}), tmp_path / "src.parquet")
    assert _cli("run", _recipe(tmp_path, {"mode": "auto"}))[0] == 0
    pq.write_table(pa.table({"id": ["one"]}), tmp_path / "src.parquet")
    code, out = _cli("run", _recipe(tmp_path, {"mode": "auto"}))
    assert code == 1 and "column 'id' type int64 -> string: refuse" in out
    # A part written outside the recipe's policy makes the dataset itself inconsistent: refused by name.
    first = _parts(tmp_path)[0]
    pq.write_table(pa.table({"id": ["one"]}), tmp_path / "out" / first)
    manifest = json.loads((tmp_path / "out" / "_dataloader_manifest.json").read_text())
    stray = first.replace("-00000", "-00001")
    pq.write_table(pa.table({"id": pa.array([1], pa.int64())}), tmp_path / "out" / stray)
    manifest["parts"].append({"name": stray, "rows": 1, "run_id": "x"})
    (tmp_path / "out" / "_dataloader_manifest.json").write_text(json.dumps(manifest))
    code, out = _cli("check", _recipe(tmp_path, {"mode": "auto"}))
    assert code == 1 and "disagree on column 'id': string in" in out
