"""The benchmark runner: `python -m bench.run [--quick] [--only a,b] [--database-url URL]`.

For each selected scenario, for each run, for each server in turn (another checkout's
Tertulia with `--compare PATH`, Tertulia on SQLite, Tertulia on PostgreSQL when
`--database-url` is given, the bare echo server): start a fresh server process in a
temporary directory, wait until `GET /api/chat/bots/` answers, measure, stop the server.
Then write the results table to `docs/performance.md` (or `--output`).

Only 127.0.0.1 is used. The soft open-files limit is raised to the hard one first, for this
process and the servers it starts. Every scenario run is capped in time; servers are always
stopped, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson
import uvloop

from bench.report import NotesWouldBeLost, Page, Results, Runs, command_line, kept_notes, render
from bench.scenarios import QUICK, SCENARIOS, Sizes
from bench.servers import (
    REPO,
    STORED_SCENARIOS,
    ServerError,
    ServerSpec,
    log_tail,
    raise_nofile_limit,
    running_server,
)

COMPARED = "tertulia-sqlite-compared"  # --compare: the other checkout's Tertulia, on SQLite
COMPARED_ON_POSTGRESQL = "tertulia-postgresql-compared"  # and with --database-url, there too


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: smoke test")
    parser.add_argument("--runs", type=int, help="runs per scenario (default 3, quick 1)")
    parser.add_argument(
        "--servers",
        default="tertulia,bare",
        help="comma-separated: tertulia, bare (the bare limit), stored (the stored limit)",
    )
    parser.add_argument("--database-url", help="also run Tertulia on this PostgreSQL URL")
    parser.add_argument(
        "--compare",
        type=Path,
        help="also run another checkout's Tertulia (its src), taking turns with this one's "
        "(on SQLite, and on --database-url's PostgreSQL when given)",
    )
    parser.add_argument(
        "--tertulia",
        default=str(Path(sys.executable).parent / "tertulia"),
        help="the tertulia command (default: the one beside this Python)",
    )
    parser.add_argument("--output", default=str(REPO / "docs" / "performance.md"))
    parser.add_argument("--json", help="also write the raw results of every run here")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    args.runs = args.runs or (1 if args.quick else 3)
    return args


def server_specs(args: argparse.Namespace) -> list[ServerSpec]:
    """The servers to measure: the compared checkout's Tertulia, this one's, the stored
    limit, the bare limit."""
    wanted = set(args.servers.split(","))
    # Servers run in their own directory: make the command independent of ours.
    tertulia = os.path.abspath(shutil.which(args.tertulia) or args.tertulia)
    specs = []
    source = None if args.compare is None else args.compare.resolve() / "src"
    if source is not None:
        specs.append(ServerSpec(COMPARED, "tertulia", tertulia, source=source))
    if "tertulia" in wanted:
        specs.append(ServerSpec("tertulia-sqlite", "tertulia", tertulia))
    if source is not None and args.database_url:
        specs.append(
            ServerSpec(COMPARED_ON_POSTGRESQL, "tertulia", tertulia, args.database_url, source)
        )
    if "tertulia" in wanted and args.database_url:
        specs.append(ServerSpec("tertulia-postgresql", "tertulia", tertulia, args.database_url))
    if "stored" in wanted:
        specs.append(ServerSpec("stored", "stored"))
    if "bare" in wanted:
        specs.append(ServerSpec("bare", "bare"))
    return specs


async def measure_run(
    spec: ServerSpec,
    name: str,
    run: int,
    outcomes: dict[str, Runs],
    sizes: Sizes,
    workdir: Path,
) -> bool:
    """Run `run` of scenario `name` on a fresh `spec` process, into `outcomes`; False when
    the server did not start (the caller skips it from then on)."""
    scenario, outcome = SCENARIOS[name], outcomes.setdefault(name, Runs())
    rundir = workdir / spec.name / f"{name}-{run}"
    began = time.monotonic()
    try:
        async with running_server(spec, rundir, manager=scenario.manager) as target:
            figures = await scenario.measure(target, sizes)
        outcome.runs.append(figures)
        say(f"{spec.name} {name} run {run}: {summary(figures)}", began)
    except ServerError as exc:
        outcome.errors.append(f"run {run}: the server did not start: {exc}")
        say(f"{spec.name}: the server did not start; skipping it\n{exc}", began)
        return False
    except Exception as exc:
        outcome.errors.append(f"run {run}: {type(exc).__name__}: {exc}")
        say(f"{spec.name} {name} run {run} FAILED: {exc!r}", began)
        say(f"server log tail:\n{log_tail(rundir / 'server.log', 10)}", began)
    return True


def say(text: str, began: float) -> None:
    """One progress line on stderr."""
    print(f"[{time.monotonic() - began:6.1f} s] {text}", file=sys.stderr, flush=True)


def summary(figures: dict[str, float]) -> str:
    """A short one-line view of one run's figures."""
    return ", ".join(f"{k}={v:.4g}" for k, v in figures.items() if v == v and v != 0)


