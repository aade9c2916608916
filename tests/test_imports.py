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
    "page_images.tasks_framework",
    "page_images.jobs",
    "page_images.services",
    "page_images.claims",
    "page_images.queueing",
    "page_images.addresses",
    "page_images.live",
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
registered = registry.registry.get_checks(include_deployment_checks=True)
from page_images.backends import get_backend
first = get_backend()
setting_changed.send(sender=None, setting="PAGE_IMAGES", value={}, enter=True)
connected = get_backend() is not first
import page_images.tasks
print(json.dumps({
    "loaded_at_setup": loaded_at_setup,
    "checks": sorted(
        check.__name__ for check in registered if check.__module__.startswith("page_images.")
    ),
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
    assert result["checks"] == [
        "check_broker",
        "check_deployment",
        "check_live_refresh",
        "check_models",
        "check_runner",
        "check_settings",
        "check_urls",
    ]
    assert result["backend_reset_connected"]
    # ...and the probe would see an eager import: the task module does bring in its stack.
    assert result["loaded_by_tasks"] == ["celery", "pydantic"]


#: Every import path that README.md and docs/ name, with the object it must still give.
DOCUMENTED_PATHS = {
    "page_images.services.request_generation": "page_images.queueing.request_generation",
    "page_images.services.request_generations": "page_images.queueing.request_generations",
    "page_images.services.set_image_and_notify": "page_images.claims.set_image_and_notify",
    "page_images.services.release_stale_claims": "page_images.claims.release_stale_claims",
    "page_images.asgi.EventStreams": "page_images.live.asgi.EventStreams",
    "page_images.download.download_image": "page_images.download.download_image",
    "page_images.events.notify": "page_images.events.notify",
    "page_images.events.memory.InProcessBus": "page_images.events.memory.InProcessBus",
    "page_images.events.files.FileBus": "page_images.events.files.FileBus",
    "page_images.events.redis.RedisBus": "page_images.events.redis.RedisBus",
    "page_images.models.ImageGeneratingMixin": "page_images.models.ImageGeneratingMixin",
    "page_images.models.image_upload_to": "page_images.models.image_upload_to",
    "page_images.tasks.generate_image": "page_images.tasks.generate_image",
    "page_images.backends.litellm.LiteLLMBackend": "page_images.backends.litellm.LiteLLMBackend",
    "page_images.backends.local.LocalBackend": "page_images.backends.local.LocalBackend",
    "page_images.backends.base.BaseBackend": "page_images.backends.base.BaseBackend",
    "page_images.redis_pool.SharedConnectionPool": "page_images.redis_pool.SharedConnectionPool",
    "page_images.testing.FakeImageProvider": "page_images.testing.FakeImageProvider",
    "page_images.signals.generation_succeeded": "page_images.signals.generation_succeeded",
    "page_images.admin.ImageGeneratingAdmin": "page_images.admin.ImageGeneratingAdmin",
    "page_images.admin.ImageStateFilter": "page_images.admin.ImageStateFilter",
}


def test_every_documented_import_path_still_imports():
    from django.utils.module_loading import import_string

    for documented, home in DOCUMENTED_PATHS.items():
        assert import_string(documented) is import_string(home), documented


def test_the_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    import page_images

    assert page_images.__version__ == version("django-page-images")


def test_the_asgi_wrapper_imports_before_django_is_set_up():
    # asgi.py files import it at the top, some before get_asgi_application() sets Django up.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "-c", "from page_images.asgi import EventStreams; print('ok')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
