"""Run one command and measure it: wall time and the peak resident memory of its process tree.

Peak RSS is the largest sum, over one poll, of the RSS of the process and all its descendants
(a tool that forks a ``psql`` or a ``duckdb`` CLI is charged for it). Polling every 20 ms can miss
a spike shorter than that; ``ru_maxrss`` of the direct child is taken as a floor for the figure.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

POLL_SECONDS = 0.02


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


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
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
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(log, "wb") as out, open(stdin_path or os.devnull, "rb") as stdin:
        started = time.perf_counter()
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, env=env, cwd=cwd)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss (KiB) of children only grows; when it grew, this child set the new maximum.
    if after > before:
        peak = max(peak, after * 1024)
    return Measurement(popen.returncode, wall, peak, log, timed_out)
