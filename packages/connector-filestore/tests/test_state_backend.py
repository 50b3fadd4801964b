"""The ``fsspec`` state backend against the state-backend contract suite: local files (file://),
S3 on moto's server, and SFTP on the loopback sshd."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from dataloader.testing_state import SharedStateRunSuite, StateBackendContractSuite
from remote.conftest import S3_CREDENTIALS, moto_endpoint, s3, sftp_dir, sshd  # noqa: F401  (fixtures)


def _dump_local(root: Path) -> str:
    if not root.exists():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


class TestFsspecLocalStateContract(StateBackendContractSuite):
    backend_name = "fsspec"

    @pytest.fixture
    def state_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": f"file://{tmp_path}/shared-state"}

    @pytest.fixture
    def raw_store(self, tmp_path: Path):
        return lambda: _dump_local(tmp_path / "shared-state")


class TestFsspecS3StateContract(StateBackendContractSuite):
    backend_name = "fsspec"

    @pytest.fixture
    def state_options(self, s3) -> dict[str, Any]:  # noqa: F811
        return {"url": s3.url(f"state-{uuid.uuid4().hex[:6]}"), **s3.options}

    @pytest.fixture
    def raw_store(self, s3, state_options: dict[str, Any]):  # noqa: F811
        prefix = state_options["url"].removeprefix("s3://")

        def dump() -> str:
            return "\n".join(s3.fs.cat_file(key).decode() for key in sorted(s3.fs.find(prefix)))

        return dump


class TestFsspecSFTPStateContract(StateBackendContractSuite):
    backend_name = "fsspec"

    @pytest.fixture
    def state_options(self, sshd, sftp_dir: str) -> dict[str, Any]:  # noqa: F811
        return {"url": sshd.url(f"{sftp_dir}/state"), **sshd.options()}

    @pytest.fixture
    def state_secrets(self, sshd) -> list[str]:  # noqa: F811
        return [Path(sshd.key_path).read_text().strip().splitlines()[1]]  # a line of the private key

    @pytest.fixture
    def raw_store(self, sftp_dir: str):  # noqa: F811
        return lambda: _dump_local(Path(sftp_dir) / "state")


def test_s3_conditional_put_refuses_an_existing_object(s3) -> None:  # noqa: F811
    """The primitive everything rests on: moto's server honours If-None-Match: * on PutObject."""
    from dataloader_filestore.state_backend import FsspecStateBackend, FsspecStateConfig

    backend = FsspecStateBackend(FsspecStateConfig(url=s3.url("p"), **s3.options))
    assert backend._publish(s3.key("p/x.json"), b"{}") is True
    assert backend._publish(s3.key("p/x.json"), b'{"a": 1}') is False
    assert json.loads(s3.fs.cat_file(s3.key("p/x.json"))) == {}


@pytest.mark.parametrize("url", ["gs://bucket/state", "s3://"])
def test_an_unsupported_or_empty_url_is_refused_at_validate_time(url: str) -> None:
    from dataloader.errors import RecipeError
    from dataloader.recipe import Recipe

    with pytest.raises(RecipeError) as invalid:
        Recipe.from_dict({
            "name": "r",
            "source": {"type": "filestore", "path": "in.csv", "format": "csv"},
            "destination": {"type": "filestore", "path": "out", "format": "csv"},
            "state": {"backend": "fsspec", "url": url},
        })
    assert "state.url" in str(invalid.value)


def test_unknown_key_names_the_allowed_ones() -> None:
    from dataloader.errors import RecipeError
    from dataloader.recipe import Recipe

    with pytest.raises(RecipeError) as invalid:
        Recipe.from_dict({
            "name": "r",
            "source": {"type": "filestore", "path": "in.csv"},
            "destination": {"type": "filestore", "path": "out", "format": "csv"},
            "state": {"backend": "fsspec", "url": "s3://b/p", "secrte": "x"},
        })
    assert "state.secrte" in str(invalid.value)


class TestFsspecS3SharedRuns(SharedStateRunSuite):
    """The same recipe from two working directories against one S3 prefix (moto)."""

    backend_name = "fsspec"

    @pytest.fixture
    def state_options(self, s3) -> dict[str, Any]:  # noqa: F811
        return {"url": s3.url("shared"), **s3.options}


class TestFsspecSFTPSharedRuns(SharedStateRunSuite):
    """The same recipe from two working directories against one SFTP folder (sshd)."""

    backend_name = "fsspec"

    @pytest.fixture
    def state_options(self, sshd, sftp_dir: str) -> dict[str, Any]:  # noqa: F811
        return {"url": sshd.url(f"{sftp_dir}/state"), **sshd.options()}


# -- the command line against S3 -------------------------------------------------------------------
def test_cli_migrates_local_state_to_s3_then_shows_and_resets_it_there(s3, tmp_path: Path) -> None:  # noqa: F811
    from click.testing import CliRunner
    from dataloader.cli import cli
    from dataloader.state import LocalStateBackend

    state = {"version": 1, "cursor_values": {"id": 41}, "watermarks": {}, "checkpoints": {}, "metadata": {}}
    LocalStateBackend(tmp_path / "old").save("orders", state)
    url = f"{s3.url('moved')}?endpoint_url={s3.endpoint_url}&region=us-east-1"
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    moved = invoke("state", "migrate", "--from", tmp_path / "old", "--to", url, "orders")
    assert moved.exit_code == 0, moved.output
    assert f"to {s3.url('moved')}" in moved.output
    shown = invoke("show-state", "orders", "--state", url)
    assert shown.exit_code == 0 and json.loads(shown.output) == state
    assert invoke("reset-state", "orders", "--state", url, "--yes").exit_code == 0
    assert "no state saved for 'orders'" in invoke("show-state", "orders", "--state", url).output


def test_cli_show_state_of_a_recipe_file_reads_its_fsspec_backend(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner
    from dataloader.cli import cli
    from dataloader.testing_state import build_backend

    options = {"url": f"file://{tmp_path}/shared"}
    backend = build_backend("fsspec", options)
    backend.load("orders")
    backend.save("orders", {"cursor_values": {"id": 3}})
    recipe = tmp_path / "orders.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "orders",
        "source": {"type": "filestore", "path": str(tmp_path / "in.csv"), "format": "csv"},
        "destination": {"type": "filestore", "path": str(tmp_path / "out"), "format": "csv"},
        "state": {"backend": "fsspec", **options},
    }))
    shown = CliRunner().invoke(cli, ["show-state", str(recipe)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {"cursor_values": {"id": 3}}
