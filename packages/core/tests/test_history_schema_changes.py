import sqlite3

from dataloader.history import RunHistory
from dataloader.run.events import RunResult

OLD_SCHEMA = """CREATE TABLE runs (run_id TEXT PRIMARY KEY, recipe TEXT NOT NULL, status TEXT NOT NULL,
started_at TEXT NOT NULL, finished_at TEXT NOT NULL, duration_s REAL NOT NULL, rows_read INTEGER NOT NULL,
rows_written INTEGER NOT NULL, rows_failed INTEGER NOT NULL, error TEXT, state_before TEXT, state_after TEXT,
dead_letter_path TEXT)"""


def test_schema_changes_recorded_and_listed(tmp_path):
    history = RunHistory(tmp_path / "runs.db")
    change = {"kind": "add_column", "column": "email", "type": "string"}
    history.record(RunResult(status="success", recipe_name="r", run_id="a", schema_changes=[change]))
    history.record(RunResult(status="success", recipe_name="r", run_id="b"))
    records = {r["run_id"]: r for r in history.list()}
    assert records["a"]["schema_changes"] == [change]
    assert records["b"]["schema_changes"] == []


def test_old_runs_db_is_migrated_in_place(tmp_path):
    path = tmp_path / "runs.db"
    con = sqlite3.connect(path)
    con.execute(OLD_SCHEMA)
    con.execute("INSERT INTO runs VALUES ('old','r','success','t0','t1',1.0,3,3,0,NULL,'{}','{}',NULL)")
    con.commit()
    con.close()
    history = RunHistory(path)
    history.record(RunResult(status="success", recipe_name="r", run_id="new", schema_changes=[{"kind": "add_column"}]))
    records = {r["run_id"]: r for r in history.list()}
    assert records["old"]["rows_written"] == 3
    assert records["old"]["schema_changes"] == []
    assert records["new"]["schema_changes"] == [{"kind": "add_column"}]