async def measure(args: argparse.Namespace, sizes: Sizes, workdir: Path) -> Results:
    """All servers, all scenarios, `args.runs` times each on fresh processes.

    The servers take turns within each scenario (Tertulia's run 1, the bare limit's run 1,
    Tertulia's run 2, ...): the machine's speed drifts over minutes, and a figure and its
    limit are compared best when taken close together. Servers on PostgreSQL run after
    all the others, in turns of their own: PostgreSQL's work after a load (writing its
    log and checkpointing, vacuuming, dropping the run's schema) goes on in its own
    processes after the run ends, and would otherwise take CPU from the next server's run.
    """
    specs = server_specs(args)
    results: Results = {spec.name: {} for spec in specs}
    broken: set[str] = set()
    embedded = [spec for spec in specs if spec.database_url is None]
    for group in (embedded, [spec for spec in specs if spec not in embedded]):
        for name in args.scenarios:
            for run in range(1, args.runs + 1):
                for spec in group:
                    if spec.name in broken or (
                        spec.kind == "stored" and name not in STORED_SCENARIOS
                    ):
                        continue
                    if not await measure_run(spec, name, run, results[spec.name], sizes, workdir):
                        broken.add(spec.name)
    return results


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and writes the report; returns the exit status."""
    args = parse_args(argv)
    output = Path(args.output)
    try:
        notes_at(output)  # before measuring: a page whose notes would be lost stops here
    except NotesWouldBeLost as exc:
        print(f"{output}: {exc}", file=sys.stderr)
        return 2
    # SIGTERM takes the Ctrl-C path, so the `finally` blocks stop the servers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sizes = QUICK if args.quick else Sizes()
    limit = raise_nofile_limit()
    load_before = os.getloadavg()
    print(f"open-files limit {limit}; working in a temporary directory", file=sys.stderr)
    workspace: contextlib.AbstractContextManager[str] = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="tertulia-bench-"))
        if args.keep
        else tempfile.TemporaryDirectory(prefix="tertulia-bench-")
    )
    with workspace as tmp:
        if args.keep:
            print(f"keeping {tmp}", file=sys.stderr)
        try:
            results = uvloop.run(measure(args, sizes, Path(tmp)))
        except KeyboardInterrupt:
            print("interrupted: servers stopped, no report written", file=sys.stderr)
            return 130
    page = Page(
        command_line(),
        sizes,
        args.quick,
        args.runs,
        [s.name for s in server_specs(args)],
        args.scenarios,
        load_before,
        os.getloadavg(),
    )
    try:
        notes = notes_at(output)  # read again: they may have been edited meanwhile
    except NotesWouldBeLost as exc:
        output = output.with_name(output.name + ".new")
        print(f"{args.output}: {exc}; writing {output} instead", file=sys.stderr)
        notes = ""
    text = render(results, page, notes)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    if args.json:
        raw = {s: {n: vars_of(o) for n, o in out.items()} for s, out in results.items()}
        Path(args.json).write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2))
    print(text)
    return 0


def notes_at(output: Path) -> str:
    """The hand-written notes of the page at `output`, kept in the new one (`kept_notes`)."""
    return kept_notes(output.read_text(encoding="utf-8") if output.exists() else "")


def vars_of(outcome: Runs) -> dict[str, object]:
    """An outcome as plain data for the JSON file."""
    return {"runs": outcome.runs, "errors": outcome.errors}


if __name__ == "__main__":
    sys.exit(main())
