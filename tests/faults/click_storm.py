"""The storm itself, run by test_click_storm.py in a pytest of its own against its own PostgreSQL.

Not named test_*: the normal suite must not collect it (the shared server has too few
connections for it); the launcher names this file explicitly.
"""

from __future__ import annotations

import re
import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from page_images.references import sign_record
from tests.support.jobs import real_worker_only, settled, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

SESSIONS = 100
TRIGGER = "/page-images/generate/"
STATE = re.compile(r'data-state="(\w+)"')


def editors(django_user_model, count):
    users = django_user_model.objects.bulk_create(
        django_user_model(username=f"editor{n}") for n in range(count)
    )
    permission = Permission.objects.get(codename="change_page")
    permission.user_set.add(*users)
    return users


@real_worker_only
def test_storm(page, provider, litellm_settings, django_user_model, published):
    assert connection.vendor == "postgresql"
    sessions = []
    for user in editors(django_user_model, SESSIONS):
        client = Client(enforce_csrf_checks=True)  # the real CSRF check, as a browser meets it
        client.force_login(user)
        token = _get_new_csrf_string()
        client.cookies["csrftoken"] = token
        sessions.append((client, token))
    connection.close()
    barrier = threading.Barrier(SESSIONS)
    statuses: list[object] = []
    states: set[str] = set()
    lock = threading.Lock()
    ref = sign_record(page)

    def click(client: Client, token: str) -> None:
        state = None
        try:
            barrier.wait(timeout=60)
            response = client.post(
                TRIGGER,
                {"ref": ref, "csrfmiddlewaretoken": token},
                HTTP_HX_REQUEST="true",
            )
            outcome: object = response.status_code
            state = STATE.search(response.content.decode())
        except Exception as exc:  # recorded, then asserted
            outcome = exc
        finally:
            connection.close()
        with lock:
            statuses.append(outcome)
            if state:
                states.add(state.group(1))

    threads = [threading.Thread(target=click, args=session) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    wait_for(settled(page), timeout=60)
    print(f"storm: {len(statuses)} clicks, statuses {sorted(set(map(str, statuses)))}")
    assert statuses == [200] * SESSIONS
    # Each loser sees the winner's job (or its picture, if it landed first), never the chip again.
    assert states, "no answer held a container"
    assert states <= {"generating", "ready"}, states
    assert len(published) == 1, f"{len(published)} jobs queued"
    assert provider.generation_calls == 1
    assert page.image_state == "ready"
