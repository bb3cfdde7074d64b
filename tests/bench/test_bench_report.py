"""The benchmark's report: fractions of the limit, targets, and the notes a new page keeps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.report import (
    NOTES_MARKER,
    Goal,
    NotesWouldBeLost,
    Page,
    Results,
    Runs,
    fraction,
    kept_notes,
    render,
    table,
)
from bench.scenarios import SCENARIOS, Sizes

PAGE = Path(__file__).resolve().parents[2] / "docs" / "performance.md"


def test_a_rate_is_a_share_of_the_limit_and_a_latency_the_limit_over_ours() -> None:
    assert fraction("answers_per_s", 1_000, 4_000) == 0.25
    assert fraction("p99_ms", 8.0, 2.0) == 0.25
    assert fraction("kib_per_connection", 40.0, 30.0) == 0.75


@pytest.mark.parametrize(
    ("metric", "figure", "limit"),
    [("lost", 1, 2), ("answers_per_s", 0, 10), ("p50_ms", 1.0, math.nan), ("page_size", 100, 0)],
)
def test_no_fraction_for_counts_missing_figures_or_unranked_metrics(
    metric: str, figure: float, limit: float
) -> None:
    assert math.isnan(fraction(metric, figure, limit))


def test_a_missing_figure_never_meets_a_goal() -> None:
    assert Goal(">=", 300).met(301)
    assert not Goal(">=", 300).met(299)
    assert not Goal("<=", 10).met(math.nan)


def test_problems_are_summed_over_runs_and_other_figures_are_medians() -> None:
    runs = Runs(
        [{"lost": 0, "p50_ms": 1.0}, {"lost": 2, "p50_ms": 9.0}, {"lost": 1, "p50_ms": 2.0}]
    )
    assert runs.figures() == {"lost": 3, "p50_ms": 2.0}


def _throughput(ours: float, bare: float, lost: int = 0) -> Results:
    figures = {"answers_per_s": ours, "p99_ms": 20.0, "lost": lost, "late": 0}
    limit = {"answers_per_s": bare, "p99_ms": 2.0, "lost": 0, "late": 0}
    return {
        "tertulia-sqlite": {"throughput": Runs([figures])},
        "bare": {"throughput": Runs([limit])},
    }


def _row(rows: list[str], metric: str) -> list[str]:
    [row] = [r for r in rows if r.startswith(f"| throughput | {metric} |")]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_throughput_passes_only_with_both_the_rate_and_its_share_of_the_limit() -> None:
    sizes, scenarios = Sizes(), ["throughput"]
    enough = table(_throughput(2_000, 4_000), "tertulia-sqlite", sizes, scenarios)
    assert _row(enough, "answers_per_s")[4:] == ["50%", ">= 1,500, >= 40% of limit", "10.8", "pass"]
    too_small_a_share = table(_throughput(2_000, 8_000), "tertulia-sqlite", sizes, scenarios)
    assert _row(too_small_a_share, "answers_per_s")[-1] == "**fail**"
    too_slow = table(_throughput(1_000, 2_000), "tertulia-sqlite", sizes, scenarios)
    assert _row(too_slow, "answers_per_s")[-1] == "**fail**"


def test_one_lost_answer_fails_the_scenario() -> None:
    rows = table(_throughput(2_000, 4_000, lost=1), "tertulia-sqlite", Sizes(), ["throughput"])
    assert _row(rows, "lost")[2:] == ["1", "0", "—", "== 0", "—", "**fail**"]


def _page() -> Page:
    return Page(
        "python -m bench.run",
        Sizes(),
        False,
        1,
        ["tertulia-sqlite", "bare"],
        ["throughput"],
        (0.1, 0.2, 0.3),
        (0.4, 0.5, 0.6),
    )


def test_a_new_page_ends_with_the_marker_or_with_the_notes_it_keeps() -> None:
    results = _throughput(2_000, 4_000)
    assert render(results, _page()).endswith(f"\n\n{NOTES_MARKER}\n")
    notes = kept_notes(f"# Performance\nold figures\n{NOTES_MARKER}\n\n## By hand\n\nkept\n\n")
    assert notes == f"{NOTES_MARKER}\n\n## By hand\n\nkept\n"
    page = render(results, _page(), notes)
    assert page.endswith(f"\n\n{notes}")
    assert "old figures" not in page
    assert page.count(NOTES_MARKER) == 1


def test_a_page_with_text_but_no_marker_is_not_replaced() -> None:
    assert kept_notes("") == ""
    with pytest.raises(NotesWouldBeLost, match="--output"):
        kept_notes("# Performance\n\nnotes written by hand\n")


def test_the_committed_page_keeps_its_notes_and_shows_what_the_issue_asks() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert text.count(NOTES_MARKER) == 1
    results, notes = text.split(NOTES_MARKER)
    for fact in ("- Command: `", "- CPU: ", "- RAM: ", "- Python: ", "- Tertulia: "):
        assert fact in results
    for scenario in SCENARIOS:
        assert f"| {scenario} | problems |" in results
    assert "## Where the time of one message goes" in notes
