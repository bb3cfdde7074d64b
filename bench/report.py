"""Results: medians of runs, targets from the issue, and the `docs/performance.md` page.

Each scenario run gives a dict of numbers. Across runs, counts of problems (`lost`, `late`,
`duplicates`, ...) are summed, so one lost answer in any run shows; every other figure is the
median of the runs.

The *fraction* column says how much of the bare limit Tertulia reaches: Tertulia / bare for
figures where more is better (rates, connections held), bare / Tertulia where less is better
(latencies, memory). 100 % means as good as a server that stores nothing.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.scenarios import PROBLEMS, Sizes
from bench.servers import REPO, STORED_SCENARIOS
from bench.stats import median

COUNTS = {
    "lost",
    "late",
    "duplicates",
    "errors",
    "other",
    "unparsable",
    "closed",
    "wrong",
    "failed",
    "ungreeted",
}
HIGHER_IS_BETTER = ("_per_s", "held")
LOWER_IS_BETTER = ("_ms", "kib_", "rss_", "setup_s")
PACKAGES = ("uvicorn", "starlette", "fastapi", "websockets", "uvloop", "httptools", "orjson")

# Every page ends with this line; what a page has below it (hand-written notes: the profile
# summary, the rounds of measures) is carried over to the next page written in its place.
NOTES_MARKER = "<!-- notes below are kept by bench.run -->"

# Figures of the original BLAB Controller, from the issue, for reference.
BLAB = {
    ("roundtrip", "p50_ms"): 136,
    ("roundtrip", "p99_ms"): 179,
    ("throughput", "answers_per_s"): 10.8,
    ("create", "sequential_per_s"): 9.6,
    ("history", "sequential_per_s"): 4.2,
    ("fanout", "p99_ms_50"): 65,
}


@dataclass(frozen=True, slots=True)
class Goal:
    """A target from the issue: `metric op value`, on Tertulia's figure or its fraction."""

    op: str
    value: float
    on_fraction: bool = False

    def met(self, figure: float) -> bool:
        """Whether `figure` meets the goal (NaN never does)."""
        if math.isnan(figure):
            return False
        if self.op == "<=":
            return figure <= self.value
        if self.op == ">=":
            return figure >= self.value
        return figure == self.value

    def label(self) -> str:
        """The goal as the table shows it."""
        value = f"{self.value:.0%}" if self.on_fraction else fmt(self.value)
        return f"{self.op} {value}" + (" of limit" if self.on_fraction else "")


def goals(sizes: Sizes) -> dict[tuple[str, str], list[Goal]]:
    """The issue's targets (and "nothing lost"), for the metrics the sizes produce."""
    table: dict[tuple[str, str], list[Goal]] = {
        ("roundtrip", "p50_ms"): [Goal("<=", 3)],
        ("roundtrip", "p99_ms"): [Goal("<=", 10)],
        ("throughput", "answers_per_s"): [Goal(">=", 1500), Goal(">=", 0.40, on_fraction=True)],
        ("throughput", "p99_ms"): [Goal("<=", 50)],
        ("create", "sequential_per_s"): [Goal(">=", 300)],
        ("history", "sequential_per_s"): [Goal(">=", 500)],
        ("fanout", "p99_ms_50"): [Goal("<=", 10)],
        ("fanout", "p99_ms_1000"): [Goal("<=", 150)],
        ("connections", "held"): [Goal(">=", sizes.connections)],
        ("connections", "ungreeted"): [Goal("==", 0)],
        ("connections", "kib_per_connection"): [Goal("<=", 60)],
    }
    for name in ("roundtrip", "throughput", "history", "manager"):
        table[(name, "lost")] = [Goal("==", 0)]
    for people in sizes.fanout_people:
        table[("fanout", f"lost_{people}")] = [Goal("==", 0)]
        table[("fanout", f"late_{people}")] = [Goal("==", 0)]
    table[("manager", "wrong")] = [Goal("==", 0)]
    return table


@dataclass(slots=True)
class Runs:
    """All runs of one scenario on one server."""

    runs: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        """Counts summed over the runs, other figures their median."""
        keys = list(dict.fromkeys(k for run in self.runs for k in run))
        values = {k: [run[k] for run in self.runs if k in run] for k in keys}
        return {k: sum(v) if is_count(k) else median(v) for k, v in values.items()}


