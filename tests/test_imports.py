"""The web process must never pay for LiteLLM (~3 s, ~180 MB): prove it in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
