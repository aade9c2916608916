"""The tests that guard the three central promises fail against deliberately broken code.

A test that cannot fail proves nothing. Each case runs the guarding tests in a pytest of its own
with PAGE_IMAGES_TEST_BREAK naming a variant from broken.py (a racy read-then-write claim, a store
that ignores the claim token, a trigger view that skips the permission check) and requires every
one of them to fail. The unbroken code passes the same tests in the main run.
"""

from __future__ import annotations

import pytest

from tests.faults.inner import run_pytest
from tests.reliability import case

pytestmark = pytest.mark.process

GUARDS = {
    "racy-claim": ["tests/faults/test_concurrent_clicks.py::test_fifty_concurrent_clicks"],
    "stale-overwrite": [
        "tests/test_claims.py::test_a_stale_job_cannot_overwrite_and_leaves_no_file",
        "tests/faults/test_racing_jobs.py::test_a_stale_job_never_overwrites_a_newer_picture",
    ],
    "no-permission-check": [
        "tests/test_views.py::test_anonymous_htmx_is_forbidden",
        "tests/test_views.py::test_user_without_permission_is_forbidden",
        "tests/test_views.py::test_site_wide_permission_hook",
        "tests/test_views.py::test_a_model_can_decide_for_itself",
        "tests/test_api.py::test_a_user_without_permission_is_refused_by_both_doors",
    ],
}


def run_broken(variant: str, database: str) -> str:
    tests = sorted({guard.split("::")[0] for guard in GUARDS[variant]})
    names = " or ".join(guard.split("::")[1] for guard in GUARDS[variant])
    code, output = run_pytest(
        *tests,
        *("-k", names, "-rf", "-q"),
        env={
            "PAGE_IMAGES_TEST_BREAK": variant,
            "PAGE_IMAGES_TEST_DB": database,
            "PAGE_IMAGES_PG_TEST_NAME": f"test_page_images_broken_{variant.replace('-', '_')}",
            "PAGE_IMAGES_SQLITE_PATH": None,  # a database file of its own
        },
    )
    assert code == 1, f"exit {code}, expected failures:\n{output[-5000:]}"
    return output


def assert_all_failed(variant: str, output: str) -> None:
    failed = [line for line in output.splitlines() if line.startswith("FAILED ")]
    for guard in GUARDS[variant]:
        assert any(line.startswith(f"FAILED {guard}") for line in failed), (
            f"{guard} passed against the {variant!r} variant:\n{output[-5000:]}"
        )
    assert " passed" not in output.splitlines()[-1], output[-2000:]


@case(
    "concurrency",
    "Deliberately broken: a read-then-write claim instead of one conditional UPDATE",
    "The 50-thread race test fails (several clicks win and queue jobs).",
)
@pytest.mark.postgres
def test_the_race_test_fails_against_a_racy_claim():
    assert_all_failed("racy-claim", run_broken("racy-claim", "postgres"))


@case(
    "concurrency",
    "Deliberately broken: storing the picture without checking the job's claim token",
    "Both stale-overwrite tests fail (the old job's picture replaces the newer one).",
)
def test_the_stale_overwrite_tests_fail_when_the_token_is_ignored():
    assert_all_failed("stale-overwrite", run_broken("stale-overwrite", "sqlite"))


@case(
    "access",
    "Deliberately broken: a trigger view that skips the permission check",
    "The four permission tests fail (anonymous, no permission, site hook, model hook).",
)
def test_the_permission_tests_fail_without_the_check():
    assert_all_failed("no-permission-check", run_broken("no-permission-check", "sqlite"))
