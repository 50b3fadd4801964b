"""Shared test settings: every test keeps its run history in its own temporary folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_history(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DATALOADER_HISTORY", str(tmp_path_factory.mktemp("history") / "runs.db"))
