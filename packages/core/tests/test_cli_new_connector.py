"""``dataloader new-connector``: the files it writes and the mistakes it refuses (fast checks; the
install-and-run-the-contract test is ``tests/test_new_connector.py`` in the dist env)."""

from __future__ import annotations

import ast

import tomllib
from click.testing import CliRunner
from dataloader.cli import cli


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_writes_a_package_laid_out_like_ours(tmp_path):
    result = invoke("new-connector", "kafka_topics", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    root = tmp_path / "connector-kafka-topics"
    expected = [
        "pyproject.toml", "README.md", "CHANGELOG.md", "src/dataloader_kafka_topics/__init__.py",
        "src/dataloader_kafka_topics/plugin.py", "src/dataloader_kafka_topics/config.py",
        "src/dataloader_kafka_topics/connector.py", "tests/test_contract.py",
    ]
    assert [line.removeprefix("created ") for line in result.output.splitlines()[:-1]] == [str(root / p) for p in expected]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "dataloader-connector-kafka-topics"
    assert project["project"]["entry-points"]["dataloader"] == {"kafka_topics": "dataloader_kafka_topics.plugin"}
    assert "dataloader>=0.1,<0.2" in project["project"]["dependencies"]
    for path in root.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))  # every template renders to valid Python
    contract = (root / "tests/test_contract.py").read_text()
    assert "class TestContract(ConnectorContractSuite):" in contract and 'connector_type = "kafka_topics"' in contract
    assert "class KafkaTopicsConnector(BaseConnector):" in (root / "src/dataloader_kafka_topics/connector.py").read_text()


def test_refuses_to_overwrite_and_a_bad_name(tmp_path):
    assert invoke("new-connector", "files", "--dir", tmp_path).exit_code == 0
    again = invoke("new-connector", "files", "--dir", tmp_path)
    assert again.exit_code == 1 and "not overwriting existing files" in again.output
    assert invoke("new-connector", "files", "--dir", tmp_path, "--force").exit_code == 0
    bad = invoke("new-connector", "My-Conn", "--dir", tmp_path)
    assert bad.exit_code == 1
    assert bad.output.strip().startswith("error: connector name 'My-Conn' must be lower-case letters")
