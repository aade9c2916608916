"""The web process must never pay for LiteLLM (~3 s, ~180 MB): prove it in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process  # each test proves its point in a fresh interpreter

SCRIPT = """
import sys, django
django.setup()
from django.core.management import call_command
call_command("check")
import page_images.models, page_images.services, page_images.tasks, page_images.backends.litellm
from page_images.backends import get_backend
get_backend()
print("litellm imported:", "litellm" in sys.modules)
"""


def test_models_services_tasks_and_checks_do_not_import_litellm():
    overrides = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "openai/gpt-image-1"},
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PAGE_IMAGES_TEST_OVERRIDES": json.dumps(overrides),
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "litellm imported: False" in out.stdout


#: What a web process's ``django.setup()`` must not pay for: the job's stack (Celery, pydantic),
#: the image and download stack (Pillow, requests, urllib3), the buses' client (redis), the SDKs,
#: and the app's own modules that bring them in. Each is imported where it is used: the task when
#: a job is enqueued or a worker starts, Pillow when bytes are checked, redis when a bus is built.
LAZY_AT_SETUP = (
    "celery",
    "kombu",
    "billiard",
    "pydantic",
    "PIL",
    "requests",
    "urllib3",
    "redis",
    "litellm",
    "openai",
    "page_images.tasks",
    "page_images.services",
    "page_images.intake",
    "page_images.download",
    "page_images.events",
    "page_images.ratelimit",
)

SETUP_SCRIPT = """
import json, sys, django
django.setup()
from django.core.checks import registry
from django.core.signals import setting_changed
lazy = json.loads(sys.argv[1])
loaded_at_setup = sorted(m for m in lazy if m in sys.modules)
registered = {check.__name__ for check in registry.registry.get_checks()}
from page_images.backends import get_backend
get_backend()
setting_changed.send(sender=None, setting="PAGE_IMAGES", value={}, enter=True)
connected = get_backend.cache_info().currsize == 0
import page_images.tasks
print(json.dumps({
    "loaded_at_setup": loaded_at_setup,
    "checks": sorted(registered & {"check_settings", "check_models", "check_broker"}),
    "backend_reset_connected": connected,
    "loaded_by_tasks": sorted(m for m in ("celery", "pydantic") if m in sys.modules),
}))
"""


def test_django_setup_leaves_the_heavy_modules_for_later():
    # The heaviest configuration: LiteLLM and the Redis bus, whose checks import neither.
    overrides = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "openai/gpt-image-1"},
        "EVENTS": {
            "BACKEND": "page_images.events.redis.RedisBus",
            "OPTIONS": {"url": "redis://127.0.0.1:6379/0"},
        },
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PAGE_IMAGES_TEST_OVERRIDES": json.dumps(overrides),
    }
    out = subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT, json.dumps(LAZY_AT_SETUP)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded_at_setup"] == []
    # Nothing was lost by waiting: the checks are registered, the receiver connected...
    assert result["checks"] == ["check_broker", "check_models", "check_settings"]
    assert result["backend_reset_connected"]
    # ...and the probe would see an eager import: the task module does bring in its stack.
    assert result["loaded_by_tasks"] == ["celery", "pydantic"]