Results = dict[str, dict[str, Runs]]  # server name -> scenario name -> outcome


def is_count(metric: str) -> bool:
    """Whether the metric is a count of problems (summed, not a median)."""
    return metric.split("_")[0] in COUNTS


def fraction(metric: str, figure: float, limit: float) -> float:
    """How much of the limit the figure reaches (see the module docstring); NaN if none."""
    if is_count(metric) or math.isnan(figure) or math.isnan(limit) or figure <= 0 or limit <= 0:
        return math.nan
    if any(metric.endswith(s) or s == metric for s in HIGHER_IS_BETTER):
        return figure / limit
    if any(s in metric for s in LOWER_IS_BETTER):
        return limit / figure
    return math.nan


def fmt(value: float) -> str:
    """A figure with sensible precision; `—` for NaN."""
    if math.isnan(value):
        return "—"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def table(
    results: Results,
    server: str,
    sizes: Sizes,
    scenarios: Iterable[str],
    limit_server: str = "bare",
) -> list[str]:
    """Markdown rows comparing `server` with a limit: the bare limit, with the targets (which
    are set against it), or the stored limit, without them."""
    rows = [
        f"| scenario | metric | {_label(server, 'Tertulia')} | {_label(limit_server)} "
        "| fraction of limit | target | BLAB | pass |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    targets = goals(sizes) if limit_server == "bare" else {}
    for scenario in scenarios:
        ours = results.get(server, {}).get(scenario, Runs()).figures()
        bare = results.get(limit_server, {}).get(scenario, Runs()).figures()
        for metric in dict.fromkeys([*ours, *bare]):
            if metric in PROBLEMS:
                continue
            figure, limit = ours.get(metric, math.nan), bare.get(metric, math.nan)
            share = fraction(metric, figure, limit)
            wanted = targets.get((scenario, metric), [])
            verdicts = [g.met(share if g.on_fraction else figure) for g in wanted]
            cells = [
                scenario,
                metric,
                fmt(figure),
                fmt(limit),
                "—" if math.isnan(share) else f"{share:.0%}",
                ", ".join(g.label() for g in wanted) or "—",
                fmt(BLAB.get((scenario, metric), math.nan)),
                "—" if not wanted else "pass" if all(verdicts) else "**fail**",
            ]
            rows.append("| " + " | ".join(cells) + " |")
        rows.append(_problems_row(scenario, ours, bare))
    return rows


def _label(server: str, otherwise: str | None = None) -> str:
    """How the tables name a server: the limits by their role, Tertulia's by `otherwise`
    (its result name when None)."""
    limits = {"bare": "bare limit", "stored": "stored limit"}
    return limits.get(server) or otherwise or server


def _problems_row(scenario: str, ours: dict[str, float], bare: dict[str, float]) -> str:
    """One row for every problem count: `none`, or the non-zero counts."""
    ok = bool(ours) and not any(ours.get(name, 0) for name in PROBLEMS)
    verdict = "—" if not ours else "pass" if ok else "**fail**"
    cells = [scenario, "problems", problems(ours), problems(bare), "—", "none", "—", verdict]
    return "| " + " | ".join(cells) + " |"


def problems(figures: dict[str, float]) -> str:
    """The non-zero problem counts as text (`none` if all are zero, `—` with no figures)."""
    if not figures:
        return "—"
    found = [f"{name} {fmt(figures[name])}" for name in PROBLEMS if figures.get(name)]
    return ", ".join(found) or "none"


def bare_table(results: Results, scenarios: Iterable[str]) -> list[str]:
    """Markdown rows of the bare limit alone."""
    rows = ["| scenario | metric | bare limit |", "| --- | --- | ---: |"]
    for scenario in scenarios:
        figures = results.get("bare", {}).get(scenario, Runs()).figures()
        for metric, value in figures.items():
            if metric not in PROBLEMS:
                rows.append(f"| {scenario} | {metric} | {fmt(value)} |")
        rows.append(f"| {scenario} | problems | {problems(figures)} |")
    return rows


def machine() -> list[str]:
    """Facts about this machine and the software measured, as Markdown bullets."""
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor()
    mem_kib = int((_proc_field("/proc/meminfo", "MemTotal") or "0 kB").split()[0])
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- RAM: {mem_kib / 1024 / 1024:.1f} GiB",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        f"- Packages: {versions}",
        f"- Tertulia: {_version('tertulia')}, commit {_git_commit()}",
    ]


