"""The app as a newcomer installs it: the wheel, a fresh ``startproject`` site, the quickstart.

The test reads docs/quickstart.md and applies its code blocks as a developer would paste them: the
``startproject`` and ``startapp`` lines, the pip line (its extras), the settings, the Celery app,
the model, the URLs, the template lines, the ASGI wrapper for static files, and the commands that
start the worker and the server, each in a process of its own. The site's own part is what any
site has before it installs the app: a ``Product`` with an ``ImageField`` and a page that shows
it. Nothing else is configured, except what a developer types for their own site: the media it
already had, the provider the quickstart's fake-provider line prints, and a short CLAIM_TIMEOUT
(with the time limits it must outlast) so that a dead job is seen in seconds.

Then Chromium: an editor clicks the chip and the picture arrives without a reload; the worker is
killed with SIGKILL mid-job and the page shows "Try again" with no command run; an anonymous
visitor of the same page sees neither a spinner nor the error.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import machine
from tests.reliability import case
from tests.servers import OwnRedis, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.process, pytest.mark.browser, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent
#: The page a newcomer follows (README.md's install section points to it).
QUICKSTART = ROOT / "docs" / "quickstart.md"
SECTION = QUICKSTART.read_text().split("\n## ", 1)[0]
#: The fake provider answers after this long: time enough to kill the worker mid-job.
LATENCY = 4.0
CLAIM_TIMEOUT = 12


def blocks(language: str) -> list[str]:
    """The quickstart's code blocks in ``language``, in order, dedented."""
    return [
        textwrap.dedent(body)
        for body in re.findall(rf"```{language}\n(.*?)\n *```", SECTION, flags=re.S)
    ]


def block(language: str, first_line: str) -> str:
    (found,) = [b for b in blocks(language) if b.splitlines()[0].strip() == first_line]
    return found


