"""The peers' own venv (``benchmarks/.venv-peers``): dlt, Sling's binary and the DuckDB CLI.

None of these becomes a dependency of our packages. The venv is created once and reused while its
pinned requirements are unchanged. A peer that cannot be installed is reported as unavailable with
the reason (the last lines pip printed), never a crash of the harness.

Sling drives the DuckDB CLI for its DuckDB target and cannot download the CLI's extensions here, so
the extensions come from their own wheels and are copied into the CLI's extension folder under a
home folder kept inside the venv (``HOME`` points there when Sling runs).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DUCKDB_CLI_VERSION = "1.5.5"
REQUIREMENT_GROUPS: dict[str, list[str]] = {
    "dlt": ["dlt[parquet,sql-database,duckdb,postgres,filesystem]==1.31.0", "connectorx==0.4.6",
            "psycopg2-binary>=2.9"],
    "sling": ["sling-linux-amd64==1.4.11", f"duckdb-cli=={DUCKDB_CLI_VERSION}",
              *(f"duckdb-extension-{name}=={DUCKDB_CLI_VERSION}" for name in ("json", "parquet", "icu", "httpfs"))],
}


@dataclass
class Peers:
    venv: Path
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def home(self) -> Path:
        return self.venv / "home"

    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))

    @property
    def sling(self) -> Path:
        return self.site_packages() / "sling_linux_amd64" / "bin" / "sling-linux-amd64"

    @property
    def duckdb_cli(self) -> Path:
        return self.site_packages() / "duckdb_cli" / "duckdb"

    def versions(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if "dlt" not in self.unavailable:
            out = subprocess.run([str(self.python), "-c", "import dlt, connectorx; print(dlt.__version__)"],
                                 capture_output=True, text=True)
            found["dlt"] = out.stdout.strip() or "?"
        if "sling" not in self.unavailable:
            out = subprocess.run([str(self.sling), "--version"], capture_output=True, text=True)
            found["sling"] = (out.stdout.strip().splitlines() or ["?"])[-1].replace("Version: ", "")
            out = subprocess.run([str(self.duckdb_cli), "--version"], capture_output=True, text=True)
            found["duckdb CLI (for Sling)"] = out.stdout.strip().split(" ")[0]
        return found


def _pip_tail(output: str, lines: int = 3) -> str:
    useful = [line for line in output.splitlines() if line.strip() and "is ignored" not in line]
    return " | ".join(useful[-lines:]) or "pip failed"


def _install_extensions(peers: Peers) -> None:
    target = peers.home / ".duckdb" / "extensions" / f"v{DUCKDB_CLI_VERSION}" / "linux_amd64"
    target.mkdir(parents=True, exist_ok=True)
    for ext in peers.site_packages().glob(f"duckdb_extension_*/extensions/v{DUCKDB_CLI_VERSION}/*.duckdb_extension"):
        shutil.copy2(ext, target / ext.name)


def ensure_peers(venv: Path, wanted: set[str], log=print) -> Peers:
    """Create/refresh the peers venv for the wanted peers (``dlt``, ``sling``)."""
    peers = Peers(venv)
    wanted = wanted & set(REQUIREMENT_GROUPS)
    if not wanted:
        return peers
    if sys.platform != "linux":
        peers.unavailable.update({name: "the benchmark's peer setup is Linux-only" for name in wanted})
        return peers
    if not peers.python.exists():
        log(f"creating the peers venv {venv}")
        done = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if done.returncode != 0:
            peers.unavailable.update({name: f"cannot create a venv: {_pip_tail(done.stderr)}" for name in wanted})
            return peers
    stamp_file = venv / "bench-installed.json"
    stamps = json.loads(stamp_file.read_text()) if stamp_file.exists() else {}
    for name in sorted(wanted):
        reqs = REQUIREMENT_GROUPS[name]
        digest = hashlib.sha256("\n".join(reqs).encode()).hexdigest()
        if stamps.get(name) != digest:
            log(f"installing {name} into the peers venv: {' '.join(reqs)}")
            done = subprocess.run([str(peers.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   *reqs], capture_output=True, text=True)
            if done.returncode != 0:
                peers.unavailable[name] = f"pip install failed: {_pip_tail(done.stdout + done.stderr)}"
                continue
            stamps[name] = digest
            stamp_file.write_text(json.dumps(stamps))
        if name == "sling":
            if not peers.sling.exists():
                peers.unavailable[name] = f"the sling-linux-amd64 wheel has no binary at {peers.sling}"
                continue
            _install_extensions(peers)
    return peers
