"""Summaries: per-tool medians, the printed table, the machine facts and the docs page."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field

import psutil

MIB = 1024 * 1024
#: The issue's targets for dataloader (issue 20): max ratio to the floor per workload, and peak RSS.
TARGET_RATIO = {"W1": 1.1, "W2": 1.1, "W3": 1.25, "W4": 1.1, "W5": 1.1}
#: W6 (the no-op incremental run) has an absolute target: start-up plus finding nothing.
TARGET_NOOP_S = 0.5
TARGET_RSS_MIB = 300


@dataclass
class RunRecord:
    wall_s: float
    peak_rss: int
    ok: bool
    error: str = ""
    warmup: bool = False
    #: The machine's 1-minute load average when the run started (other work on it skews times).
    load: float = 0.0
    #: W5/W6: the rows the tool said it read from the source (checked against the change set).
    rows_read: int | None = None


@dataclass
class ToolResult:
    workload: str
    tool: str
    label: str
    unavailable: str = ""
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def measured(self) -> list[RunRecord]:
        return [r for r in self.runs if not r.warmup]

    @property
    def failure(self) -> str:
        bad = next((r for r in self.runs if not r.ok), None)
        return bad.error if bad else ""

    @property
    def status(self) -> str:
        if self.unavailable:
            return "unavailable"
        if self.failure:
            return "FAILED"
        return "ok" if self.measured else "not run"

    @property
    def median_s(self) -> float | None:
        return statistics.median(r.wall_s for r in self.measured) if self.status == "ok" else None

    @property
    def peak_rss_mib(self) -> float | None:
        return max(r.peak_rss for r in self.measured) / MIB if self.status == "ok" else None

    def to_dict(self, rows: int, floor_s: float | None) -> dict:
        median = self.median_s
        return {
            "workload": self.workload, "tool": self.tool, "label": self.label, "status": self.status,
            "reason": self.unavailable or self.failure, "median_s": median,
            "rows_per_s": rows / median if median and rows else None, "peak_rss_mib": self.peak_rss_mib,
            "ratio_to_floor": median / floor_s if median and floor_s else None,
            "runs": [r.__dict__ for r in self.runs],
        }


def variant(label: str) -> str:
    """W5/W6 labels name the target (`dataloader → duckdb`); a tool is compared with the floor on the same one."""
    return label.split(" → ", 1)[1] if " → " in label else ""


def summarise(results: list[ToolResult], rows: int, moved: dict[str, int] | None = None) -> list[dict]:
    """``moved``: rows a run actually moves, where that is not the data set (W5: the change set; W6: none)."""
    moved = moved or {}
    floors = {(r.workload, variant(r.label)): r.median_s for r in results if r.tool == "floor"}
    return [r.to_dict(moved.get(r.workload, rows), floors.get((r.workload, variant(r.label)))) for r in results]


def _fmt(value, spec: str, empty: str = "—") -> str:
    return empty if value is None else format(value, spec)


def table_lines(summary: list[dict], workloads: dict[str, str]) -> list[str]:
    """A Markdown table (also readable printed)."""
    lines = ["| workload | tool | status | median s | rows/s | peak RSS MiB | × floor |",
             "|---|---|---|---:|---:|---:|---:|"]
    for row in summary:
        status = row["status"] if row["status"] == "ok" else f"**{row['status']}**"
        lines.append(
            f"| {row['workload']} {workloads[row['workload']]} | {row['label']} | {status} | "
            f"{_fmt(row['median_s'], '.2f')} | {_fmt(row['rows_per_s'], ',.0f')} | "
            f"{_fmt(row['peak_rss_mib'], ',.0f')} | {_fmt(row['ratio_to_floor'], '.2f')} |"
        )
    return lines


def problem_lines(summary: list[dict]) -> list[str]:
    return [f"- {row['workload']} {row['label']}: {row['status']}: {row['reason']}"
            for row in summary if row["status"] not in ("ok",)]


def target_lines(summary: list[dict]) -> list[str]:
    """dataloader against the issue's targets: × floor, dlt at least 2× slower, RSS; W6 under 0.5 s."""
    lines = ["| workload | dataloader | × floor | target | fastest dlt s | dlt ÷ dataloader (≥ 2) | dataloader s | "
             "peak RSS MiB (≤ 300) | met |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for ours in summary:
        workload = ours["workload"]
        if ours["tool"] != "dataloader" or workload not in (*TARGET_RATIO, "W6"):
            continue
        limit = TARGET_RATIO.get(workload)
        dlts = [r["median_s"] for r in summary if r["workload"] == workload and r["tool"] == "dlt" and r["median_s"]]
        fastest_dlt = min(dlts) if dlts else None
        ratio, median, rss = ours["ratio_to_floor"], ours["median_s"], ours["peak_rss_mib"]
        dlt_factor = fastest_dlt / median if fastest_dlt and median else None
        if workload == "W6":
            met = median is not None and median < TARGET_NOOP_S
            target = f"< {TARGET_NOOP_S} s"
        else:
            met = (ratio is not None and ratio <= limit and rss is not None
                   and (workload == "W5" or rss <= TARGET_RSS_MIB)
                   and (dlt_factor is None or dlt_factor >= 2))
            target = f"≤ {limit}"
        lines.append(f"| {workload} | {ours['label']} | {_fmt(ratio, '.2f')} | {target} | {_fmt(fastest_dlt, '.2f')} | "
                     f"{_fmt(dlt_factor, '.2f')} | {_fmt(median, '.2f')} | {_fmt(rss, ',.0f')} | "
                     f"{'yes' if met else '**no**'} |")
    return lines


def machine_facts(pg_version: str, versions: dict[str, str]) -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    facts = {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / 1024**3:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "PostgreSQL": pg_version,
    }
    facts.update(versions)
    return facts


def harness_versions(dataloader_bin: str | None) -> dict[str, str]:
    found: dict[str, str] = {}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no", "packages"],
                               capture_output=True, text=True).stdout.strip()
        found["repo commit"] = head.stdout.strip() + (" (packages/ with uncommitted changes)" if dirty else "")
    if dataloader_bin:
        out = subprocess.run([dataloader_bin, "--version"], capture_output=True, text=True)
        found["dataloader"] = out.stdout.strip().split()[-1] if out.returncode == 0 and out.stdout.strip() else "?"
    for module in ("pyarrow", "duckdb", "psycopg2"):
        try:
            found[module] = __import__(module).__version__.split(" ")[0]
        except Exception:
            pass
    return found