def run(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Site:
    """A fresh virtualenv with the wheel, and a startproject site following the quickstart."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.dir = home / "site"
        self.venv = home / "venv"
        self.python = str(self.venv / "bin" / "python")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PAGE_IMAGES"))},
            "PYTHONPATH": "",
            "OPENAI_API_KEY": "sk-fake-not-a-key",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.url = ""

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def install(self) -> None:
        wheels = self.home / "dist"
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
            cwd=self.home,
            env=self.env,
        )
        (wheel,) = wheels.glob("django_page_images-*.whl")
        run(sys.executable, "-m", "venv", str(self.venv), cwd=self.home, env=self.env)
        (pip_line,) = [
            line for block in blocks("sh") for line in block.splitlines() if "pip install" in line
        ]
        extras = re.search(r"django-page-images(\[[a-z,]+\])", pip_line)
        assert extras, pip_line
        run(
            self.python,
            "-m",
            "pip",
            "install",
            "-q",
            f"{wheel}{extras.group(1)}",
            "uvicorn",
            cwd=self.home,
            env=self.env,
        )

    def start_site(self, provider_settings: str, redis_url: str) -> None:
        """The quickstart's ``startproject`` and ``startapp``, the site's own product page, then
        the quickstart's steps."""
        self.dir.mkdir(exist_ok=True)
        (start,) = [b for b in blocks("console") if b.startswith("django-admin startproject")]
        for line in start.splitlines():
            program, *args = line.split()
            program = self.bin("django-admin") if program == "django-admin" else self.python
            run(program, *args, cwd=self.dir, env=self.env)
        settings = self.dir / "mysite" / "settings.py"
        # What the site had before: its shop app, media for its product photos, Pillow.
        text = settings.read_text().replace("INSTALLED_APPS = [", 'INSTALLED_APPS = [\n    "shop",')
        text = "import os\n" + text + '\nMEDIA_URL = "/media/"\nMEDIA_ROOT = BASE_DIR / "media"\n'
        (self.dir / "shop" / "models.py").write_text(
            "from django.db import models\n\n\n"
            "class Product(models.Model):\n"
            "    description = models.TextField()\n"
            '    photo = models.ImageField(upload_to="products", blank=True)\n'
        )
        (self.dir / "shop" / "views.py").write_text(
            "from django.shortcuts import get_object_or_404, render\n\n"
            "from .models import Product\n\n\n"
            "def product(request, pk):\n"
            "    product = get_object_or_404(Product, pk=pk)\n"
            '    return render(request, "shop/product.html", {"product": product})\n'
        )
        site_urls = (
            'path("admin/", admin.site.urls), path("product/<int:pk>/", views.product)'
            "] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT) + ["
        )
        # --- step 2: settings ---------------------------------------------------------------
        readme_settings = block("python", "# settings.py")
        readme_settings = readme_settings.replace(
            "INSTALLED_APPS = [..., ", "INSTALLED_APPS += ["
        ).replace("redis://127.0.0.1:6379/0", redis_url)
        text += "\n" + readme_settings + "\n" + provider_settings + "\n"
        text += (
            f"PAGE_IMAGES.update(CLAIM_TIMEOUT={CLAIM_TIMEOUT}, TASK_SOFT_TIME_LIMIT=8, "
            "TASK_TIME_LIMIT=10)\n"
        )
        settings.write_text(text)
        # --- step 3: the Celery app ----------------------------------------------------------
        (self.dir / "mysite" / "celery.py").write_text(block("python", "# mysite/celery.py"))
        (self.dir / "mysite" / "__init__.py").write_text(block("python", "# mysite/__init__.py"))
        # --- step 4: the model, then migrate --------------------------------------------------
        model = block("python", "# shop/models.py")
        (self.dir / "shop" / "models.py").write_text("from django.db import models\n" + model)
        for command in blocks("sh"):
            if "makemigrations" in command:
                run(
                    "sh",
                    "-c",
                    command.replace("python ", f"{self.python} "),
                    cwd=self.dir,
                    env=self.env,
                )
        # --- step 5: the URLs, before the site's own ------------------------------------------
        urls = block("python", "# mysite/urls.py").replace("...", site_urls)
        (self.dir / "mysite" / "urls.py").write_text(
            "from django.conf import settings\nfrom django.conf.urls.static import static\n"
            "from django.contrib import admin\nfrom django.urls import include, path\n\n"
            "from shop import views\n\n" + urls
        )
        # --- step 6: the template ----------------------------------------------------------------
        template = block("django", "{% load static django_htmx page_images %}")
        head, _, body = template.partition("\n\n")
        (self.dir / "shop" / "templates" / "shop").mkdir(parents=True)
        (self.dir / "shop" / "templates" / "shop" / "product.html").write_text(
            f"<!doctype html><html><head>{head}</head>\n<body>"
            "<h1>{{ product.description }}</h1>\n" + body + "</body></html>\n"
        )
        # --- step 7: static files under uvicorn --------------------------------------------------
        asgi = self.dir / "mysite" / "asgi.py"
        wrapper = re.search(r"`(application = ASGIStaticFilesHandler\(.*?\))`", SECTION, re.S)
        assert wrapper, "the quickstart no longer says how uvicorn serves static files"
        asgi.write_text(
            asgi.read_text()
            .replace("application = get_asgi_application()", wrapper.group(1))
            .replace(
                "import os\n",
                "import os\n\nfrom django.contrib.staticfiles.handlers import "
                "ASGIStaticFilesHandler\n",
            )
        )
        run(
            self.python, "manage.py", "check", "--fail-level", "WARNING", cwd=self.dir, env=self.env
        )
        run(
            self.python,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import User; from shop.models import Product;"
            "User.objects.create_superuser('editor', 'e@example.com', 'pw');"
            "Product.objects.create(description='A teapot of blue enamel on an oak table');"
            "Product.objects.create(description='A red bicycle leaning on a stone wall')",
            cwd=self.dir,
            env=self.env,
        )

    def command(self, program: str) -> list[str]:
        """The quickstart's command line for ``program`` (celery or uvicorn), as its words."""
        (line,) = [
            line.split("#", 1)[0].split()
            for line in block(
                "sh", "celery -A mysite worker --pool=threads --concurrency=8"
            ).splitlines()
            if line.startswith(program)
        ]
        return [self.bin(line[0]), *line[1:]]

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.home / f"{name}.log").open("wb")
        self.logs.append(log)
        process = subprocess.Popen(
            args,
            cwd=self.dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")[-4000:]

    def evidence(self) -> str:
        """The end of each process's log, for a failed test's report (tests/conftest.py)."""
        names = [Path(log.name).stem for log in self.logs]
        return "\n\n".join(f"--- {name}.log ---\n{self.log(name)}" for name in names)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in self.logs:
            log.close()


def wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("install")
    # A redis-server of its own: the job the test kills stays unacknowledged in its broker, and
    # on the machine's Redis it would come back, an hour later, to whichever run holds that queue.
    redis_server = OwnRedis(tmp_path_factory.mktemp("install-redis"))
    redis_server.start()
    site = Site(home)
    site.install()
    site.dir.mkdir()
    provider_port, web_port = free_port(), free_port()
    provider = site.start(
        "provider",
        [
            site.python,
            "-m",
            "page_images.testing",
            "--port",
            str(provider_port),
            "--latency",
            str(LATENCY),
        ],
    )
    wait(lambda: "PAGE_IMAGES = " in site.log("provider"), "the fake provider")
    printed = next(
        line for line in site.log("provider").splitlines() if line.startswith("PAGE_IMAGES = ")
    )
    try:
        site.start_site(printed, redis_server.url)
        site.start("worker", site.command("celery"))
        site.start("web", [*site.command("uvicorn"), "--port", str(web_port)])
        wait(lambda: machine.reachable("127.0.0.1", web_port), "uvicorn", timeout=60)
        # The banner's queue list is the worker's last word before it consumes (it logs "ready"
        # only at INFO, which the quickstart's command line does not ask for).
        wait(lambda: "[queues]" in site.log("worker"), "the worker", timeout=60)
        site.url = f"http://127.0.0.1:{web_port}"
        yield site
    finally:
        site.stop()
        redis_server.stop()
        assert provider.poll() is not None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=machine.CHROMIUM, args=machine.LAUNCH_ARGS, headless=True
        )
        yield browser
        browser.close()


