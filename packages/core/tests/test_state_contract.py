"""The local state backend against the state-backend contract suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dataloader.testing_state import SharedStateRunSuite, StateBackendContractSuite, shared_run_host


class TestLocalStateContract(StateBackendContractSuite):
    backend_name = "local"
    xfail = {
        "test_expired_lease_is_taken_over_and_the_old_holder_loses_it": (
            "the local lease is a flock: it never expires while its process lives, and the kernel "
            "drops it the moment the process dies (test_lease_of_a_killed_holder_is_taken_over)"
        ),
        "test_two_processes_starting_at_once_exactly_one_gets_the_lease[expired]": (
            "a flock cannot expire: the stale holder (this test process) keeps it, so both racers are refused"
        ),
    }

    @pytest.fixture
    def state_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"state_dir": str(tmp_path / "state")}

    @pytest.fixture
    def raw_store(self, tmp_path: Path):
        def dump() -> str:
            return "\n".join(p.read_text(errors="replace") for p in sorted((tmp_path / "state").iterdir()) if p.is_file())

        return dump


class TestLocalSharedFolderRuns(SharedStateRunSuite):
    """Two working directories sharing one state folder (a network share, say)."""

    backend_name = "local"

    @pytest.fixture
    def state_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"state_dir": str(tmp_path / "shared-state")}


def test_without_a_shared_backend_the_second_machine_loads_everything_again(tmp_path: Path, monkeypatch) -> None:
    """The control for the suite above: a state folder per machine is what duplicates rows."""
    suite = TestLocalSharedFolderRuns()
    with shared_run_host():
        recipe = suite.recipe({"state_dir": ".state"}, name="unshared")
        suite.seed(range(0, 4))
        suite.on_machine(tmp_path / "machine-a", recipe, monkeypatch)
        suite.on_machine(tmp_path / "machine-b", recipe, monkeypatch)
        assert suite.loaded_ids() == sorted(list(range(4)) * 2)
