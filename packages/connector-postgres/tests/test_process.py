"""Whole-process properties: flat memory on 2 million rows, and a killed load changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = str(Path(__file__).with_name("loader_process.py"))
PEAK_LIMIT_MIB = 400
TWO_MILLION = 2_000_000


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, CHILD, *args], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{args[0]}: {result}")  # shown with -s: the numbers for the report
    return result


def test_two_million_row_write_then_read_stay_under_400_mib(pg, section, table_name):
    written = _child("write", json.dumps(section(table=table_name)), str(TWO_MILLION))
    assert written["rows"] == TWO_MILLION
    with pg.cursor() as cur:
        cur.execute(f"SELECT count(*), count(DISTINCT id) FROM {table_name}")
        assert cur.fetchone() == (TWO_MILLION, TWO_MILLION)
    read = _child("read", json.dumps(section(table=table_name)))
    assert read["rows"] == TWO_MILLION
    assert written["peak_mib"] < PEAK_LIMIT_MIB
    assert read["peak_mib"] < PEAK_LIMIT_MIB


def test_a_load_killed_mid_copy_leaves_the_target_unchanged(pg, section, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, name text, score double precision, at timestamptz)")
        cur.execute(f"INSERT INTO {table_name} (id, name) VALUES (1, 'before'), (2, 'before')")
    child = subprocess.Popen(
        [sys.executable, CHILD, "hang", json.dumps(section(table=table_name))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "READY", child.stderr.read()
        with pg.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'dataloader' AND datname = current_database()"
            )
            backends = [row[0] for row in cur.fetchall()]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    with pg.cursor() as cur:
        cur.execute(f"SELECT id, name FROM {table_name} ORDER BY id")
        assert cur.fetchall() == [(1, "before"), (2, "before")]
        # The server ends the killed client's session (and with it the staging table) once it
        # notices the closed socket; wait for that event, bounded.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (backends,))
            if cur.fetchone()[0] == 0:
                break
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (backends,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = '_dataloader_stage'")
        assert cur.fetchone()[0] == 0


@pytest.fixture(autouse=True)
def _child_finds_the_tests(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])))
