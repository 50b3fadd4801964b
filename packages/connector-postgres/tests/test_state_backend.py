"""The ``postgres`` state backend against the state-backend contract suite, on the real server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from dataloader.testing_state import SharedStateRunSuite, StateBackendContractSuite

#: Trust authentication ignores it, but the backend must never store or show it.
PASSWORD = "pg-state-secret-Zq81"


@pytest.fixture
def state_schema(pg: Any) -> Any:
    name = f"dl_state_{uuid.uuid4().hex[:10]}"
    yield name
    with pg.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_state_options(pg_params: dict[str, Any], state_schema: str) -> dict[str, Any]:
    return {
        "host": pg_params.get("host", "127.0.0.1"),
        "port": int(pg_params.get("port", 5432)),
        "database": pg_params["dbname"],
        "user": pg_params.get("user", "postgres"),
        "password": pg_params.get("password") or PASSWORD,
        "schema": state_schema,
    }


class TestPostgresStateContract(StateBackendContractSuite):
    backend_name = "postgres"

    @pytest.fixture
    def state_options(self, pg_state_options: dict[str, Any]) -> dict[str, Any]:
        return pg_state_options

    @pytest.fixture
    def raw_store(self, pg: Any, state_schema: str):
        def dump() -> str:
            out = []
            with pg.cursor() as cur:
                for table in ("_dataloader_backend_state", "_dataloader_backend_leases"):
                    cur.execute(f'SELECT t::text FROM "{state_schema}"."{table}" AS t')
                    out.extend(row[0] for row in cur.fetchall())
            return "\n".join(out)

        return dump


def test_a_dsn_with_a_password_is_never_shown(pg_params: dict[str, Any], state_schema: str) -> None:
    from dataloader.errors import StateError
    from dataloader.testing_state import build_backend

    dsn = f"postgresql://nobody:{PASSWORD}@127.0.0.1:1/{pg_params['dbname']}"
    backend = build_backend("postgres", {"dsn": dsn, "schema": state_schema, "connect_attempts": 1})
    with pytest.raises(StateError) as failed:
        backend.load("r")
    assert PASSWORD not in str(failed.value) and PASSWORD not in repr(backend)
    assert "127.0.0.1" in str(failed.value)


class TestPostgresSharedRuns(SharedStateRunSuite):
    """The same recipe from two working directories against one state schema."""

    backend_name = "postgres"

    @pytest.fixture
    def state_options(self, pg_state_options: dict[str, Any]) -> dict[str, Any]:
        return pg_state_options
