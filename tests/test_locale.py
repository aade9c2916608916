"""The German catalog (src/page_images/locale/): complete, compiled, and what editors read.

The catalog tests read the .po and .mo files in this process (polib), so they need no GNU gettext
and run in the fast tier: a string added without ``make messages`` stays untranslated in the .po
(or missing from the .mo), and one of them fails. The page tests go through Django's own
translation machinery, as a site does: ``LocaleMiddleware`` picks German from the browser's
``Accept-Language``, and the chip, its states, a real job's error and the view's refusals are
read in German.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.test import Client

import page_images
from page_images.references import sign_record
from tests.support.jobs import celery_app
from tests.support.web import HTMX, TRIGGER, client_for

#: The catalogs of the copy this run imports: src/'s, or the installed wheel's (.ci/wheel).
LOCALE = Path(page_images.__file__).resolve().parent / "locale"
CATALOGS = sorted(LOCALE.glob("*/LC_MESSAGES/*.po"))
FRAGMENT = "/page-images/fragment/"


def test_the_package_has_a_german_catalog():
    assert LOCALE / "de" / "LC_MESSAGES" / "django.po" in CATALOGS


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.parts[-3])
def test_every_string_of_a_catalog_is_translated_and_none_is_fuzzy(path):
    catalog = polib.pofile(str(path))
    assert not catalog.metadata_is_fuzzy, f"{path}: the header is marked fuzzy"
    untranslated = [entry.msgid for entry in catalog.untranslated_entries()]
    fuzzy = [entry.msgid for entry in catalog.fuzzy_entries()]
    obsolete = [entry.msgid for entry in catalog.obsolete_entries()]
    assert untranslated == [], f"{path}: translate these (then `make messages`)"
    assert fuzzy == [], f"{path}: check these and remove their fuzzy flag (then `make messages`)"
    assert obsolete == [], f"{path}: obsolete entries: `make messages` drops them"
    plural_forms = catalog.metadata.get("Plural-Forms", "")
    for entry in catalog:
        if entry.msgid_plural:
            assert all(entry.msgstr_plural.values()), f"{path}: {entry.msgid!r} lacks a plural"
    assert "nplurals=" in plural_forms, f"{path}: no Plural-Forms in the header"


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.parts[-3])
def test_every_catalogs_mo_says_what_its_po_says(path):
    compiled = path.with_suffix(".mo")
    assert compiled.exists(), f"{compiled} is missing: run `make messages`"
    assert entries(polib.pofile(str(path))) == entries(polib.mofile(str(compiled))), (
        f"{compiled} is out of date with {path.name}: run `make messages`"
    )


def entries(catalog: polib._BaseFile) -> dict[tuple[str, str], object]:
    """What a catalog translates, keyed as gettext looks it up (context, msgid): what a .mo
    holds of its .po (the translated entries, fuzzy ones left out, as msgfmt leaves them)."""
    found: dict[tuple[str, str], object] = {}
    for entry in catalog:
        if entry.obsolete or "fuzzy" in entry.flags or not entry.msgid:
            continue  # (the header, msgid "", is metadata: compared apart)
        if entry.msgid_plural:
            if not all(entry.msgstr_plural.values()):
                continue
            value: object = (entry.msgid_plural, tuple(sorted(entry.msgstr_plural.items())))
        else:
            if not entry.msgstr:
                continue
            value = entry.msgstr
        found[(entry.msgctxt or "", entry.msgid)] = value
    return found


@pytest.mark.process
def test_the_catalog_holds_every_string_the_code_marks(tmp_path):
    """``make messages`` was run: makemessages over the package (GNU xgettext, a process) finds
    no string that the German catalog lacks, and none it holds that the code no longer marks."""
    package = Path(page_images.__file__).resolve().parent
    copy = tmp_path / "page_images"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "de", "--no-obsolete"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    marked = {entry.msgid for entry in polib.pofile(str(copy / "locale/de/LC_MESSAGES/django.po"))}
    catalog = {entry.msgid for entry in polib.pofile(str(LOCALE / "de/LC_MESSAGES/django.po"))}
    assert sorted(marked - catalog) == [], "new strings: run `make messages`, then translate them"
    assert sorted(catalog - marked) == [], "strings the code dropped: run `make messages`"


def test_a_catalog_whose_mo_lags_behind_its_po_is_told_apart(tmp_path):
    """The comparison above sees a changed translation: it can fail."""
    po_path = LOCALE / "de" / "LC_MESSAGES" / "django.po"
    catalog = polib.pofile(str(po_path))
    compiled = tmp_path / "django.mo"
    catalog.save_as_mofile(str(compiled))
    assert entries(catalog) == entries(polib.mofile(str(compiled)))
    catalog.find("Generate image").msgstr = "Bild erzeugen"
    assert entries(catalog) != entries(polib.mofile(str(compiled)))
    catalog.find("Try again").flags.append("fuzzy")
    assert ("", "Try again") not in entries(catalog)


# --- What an editor reads in German ----------------------------------------------------------


@pytest.fixture
def german(settings):
    """A site that speaks English and German and follows the browser (LocaleMiddleware)."""
    settings.LANGUAGES = [("en", "English"), ("de", "German")]
    settings.LANGUAGE_CODE = "en"
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
        "django.middleware.locale.LocaleMiddleware",
    )
    settings.MIDDLEWARE = middleware


def read(user, record, language="de"):
    client = client_for(user, HTTP_ACCEPT_LANGUAGE=language)
    response = client.get(FRAGMENT, {"ref": sign_record(record)})
    assert response.status_code == 200
    return response.content.decode()


def test_the_chip_speaks_german(german, editor, make_page):
    page = make_page()
    html = read(editor, page)
    assert "Bild generieren" in html
    assert "Generate image" not in html
    assert "Generate image" in read(editor, page, "en")


def test_a_generating_container_speaks_german(german, editor, make_page):
    from django.utils import timezone

    page = make_page(image_generating=True, image_claimed_at=timezone.now())
    html = read(editor, page)
    assert "Bild wird generiert…" in html
    assert "wartet seit" in html
    assert 'data-page-images-text="wartet seit {since}"' in html
    assert "Abbrechen" in html


def test_a_job_presumed_dead_says_so_in_german(german, editor, make_page):
    page = make_page(image_generating=True)  # no claim time: the job is taken for lost
    html = read(editor, page)
    assert "Der Bild-Job wurde nicht rechtzeitig fertig. Bitte erneut versuchen." in html
    assert "Erneut versuchen" in html


def test_a_real_jobs_refusal_is_stored_in_english_and_read_in_each_language(
    german, editor, make_page, settings, django_capture_on_commit_callbacks
):
    """The job runs where no language is active; the reader's language shows its error."""
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "OPTIONS": {"refuse_words": ["fox"]}}
    page = make_page("A red fox")
    client = client_for(editor, HTTP_ACCEPT_LANGUAGE="de")
    with (
        celery_app("memory://", task_always_eager=True),
        django_capture_on_commit_callbacks(execute=True),  # the job is queued on commit
    ):
        response = client.post(TRIGGER, {"ref": sign_record(page)}, **HTMX)
    assert response.status_code == 200
    page.refresh_from_db()
    assert page.image_error.startswith("The image service refused this text")
    german_html = read(editor, page)
    assert "Der Bilddienst hat diesen Text nach seinen Inhaltsrichtlinien abgelehnt." in german_html
    assert "Erneut versuchen" in german_html
    english_html = read(editor, page, "en")
    assert "The image service refused this text under its content policy." in english_html


