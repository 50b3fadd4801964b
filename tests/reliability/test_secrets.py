"""Secrets never leave the process: a canary planted in every place a secret can come from, and
every output grepped for it.

Each canary holds the marker ``cnry`` at both ends and in its middle, so a leak of any part of one
(a truncated echo, a percent-decoded URL password, one line of key material) is still found. The
outputs searched: stdout and stderr of ``validate``, ``render`` (YAML and JSON), ``check`` and
``run`` (failing against PostgreSQL and succeeding with DuckDB and local files), with ``--debug``
tracebacks, ``DATALOADER_TRACE_HOOKS=1`` and ``--log-format json``; and every file the runs leave:
state, the run history database (and ``runs --json``), dead letters. The DuckDB destination is not
searched: a recipe that writes a secret into a column asked for that.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

MARK = "cnry"

# One canary per place a secret comes from; / @ % in the URL ones, as URL passwords may hold them.
CANARIES = {
    "password_key": "cnry-pw-key-4TfQ-cnry",
    "url_password": "cnry-u/rl@pa%2Fss-cnry",
    "real_server": "cnry-real-server-pw-cnry",
    "url_query": "cnry-query-pw-cnry",
    "url_sslpassword": "cnry-sslpw-9Zq-cnry",
    "dsn_password": "cnry-dsn-pw-cnry",
    "dsn_quoted": "cnry dsn 'quoted' cnry",
    "env_password": "cnry-env-DBPW-cnry",
    "env_dsn": "cnry-envdsn-cnry",
    "var_token": "cnry-var-token-cnry",
    "s3_secret": "cnry-s3-secret-cnry",
    "api_key": "cnry-api-key-cnry",
    # Key material without a PEM header: the connector takes it for a file name.
    "private_key": "PuTTY-User-Key-File-3: ssh-ed25519\ncnryAAAAC3NzaC1lZDI1NTE5AAAAcnry\ncnry-Private-Lines-1-cnry\n",
}

ENV = {
    "DB_PASSWORD": CANARIES["env_password"],
    "WAREHOUSE_DSN": f"host=127.0.0.1 port=1 dbname=nowhere user=u password={CANARIES['env_dsn']}",
    "KEYSPACE_DIR": "/srv/keyspace/harmless",  # not a secret: must stay readable
}


def _pg(name: str, connection: str) -> str:
    """A PostgreSQL to DuckDB recipe that tries to connect once (these runs are meant to fail)."""
    return (
        f"name: {name}\nsource: {{type: postgres, table: public.t, connect_attempts: 1, {connection}}}\n"
        "destination: {type: duckdb, database: out.duckdb, table: t}\nruntime: {retries: {max_attempts: 1}}\n"
    )


def _recipes(root: Path) -> dict[str, str]:
    data = root / "data"
    data.mkdir()
    (data / "in.csv").write_text("id,email\n1,a@example.com\n2,not-an-email\n3,c@example.com\n", encoding="utf-8")
    url = f"postgresql://reader:{CANARIES['url_password']}@127.0.0.1:1/nowhere"
    quoted = CANARIES["dsn_quoted"].replace("'", "\\'")
    # One connection attempt and no retries: these runs are meant to fail, fast.
    pg_dest = "destination: {type: duckdb, database: out.duckdb, table: t}\nruntime: {retries: {max_attempts: 1}}\n"
    return {
        # Runs to completion: filestore -> DuckDB, one row to the dead letters carrying a secret.
        "ok.yaml": (
            "name: secrets_ok\n"
            f"description: 'mirror of {url}?sslpassword={CANARIES['url_sslpassword']}'\n"
            "source:\n  type: filestore\n  path: data/in.csv\n  format: csv\n"
            "transform:\n  steps:\n"
            "    - {type: add_column, name: token, value: \"{{ env_var('DB_PASSWORD') }}\"}\n"
            "    - {type: add_column, name: by, value: \"{{ var('api_token') }}\"}\n"
            "quality_checks:\n  - {column: email, check: regex, pattern: '^[^@]+@[^@]+$', action: dlq}\n"
            "runtime: {dead_letter_path: 'errors/{recipe}/{run_id}.jsonl'}\n"
            "destination: {type: duckdb, database: out.duckdb, table: t}\n"
        ),
        # Each fails to connect (nothing listens on port 1) or to parse its connection string.
        "pg_url.yaml": _pg("pg_url", f"dsn: '{url}'"),
        "pg_query.yaml": _pg(
            "pg_query",
            "dsn: 'postgresql://reader@127.0.0.1:1/nowhere"
            f"?password={CANARIES['url_query']}&sslpassword={CANARIES['url_sslpassword']}'",
        ),
        "pg_dsn.yaml": _pg("pg_dsn", f"dsn: 'host=127.0.0.1 port=1 dbname=nowhere password={CANARIES['dsn_password']}'"),
        # libpq refuses this one ("invalid dsn"), and the password holds a quote and spaces.
        "pg_bad_dsn.yaml": _pg("pg_bad_dsn", json.dumps({"dsn": f"host=127.0.0.1 password='{quoted}' port"})[1:-1]),
        "pg_env.yaml": _pg("pg_env", "dsn: \"{{ env_var('WAREHOUSE_DSN') }}\""),
        "pg_key.yaml": _pg(
            "pg_key", f"host: 127.0.0.1, port: 1, database: nowhere, user: u, password: '{CANARIES['password_key']}'"
        ),
        # The real server (trust auth ignores the password) answers: no such table.
        "pg_real.yaml": _pg(
            "pg_real",
            f"dsn: 'postgresql://postgres:{CANARIES['real_server']}@127.0.0.1:5432/postgres', "
            "table: public.dl_no_such_table",
        ).replace("table: public.t, ", ""),
        # A secret in the wrong key: the int parser must not echo it.
        "port.yaml": _pg("port", "host: 127.0.0.1, port: \"{{ env_var('DB_PASSWORD') }}\""),
        # Inline key material where a path may go; S3 credentials on a local path.
        "sftp_key.yaml": (
            "name: sftp_key\nsource:\n  type: filestore\n  path: sftp://127.0.0.1:1/data/in.csv\n  format: csv\n"
            "  username: u\n  host_key_policy: accept_new\n  retries: 0\n"
            f"  private_key: {json.dumps(CANARIES['private_key'])}\n"
            f"{pg_dest}"
        ),
        "s3.yaml": (
            "name: s3_keys\nsource:\n  type: filestore\n  path: data/in.csv\n  format: csv\n"
            f"  key: AKIAEXAMPLE\n  secret: '{CANARIES['s3_secret']}'\n"
            f"destination: {{type: duckdb, database: out.duckdb, table: t, api_key: '{CANARIES['api_key']}'}}\n"
        ),
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name, text in _recipes(root).items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def _dataloader(dataloader_bin: str, project: Path, *args: str, extra_env: dict[str, str] | None = None):
    env = {**os.environ, **ENV, "DATALOADER_HISTORY": str(project / ".dataloader" / "runs.db"), **(extra_env or {})}
    env.pop("DATALOADER_STATE_DIR", None)
    return subprocess.run(
        [dataloader_bin, *args], cwd=project, env=env, capture_output=True, text=True, timeout=180
    )


def _leaks(text: str) -> list[str]:
    return [line for line in text.splitlines() if MARK in line]


def test_a_canary_in_every_kind_of_secret_never_reaches_any_output(dataloader_bin, project):
    recipes = sorted(p.name for p in project.glob("*.yaml"))
    var = ["--var", f"api_token={CANARIES['var_token']}"]
    outputs: dict[str, str] = {}

    def record(label: str, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        done = _dataloader(dataloader_bin, project, *args, extra_env=extra_env)
        outputs[f"{label} stdout"] = done.stdout
        outputs[f"{label} stderr"] = done.stderr
        return done

    validated = record("validate", "validate", *var, *recipes)
    assert validated.returncode == 1  # port.yaml is invalid, the rest only fail when run
    assert re.search(r"port.yaml(:\d+)?: source.port:", validated.stdout), validated.stdout
    for name in recipes:
        record(f"render {name}", "render", *var, name)
    for name in ("pg_env.yaml", "sftp_key.yaml", "ok.yaml"):
        record(f"render {name} json", "render", *var, name, "--format", "json")
    rendered = _dataloader(dataloader_bin, project, "render", *var, "pg_env.yaml")
    assert "dsn: host=127.0.0.1 port=1 dbname=nowhere user=u password=********" in rendered.stdout
    debug = record("render --debug port.yaml", "--debug", "render", "port.yaml")
    assert "Traceback" in debug.stderr and "source.port" in debug.stderr

    trace = {"DATALOADER_TRACE_HOOKS": "1"}
    ok = record("run ok", "--debug", "run", *var, "ok.yaml", extra_env=trace)
    assert ok.returncode == 0, ok.stderr
    assert "partial_success" in ok.stdout and "[hook]" in ok.stderr
    record("run ok json", "run", *var, "--log-format", "json", "--full-refresh", "ok.yaml")
    record("run s3", "run", "s3.yaml")
    failing = ["pg_real.yaml", "pg_url.yaml", "pg_query.yaml", "pg_dsn.yaml", "pg_bad_dsn.yaml", "pg_env.yaml", "pg_key.yaml"]
    if importlib.util.find_spec("paramiko") is not None:  # the filestore's sftp extra
        failing.append("sftp_key.yaml")
    failed = record("run failing", "--debug", "run", *failing, extra_env=trace)
    assert failed.returncode == 1
    assert failed.stderr.count("error: ") >= len(failing), failed.stderr
    assert "invalid dsn" in failed.stderr  # libpq's own complaint is shown, without the password
    record("run failing json", "run", "--log-format", "json", *failing)
    record("check failing", "check", *failing)
    history = record("runs", "runs", "--json", "--limit", "100")
    assert len(json.loads(history.stdout)) == 2 * len(failing) + 2  # s3.yaml is invalid, never ran

    for label, text in outputs.items():
        assert not _leaks(text), f"{label} leaks a secret: {_leaks(text)[:3]}"

    written = [p for p in project.rglob("*") if p.is_file() and p.suffix not in (".yaml", ".csv", ".duckdb", ".wal")]
    assert any("errors" in p.parts for p in written), "the ok run should have written dead letters"
    assert any(p.name == "runs.db" for p in written)
    assert any(".state" in p.parts for p in written)
    for path in written:
        assert MARK.encode() not in path.read_bytes(), f"{path.relative_to(project)} holds a secret"


def test_harmless_values_next_to_secrets_stay_readable(dataloader_bin, project):
    (project / "paths.yaml").write_text(
        "name: paths\nsource: {type: filestore, path: \"{{ env_var('KEYSPACE_DIR') }}/in.csv\", format: csv}\n"
        "destination: {type: duckdb, database: out.duckdb, table: t, merge_keys: [id], write_mode: merge}\n",
        encoding="utf-8",
    )
    rendered = _dataloader(dataloader_bin, project, "render", "paths.yaml")
    assert rendered.returncode == 0, rendered.stderr
    assert "path: /srv/keyspace/harmless/in.csv" in rendered.stdout
    assert "- id" in rendered.stdout


def test_run_history_and_dead_letters_are_private_files(dataloader_bin, project):
    done = _dataloader(dataloader_bin, project, "run", "--var", "api_token=x", "ok.yaml")
    assert done.returncode == 0, done.stderr
    history = project / ".dataloader" / "runs.db"
    dead = next((project / "errors").rglob("*.jsonl"))
    state = next((project / ".state").glob("*.json"))
    for path in (history, dead, state):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
