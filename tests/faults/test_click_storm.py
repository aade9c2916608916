"""100 editors click the same record's chip at the same moment: exactly one provider call.

100 sessions (each logged in, each with its own CSRF cookie and token) are released together by a
barrier and POST through Django's whole stack (sessions, CSRF, auth, the trigger view) while a
real Celery worker and the fake provider wait for the one job. The machine's PostgreSQL allows 100
connections, too few for 100 clicks plus the worker, and a test never reconfigures it: the storm
runs in a pytest of its own (``click_storm.py``) against a PostgreSQL of its own.
"""

from __future__ import annotations

import pytest

from tests.faults.inner import run_pytest
from tests.faults.postgres import own_postgres
from tests.reliability import case

pytestmark = [pytest.mark.postgres, pytest.mark.process]


@case(
    "concurrency",
    "100 editors in 100 sessions click one record's chip at the same moment",
    "Every click answers 200 with the generating container; one job is queued and the provider "
    "is called exactly once; the picture appears for all.",
)
def test_hundred_sessions_clicking_at_once_make_one_provider_call():
    with own_postgres() as port:
        code, output = run_pytest(
            "tests/faults/click_storm.py",
            "-q",
            "-s",
            env={
                "PAGE_IMAGES_TEST_DB": "postgres",
                "PAGE_IMAGES_PG_PORT": str(port),
                "PAGE_IMAGES_PG_TEST_NAME": "test_click_storm",
            },
        )
    print(output[-3000:])
    assert code == 0, output[-6000:]
    assert output.count("storm: 100 clicks, statuses ['200']") == 1
