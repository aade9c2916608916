"""What the tests share that is not a fixture: helpers live here, fixtures in conftest.py.

- ``tiers``: the pytest plugin behind ``make test`` and ``make test-full`` (markers, guards);
- ``jobs``: a current Celery app, waiting for a job, what a finished job must have left;
- ``web``: an editor's client and the click on the chip, as the trigger view receives it;
- ``demo``: the demo stack (uvicorn, a Celery worker, the example project) and headless Chromium;
- ``fuzz``: Hypothesis example counts that follow the active profile.

The machine's services (``tests.machine``), servers of a test's own (``tests.servers``), the
scripted backends (``tests.backends``) and the reliability catalogue (``tests.reliability``) are
support modules too.
"""
