"""The per-recipe advisory lock: one run at a time, never waiting, gone with a killed holder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from dataloader.errors import LeaseHeldError, LeaseLostError
from dataloader.run.ledger import LeaseHolder
from dataloader.state import State
from dataloader_postgres.lock import lock_key
from test_writes import _people, _write


def _holder(run_id: str, pid: int = 4242) -> LeaseHolder:
    return LeaseHolder(run_id=run_id, host="loader-host-1", pid=pid, since="2026-12-01T21:00:00+00:00")


def test_lock_key_is_stable_and_separates_recipes_and_tables():
    assert lock_key("orders", "public", "orders") == lock_key("orders", "public", "orders")
    assert -(2**63) <= lock_key("orders", "public", "orders") < 2**63
    assert lock_key("orders", "public", "orders") != lock_key("orders", "public", "orders_copy")
    assert lock_key("orders", "public", "orders") != lock_key("refunds", "public", "orders")


def test_a_second_run_fails_at_once_naming_the_holder(connector, table_name):
    first = connector(role="destination", table=table_name)
    second = connector(role="destination", table=table_name)
    first.acquire_lock("orders", _holder("run-one"))
    started = time.monotonic()
    with pytest.raises(LeaseHeldError) as caught:
        second.acquire_lock("orders", _holder("run-two", pid=77))
    assert time.monotonic() - started < 5  # never waits for the lock
    message = str(caught.value)
    assert "run run-one on host loader-host-1, pid 4242" in message
    assert "advisory lock" in message and f"public.{table_name}" in message
    assert "pg_terminate_backend" in message
    assert caught.value.context["holder"]["run_id"] == "run-one"
    first.release_lock("orders")
    second.acquire_lock("orders", _holder("run-two", pid=77))  # free again


def test_other_recipes_and_tables_are_not_blocked(connector, table_name):
    first = connector(role="destination", table=table_name)
    first.acquire_lock("orders", _holder("run-one"))
    connector(role="destination", table=table_name).acquire_lock("refunds", _holder("run-two"))
    connector(role="destination", table=f"{table_name}_other").acquire_lock("orders", _holder("run-three"))


def test_close_releases_the_lock(connector, table_name):
    first = connector(role="destination", table=table_name)
    first.acquire_lock("orders", _holder("run-one"))
    first.close()
    connector(role="destination", table=table_name).acquire_lock("orders", _holder("run-two"))


def test_the_lock_of_a_killed_process_is_released_by_the_server(section, connector, table_name):
    child_code = textwrap.dedent(
        """
        import json, sys, time
        from dataloader.connector import RunContext
        from dataloader.run.ledger import LeaseHolder
        from dataloader_postgres.config import PostgresConfig
        from dataloader_postgres.connector import PostgresConnector

        c = PostgresConnector(PostgresConfig.model_validate(json.loads(sys.argv[1])))
        c.context = RunContext(recipe_name="orders", run_id="child-run", role="destination")
        c.acquire_lock("orders", LeaseHolder.current("child-run"))
        print("LOCKED", flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", child_code, json.dumps(section(table=table_name))],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "LOCKED"
        waiting = connector(role="destination", table=table_name)
        with pytest.raises(LeaseHeldError) as caught:
            waiting.acquire_lock("orders", _holder("run-two"))
        assert f"pid {child.pid}" in str(caught.value) and "child-run" in str(caught.value)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        deadline = time.monotonic() + 20
        while True:  # the server ends the session once it sees the socket close (milliseconds)
            try:
                waiting.acquire_lock("orders", _holder("run-two"))
                break
            except LeaseHeldError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_lock_lost_while_running_and_taken_by_another_run_commits_nothing(pg, connector, table_name):
    run = connector(role="destination", table=table_name)
    run.acquire_lock("test", _holder("run-one"))
    run.begin(_people([1], ["a"]).schema, "append", State())
    with pg.cursor() as cur:  # the lock's connection drops (a network blip) ...
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'dataloader-lock run-one%%'")
    other = connector(role="destination", table=table_name)
    deadline = time.monotonic() + 20
    while True:  # ... and another run takes the lock
        try:
            other.acquire_lock("test", _holder("run-two"))
            break
        except LeaseHeldError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    from dataloader.batch import Batch

    for batch in _people([1], ["a"]).to_batches():
        run.write_batch(Batch.from_arrow(batch), State())
    with pytest.raises(LeaseLostError, match="run-two"):
        run.commit(State())
    with pg.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"public.{table_name}",))
        assert cur.fetchone()[0] is None  # nothing of the run was committed


def test_a_lock_lost_while_running_but_free_is_taken_again(pg, connector, table_name):
    run = connector(role="destination", table=table_name)
    run.acquire_lock("test", _holder("run-one"))
    with pg.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'dataloader-lock run-one%%'")
    _write(run, "append", _people([1], ["a"]))
    with pytest.raises(LeaseHeldError, match="run-one"):
        connector(role="destination", table=table_name).acquire_lock("test", _holder("run-two"))
