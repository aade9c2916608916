"""The benchmark table's judgement: a row with a target passes or fails by it, with CI's margin in
quick mode; a row of context (issue 14 retired target 1's pool row as a target) is shown and
never fails a run."""

from __future__ import annotations

import math

import pytest
from benchmarks.harness import Check, Row


def row(check: Check, figure: float = 50.0, baseline: float = 100.0) -> Row:
    return Row("1 trigger", "trigger view, requests/s", figure, "req/s", baseline, "empty", check)


@pytest.mark.parametrize(("quick", "passed"), [(False, False), (True, True)])
def test_a_target_fails_by_its_limit_and_ci_allows_its_margin(quick, passed):
    judged = row(Check("ratio", ">=", 0.6, "at least 0.6x", quick=1.5)).judge(quick)
    assert judged.passed is passed
    assert judged.cells()[-1] == ("pass" if passed else "FAIL")


def test_a_row_of_context_is_shown_with_its_figures_and_never_judged():
    judged = row(Check("ratio", "context", 0.0, "context (no target)"), figure=1.0).judge(False)
    assert judged.passed
    assert judged.cells()[2:] == [
        "1.0 req/s",
        "100.0 req/s (empty)",
        "0.01\u00d7",  # the multiplication sign
        "context (no target)",
        "context",
    ]


def test_a_missing_figure_fails_a_target():
    assert not row(Check("figure", "<=", 50.0, "≤ 50 ms"), figure=math.nan).judge(False).passed
