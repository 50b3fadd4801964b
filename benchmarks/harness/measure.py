"""Run one command and measure it: wall time and the peak resident memory of its process tree.

Peak RSS is the largest sum, over one poll, of the RSS of the command and all its descendants (a
tool that forks a ``psql`` or a ``duckdb`` CLI is charged for it). Polling every 20 ms can miss a
spike shorter than that, so the command runs under a small wrapper process whose
``RUSAGE_CHILDREN`` gives the largest ``ru_maxrss`` of any single process of the run: the figure
reported is the larger of the two.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

POLL_SECONDS = 0.02
WRAPPER = Path(__file__).parent / "scripts" / "rusage_wrapper.py"


@dataclass
class Measurement:
    returncode: int
    wall_s: float
    peak_rss: int  # bytes
    log: Path
    timed_out: bool = False

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _tree_rss(wrapper: psutil.Process) -> int:
    """RSS of everything below the wrapper (the wrapper itself is the harness's, not the tool's)."""
    total = 0
    try:
        procs = wrapper.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _kill_tree(proc: psutil.Process) -> None:
    try:
        procs = [*proc.children(recursive=True), proc]
    except psutil.Error:
        procs = [proc]
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def run_measured(cmd: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout_s: float = 1800.0, stdin_path: Path | None = None) -> Measurement:
    """Run ``cmd`` to completion, output to ``log``, and return its wall time and peak tree RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd, rusage_file = tempfile.mkstemp(prefix="bench-rusage-")
    os.close(fd)
    wrapped = [sys.executable, str(WRAPPER), rusage_file, *cmd]
    with open(log, "wb") as out, open(stdin_path or os.devnull, "rb") as stdin:
        started = time.perf_counter()
        popen = subprocess.Popen(wrapped, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, env=env, cwd=cwd)
        proc = psutil.Process(popen.pid)
        peak = 0
        timed_out = False
        while True:
            try:
                popen.wait(POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                peak = max(peak, _tree_rss(proc))
                if time.perf_counter() - started > timeout_s:
                    timed_out = True
                    _kill_tree(proc)
        wall = time.perf_counter() - started
    try:
        peak = max(peak, int(Path(rusage_file).read_text() or 0))
    except (OSError, ValueError):
        pass  # a killed wrapper wrote nothing; the polled figure stands
    finally:
        os.unlink(rusage_file)
    return Measurement(popen.returncode, wall, peak, log, timed_out)