def _proc_field(path: str, name: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        return None
    return None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' (with uncommitted changes)' if dirty else ''}"


@dataclass(frozen=True, slots=True)
class Page:
    """What the performance page needs besides the results."""

    command: str
    sizes: Sizes
    quick: bool
    runs: int
    servers: list[str]
    scenarios: list[str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


class NotesWouldBeLost(ValueError):
    """The page to be replaced has text but no notes marker."""


def kept_notes(previous: str) -> str:
    """The notes of a page written before, from its marker on; empty for no page.

    Raises:
        NotesWouldBeLost: the page has text but no marker, so writing a new page in its
            place would lose whatever was written by hand in it.
    """
    if NOTES_MARKER in previous:
        return previous[previous.index(NOTES_MARKER) :].rstrip("\n") + "\n"
    if previous.strip():
        raise NotesWouldBeLost(
            f"it has no line {NOTES_MARKER!r}: put that line above its hand-written notes "
            "(they are kept), or write the results elsewhere with --output"
        )
    return ""


def render(results: Results, page: Page, notes: str = "") -> str:
    """The whole `docs/performance.md`: the results, then `notes` (see `kept_notes`), or
    the marker alone."""
    lines = [
        "# Performance",
        "",
        "Measured with the benchmark suite in `bench/` (what each scenario does: "
        "`bench/README.md`). Figures are medians of the runs; counts of problems "
        "(`lost`, `late`, `duplicates`, `errors`, `closed`, `wrong`, `failed`, `ungreeted`) "
        "are summed over the runs. Latencies in ms, rates per second, memory in MiB/KiB.",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{page.command}`",
        f"- Mode: {'quick (small sizes, smoke test only)' if page.quick else 'full'}, "
        f"{page.runs} run(s) per scenario, a fresh server process per run",
        *machine(),
        f"- Load average (1, 5, 15 min) before: {_load(page.load_before)}, "
        f"after: {_load(page.load_after)} (client and servers share the machine; anything "
        "else running shows here)",
        "",
        "The *bare limit* is `bench/echo_server.py`: the same stack (Starlette, uvicorn, uvloop, "
        "httptools) speaking the same protocol but storing nothing. *Fraction of limit*: "
        "Tertulia / bare for rates, bare / Tertulia for latencies and memory.",
    ]
    if "stored" in page.servers:
        lines += [
            "",
            "The *stored limit* is the same server with `--store` (`bench/stored.py`): the bare "
            "limit plus the rows Tertulia writes per message (the text and its delivery in one "
            "commit, the answer and the delivery's end in the next), in SQLite with Tertulia's "
            "schema and grouped commits, and nothing else: what storing alone leaves of the "
            f"bare limit. It is measured on the message path only ({', '.join(STORED_SCENARIOS)}), "
            "and the last table sets Tertulia against it (no targets there: they are set against "
            "the bare limit).",
        ]
    stored_scenarios = [s for s in page.scenarios if s in STORED_SCENARIOS]
    for server in page.servers:
        if server == "bare":
            continue
        scenarios = stored_scenarios if server == "stored" else page.scenarios
        lines += ["", f"## {_label(server)} against the bare limit", ""]
        lines += table(results, server, page.sizes, scenarios)
    if "stored" in page.servers:
        for server in page.servers:
            if server not in ("bare", "stored"):
                lines += ["", f"## {server} against the stored limit", ""]
                lines += table(results, server, page.sizes, stored_scenarios, "stored")
    if page.servers == ["bare"]:
        lines += ["", "## bare limit only", "", *bare_table(results, page.scenarios)]
    lines += _errors(results)
    lines += ["", notes.rstrip("\n") or NOTES_MARKER]
    return "\n".join(lines) + "\n"


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def _errors(results: Results) -> list[str]:
    found = [
        f"- {server} / {scenario}: {error}"
        for server, outcomes in results.items()
        for scenario, outcome in outcomes.items()
        for error in outcome.errors
    ]
    return ["", "## Errors", "", *found] if found else []


def command_line() -> str:
    """The command that was run, as one would type it from the repository root."""
    executable = os.path.relpath(sys.executable, REPO) if sys.executable else "python"
    return shlex.join([executable, "-m", "bench.run", *sys.argv[1:]])