@case(
    "worker",
    "The docs' quickstart followed in a fresh startproject site; the worker SIGKILLed mid-job",
    "The picture arrives without a reload; 'did not finish in time' with Try again, no command "
    "run; a visitor sees neither.",
)
@pytest.mark.timeout(600)  # the wheel and a fresh virtualenv with LiteLLM: a minute or two
def test_the_quickstart_gives_a_live_picture_a_try_again_after_a_kill_and_nothing_to_visitors(
    site: Site, chromium: Any
) -> None:
    installed, url = site, site.url
    editor = chromium.new_context().new_page()
    editor.set_default_timeout(30_000)
    editor.goto(f"{url}/admin/login/?next=/product/1/")
    editor.fill("#id_username", "editor")
    editor.fill("#id_password", "pw")
    editor.click("input[type=submit]")
    streams: list[str] = []
    editor.on(
        "request", lambda request: "/events/?refs=" in request.url and streams.append(request.url)
    )
    editor.wait_for_url(f"{url}/product/1/")
    editor.evaluate("window.__noReload = 'still here'")

    # The picture arrives without a reload, pushed by the event stream that the stream tag in
    # <head> opened: well before the container's own re-read at the job's deadline.
    editor.get_by_role("button", name="Generate image").click()
    editor.locator(".page-images[data-state=generating]").wait_for()
    editor.locator("img.page-images-image").wait_for(timeout=(LATENCY + 6) * 1000)
    assert streams, "the page opened no event stream"
    assert editor.evaluate("window.__noReload") == "still here"
    assert editor.locator("img.page-images-image").evaluate("img => img.naturalWidth") == 256
    stylesheet = editor.evaluate(
        "[...document.styleSheets].some(s => (s.href || '').includes('page_images.css'))"
    )
    assert stylesheet, "the quickstart's stylesheet line did not load the stylesheet"

    # The worker dies mid-job: the page shows "Try again" by itself, with no command run.
    editor.goto(f"{url}/product/2/")
    editor.get_by_role("button", name="Generate image").click()
    # Killed while it runs, not while it waits in the queue: the container says "started" once
    # the worker holds the job. No event says so (the click's answer may still say "queued"), so
    # the page asks again until then; the provider takes LATENCY seconds, time enough.
    deadline = time.monotonic() + 20
    while not editor.locator(".page-images-elapsed", has_text="started").count():
        assert time.monotonic() < deadline, "the worker never started the job"
        editor.wait_for_timeout(250)
        editor.reload()
    worker = installed.processes[1]
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    editor.locator(".page-images[data-state=error]").wait_for(timeout=(CLAIM_TIMEOUT + 15) * 1000)
    assert "did not finish in time" in editor.locator("p.page-images-error").inner_text()
    assert editor.get_by_role("button", name="Try again").is_visible()

    # An anonymous visitor of the same pages: the picture, and neither spinner nor error.
    visitor = chromium.new_context().new_page()
    visitor.goto(f"{url}/product/2/")
    html = visitor.content()
    assert "did not finish" not in html
    assert "Generating" not in html
    assert visitor.locator(".page-images").get_attribute("data-state") == "empty"
    visitor.goto(f"{url}/product/1/")
    assert visitor.locator("img.page-images-image").is_visible()
    visited: list[str] = []
    visitor.on("request", lambda request: "/events/" in request.url and visited.append(request.url))
    visitor.reload()
    visitor.wait_for_timeout(500)
    assert visited == [], "a visitor's page asked for an event stream"