def test_the_review_speaks_german(german, editor, make_page, configure):
    from tests.support.pictures import in_review

    configure(REVIEW=True)
    page = make_page()
    in_review(page)
    html = read(editor, page)
    assert (
        "Bitte das Bild zur Veröffentlichung auswählen. Bis dahin sehen Besucher kein Bild." in html
    )
    assert "Dieses Bild verwenden" in html
    assert 'aria-label="Bild 2 verwenden"' in html
    assert "Verwerfen" in html


def test_a_picture_and_its_tools_speak_german(german, editor, make_page, configure):
    from tests.support.pictures import with_new_picture

    configure(REGENERATE=True, AI_LABEL=True)
    page = with_new_picture(make_page())
    html = read(editor, page)
    assert "Neu generieren" in html
    assert "Frühere Bilder" in html
    assert "KI-generiert" in html


def test_a_sites_preset_label_may_be_lazy_and_is_read_in_each_editors_language(
    german, editor, make_page, configure
):
    from django.core.management import call_command
    from django.utils.translation import gettext_lazy

    # A msgid the app's catalog has, standing for the site's own ("Watercolour" in its catalog).
    configure(
        PROMPT_PANEL=True, PRESETS={"ink": {"label": gettext_lazy("Close"), "prompt": "Ink."}}
    )
    call_command("check", "--tag", "page_images", "--fail-level", "ERROR")
    client = client_for(editor, HTTP_ACCEPT_LANGUAGE="de")
    panel = client.get("/page-images/panel/", {"ref": sign_record(make_page())}).content.decode()
    assert '<option value="ink">Schließen</option>' in panel


def test_the_quotas_words_and_money_are_german(settings, editor):
    from django.utils import translation

    from page_images import quotas
    from page_images.exceptions import QuotaExceededError

    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "QUOTAS": {"per_user": {"day": 2}}}
    with translation.override("de"):
        assert quotas.remaining(editor).message == "Heute noch 2 von 2 Bildern übrig"
        with pytest.raises(QuotaExceededError) as refused:
            quotas.enforce_generations(editor, 3)
    assert refused.value.user_message == (
        "Für heute sind nur noch 2 Bilder übrig, angefordert sind 3."
    )
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "QUOTAS": {"site": {"month_usd": "1.5"}}}
    with translation.override("de"):
        german = quotas.remaining(editor).message
    assert german == "Diesen Monat noch 1,50 $ von 1,50 $ dieser Website übrig"
    assert quotas.remaining(editor).message == "$1.50 of this site's $1.50 left this month"


def test_the_views_refusals_speak_german(german, editor, reader, make_page):
    page = make_page()
    refused = client_for(reader, HTTP_ACCEPT_LANGUAGE="de").post(
        TRIGGER, {"ref": sign_record(page)}, **HTMX
    )
    assert refused.status_code == 403
    assert "Keine Berechtigung, für diesen Datensatz ein Bild zu generieren." in (
        refused.content.decode()
    )
    stale = client_for(editor, HTTP_ACCEPT_LANGUAGE="de").post(
        TRIGGER, {"ref": "not-a-reference"}, **HTMX
    )
    assert stale.status_code == 400
    assert "Diese Schaltfläche ist veraltet. Bitte die Seite neu laden." in stale.content.decode()
    empty = make_page("   ")
    nothing = client_for(editor, HTTP_ACCEPT_LANGUAGE="de").post(
        TRIGGER, {"ref": sign_record(empty)}, **HTMX
    )
    assert nothing.status_code == 400
    assert "Es gibt keinen Text, aus dem ein Bild entstehen könnte." in nothing.content.decode()


def test_the_historys_error_is_read_in_german_in_the_admin(german, make_page, django_user_model):
    from page_images.history import ABANDONED_MESSAGE, Generation, content_type_of

    page = make_page()
    row = Generation.objects.create(
        content_type=content_type_of(page),
        object_id=str(page.pk),
        token="00000000-0000-4000-8000-000000000001",
        prompt="A red fox",
        status=Generation.Status.FAILED,
        error=ABANDONED_MESSAGE,
    )
    admin = django_user_model.objects.create_superuser("root", password="pw")
    html = (
        client_for(admin, HTTP_ACCEPT_LANGUAGE="de")
        .get(f"/admin/page_images/generation/{row.pk}/change/")
        .content.decode()
    )
    assert "Der Bild-Job wurde nicht rechtzeitig fertig." in html
    assert ABANDONED_MESSAGE not in html
    assert "fehlgeschlagen" in html


def test_the_stream_scripts_words_are_german(german, editor):
    from django.template import Context, Template
    from django.test import RequestFactory
    from django.utils import translation

    request = RequestFactory().get("/")
    request.user = editor
    with translation.override("de"):
        html = Template("{% load page_images %}{% page_images_stream %}").render(
            Context({"request": request})
        )
    assert 'data-announce-ready="Bild fertig"' in html
    assert 'data-failed-text="Die Anfrage ist fehlgeschlagen.' in html


def test_an_anonymous_visitor_gets_no_german_error(german, make_page):
    page = make_page(image_generating=True)
    html = Client(HTTP_ACCEPT_LANGUAGE="de").get(FRAGMENT, {"ref": sign_record(page)})
    assert "Bild-Job" not in html.content.decode()


@pytest.mark.process
@pytest.mark.browser
def test_a_browser_that_asks_for_german_gets_the_demos_chip_in_german(tmp_path, browser):
    """make demo as is (no DEMO_LANGUAGE): Chromium asks for German, and an editor clicks the
    German chip, watches the wait counted in German, and hears the picture arrive in German."""
    from tests.support.demo import container, demo_stack, doc_shot, editor_tab

    with (
        demo_stack(tmp_path, job_seconds=2.5) as stack,
        editor_tab(browser, stack.url, stack, locale="de-DE") as tab,
    ):
        assert tab.locator("html").get_attribute("lang") == "de"
        box = container(tab, 0)
        box.get_by_role("button", name="Bild generieren").click()
        box.get_by_text("Bild wird generiert…").wait_for()
        doc_shot(tab.locator("article.page").first, "translations-de-generating")
        assert box.get_by_role("button", name="Abbrechen").is_visible()
        elapsed = box.locator(".page-images-elapsed")
        elapsed.wait_for()
        assert elapsed.inner_text().startswith(("wartet seit", "läuft seit")), elapsed.inner_text()
        box.locator("img.page-images-image").wait_for(timeout=20_000)
        tab.wait_for_function(
            "document.querySelector('.page-images-live').textContent === 'Bild fertig'"
        )
        assert "Generate image" not in tab.content()
