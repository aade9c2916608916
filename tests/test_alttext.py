"""Alt text: written after the picture, by the describer or the model's hook, never over an
editor's words, never at the picture's expense; the real LiteLLM against the fake provider."""

from __future__ import annotations

import io
import logging
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from page_images import alttext, claims, pictures, queueing, tasks
from page_images.backends import describer_config, get_describer
from page_images.backends.base import PermanentGenerationError
from page_images.backends.local import LocalBackend, describe_colours
from page_images.history import Generation, Picture
from page_images.intake import validate_image
from page_images.testing import Respond, png_bytes
from tests.reliability import case
from tests.testapp.models import Page, Poster

pytestmark = pytest.mark.django_db(transaction=True)

NOTICES: list[str] = []


def recording_notifier(instance):
    """A NOTIFIER that remembers what each notice saw: the picture, then the alt text."""
    NOTICES.append(f"{bool(instance.image_file)}|{instance.get_image_alt_text()}")


@pytest.fixture(autouse=True)
def local(settings):
    NOTICES.clear()
    settings.PAGE_IMAGES = {
        "SIZE": "64x64",
        "NOTIFIER": "tests.test_alttext.recording_notifier",
        "ALT_TEXT": {"TIMEOUT": 5},
    }
    return settings.PAGE_IMAGES


def run(instance, token=None):
    token = token or claims.claim(instance)
    job = tasks.ImageJob(label=instance._meta.label, pk=str(instance.pk), token=token)
    return tasks.generate_image.apply(args=(job.model_dump(mode="json"),))


def read(page: Page, name: str) -> bytes:
    with page.image.storage.open(name) as file:
        return file.read()


def described(page: Page) -> str:
    """What LocalBackend says of the picture the page shows."""
    return describe_colours(read(page, page.image.name))


# The mixin


def test_alt_text_comes_from_the_named_field_never_from_the_prompt(make_page, poster):
    page = make_page(image_alt="  A fox mid-leap  ")
    assert page.get_image_alt_text() == "A fox mid-leap"
    page.image_alt = None
    assert page.get_image_alt_text() == ""
    assert make_page().get_image_alt_text() == ""  # decorative, not the paragraph read twice
    assert poster.get_image_alt_text() == ""  # no alt text field at all


def test_language_and_hook_defaults(page, settings):
    settings.LANGUAGE_CODE = "de"
    assert page.get_image_language() == "de"
    assert page.describe_image(b"", language="de") is None


# The settings and the describer


def test_describer_inherits_the_image_backends_options(settings):
    settings.PAGE_IMAGES = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "openai/gpt-image-1", "api_key": "k", "timeout": 240},
    }
    path, options = describer_config({"MODEL": "openai/gpt-4o-mini", "OPTIONS": {}, "TIMEOUT": 20})
    assert path == "page_images.backends.litellm.LiteLLMBackend"
    assert options == {"model": "openai/gpt-4o-mini", "api_key": "k", "timeout": 20.0}
    # Its own OPTIONS win, timeout included; another backend inherits nothing.
    _, options = describer_config({"OPTIONS": {"timeout": 9}, "TIMEOUT": 20})
    assert options == {"model": "openai/gpt-image-1", "api_key": "k", "timeout": 9}
    path, options = describer_config(
        {"BACKEND": "page_images.backends.local.LocalBackend", "OPTIONS": {}, "TIMEOUT": 20}
    )
    assert (path, options) == ("page_images.backends.local.LocalBackend", {})
    assert describer_config({"BACKEND": "no.such.Backend", "TIMEOUT": 1}) == ("no.such.Backend", {})


def test_the_describer_is_built_when_configured(settings):
    settings.PAGE_IMAGES = {"ALT_TEXT": None}
    assert get_describer() is None
    settings.PAGE_IMAGES = {"ALT_TEXT": {}, "OPTIONS": {"delay": 0.5}}
    describer = get_describer()
    assert isinstance(describer, LocalBackend)
    assert describer.delay == 0.5


def test_a_backend_without_describe_writes_none():
    from tests.backends import ScriptedBackend

    with pytest.raises(NotImplementedError):
        ScriptedBackend().describe(b"", "image/png", language="en", prompt="")


def test_local_backend_names_what_it_sees_never_the_prompt():
    backend = LocalBackend()
    blue = png_bytes(16, 16, (30, 60, 200))
    assert backend.describe(blue, "image/png", language="de", prompt="x") == (
        "An abstract picture in blue tones"
    )
    half = Image.new("RGB", (16, 16), (0, 0, 0))
    half.paste((250, 250, 250), (0, 0, 16, 6))
    out = io.BytesIO()
    half.save(out, format="PNG")
    assert describe_colours(out.getvalue()) == "An abstract picture in black and white tones"
    for colour, name in [
        ((128, 128, 128), "grey"),
        ((110, 60, 10), "brown"),
        ((240, 140, 20), "orange"),
    ]:
        assert describe_colours(png_bytes(8, 8, colour)) == f"An abstract picture in {name} tones"


# Cleaning, language, instruction


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('  "Image of a fox\n asleep."  ', "A fox asleep."),
        ("A picture showing two boats", "Two boats"),
        ("Image of", "Image of"),
        ("A fox " * 10, "A fox A fox A fox…"),
        ("x" * 30, "x" * 19 + "…"),
    ],
)
def test_answers_are_cleaned_and_cut_at_a_word(answer, expected):
    assert alttext.clean(answer, 20) == expected


def test_the_instruction_names_the_language_and_length(settings):
    assert alttext.language_name("de") == "German"
    assert alttext.language_name("xx-nowhere") == "xx-nowhere"
    text = alttext.instruction("fr", 99)
    assert "in French" in text
    assert "at most 99 characters" in text
    assert "{" not in text


def test_the_field_limits_the_length(settings):
    settings.PAGE_IMAGES = {"ALT_TEXT": {"MAX_LENGTH": 1000}}
    assert alttext.max_length(Page) == 250
    settings.PAGE_IMAGES = {"ALT_TEXT": {"MAX_LENGTH": 80}}
    assert alttext.max_length(Page) == 80


def test_a_large_picture_is_sent_as_a_smaller_copy():
    small = validate_image(png_bytes(64, 64))
    assert alttext.preview(small) == (small.content, "image/png")
    content, content_type = alttext.preview(validate_image(png_bytes(1536, 1024)))
    assert content_type == "image/jpeg"
    assert Image.open(io.BytesIO(content)).size == (768, 512)


def test_who_gets_alt_text(settings, monkeypatch):
    assert alttext.wanted(Page)
    assert not alttext.wanted(Poster)  # nowhere to keep it
    settings.PAGE_IMAGES = {}
    assert not alttext.wanted(Page)
    monkeypatch.setattr(Page, "describe_image", lambda self, image, *, language: "Own words")
    assert alttext.wanted(Page)
    monkeypatch.setattr(Page, "image_alt_text_field", "story")  # not text: E081
    assert alttext.field_of(Page) is None
    monkeypatch.setattr(Page, "image_alt_text_field", "nope")  # no such field: E081 too
    assert not alttext.wanted(Page)
    assert alttext.generated_for(Page(), "x.png") == ""


# The job: a live picture


def test_the_picture_is_announced_first_then_its_alt_text(page):
    run(page)
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert page.image_alt == described(page)
    assert page.image_alt.startswith("An abstract picture in ")
    assert page.image_alt != page.image_text
    # Its start ("queued" becomes "started"), the picture, then its text.
    assert ["False|", "True|", f"True|{page.image_alt}"] == NOTICES
    (row,) = Picture.objects.of(page)
    assert row.alt_text == page.image_alt
    generation = Generation.objects.of(page).first()
    assert generation is None or generation.error == ""


@case(
    "concurrency",
    "A new picture lands on a record whose alt text an editor wrote",
    "The editor's text stays; the generated one is kept on the picture's history row.",
)
def test_an_editors_own_alt_text_is_never_overwritten(make_page):
    page = make_page(image_alt="Our fox, drawn for the spring issue")
    run(page)
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert page.image_alt == "Our fox, drawn for the spring issue"
    # The generated text is kept beside the picture, for the editor to compare.
    assert Picture.objects.of(page).get().alt_text == described(page)
    assert [f"False|{page.image_alt}", f"True|{page.image_alt}"] == NOTICES


def test_a_new_picture_replaces_the_alt_text_generated_for_the_old(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "KEEP_PICTURES": 0}  # its row pruned meanwhile
    run(page)
    page.refresh_from_db()
    first = page.image_alt
    page.image_text = "A blue whale under a green moon"
    page.save()
    run(page)
    page.refresh_from_db()
    assert page.image_alt == described(page) != first


def test_a_failed_description_clears_the_old_pictures_text_and_keeps_the_picture(page, monkeypatch):
    run(page)
    page.refresh_from_db()
    assert page.image_alt

    def broken(self, image, content_type, *, language, prompt):
        raise PermanentGenerationError("down")

    monkeypatch.setattr(LocalBackend, "describe", broken)
    page.image_text = "Something else entirely"
    page.save()
    run(page)
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert page.image_error == ""
    assert page.image_alt == ""  # decorative rather than a description of another picture


def test_a_slow_description_is_abandoned_within_the_timeout(page, settings, monkeypatch):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "ALT_TEXT": {"TIMEOUT": 0.3}}
    monkeypatch.setattr(
        Page, "describe_image", lambda self, image, *, language: time.sleep(3) or "late"
    )
    started = time.monotonic()
    run(page)
    assert time.monotonic() - started < 2.5
    page.refresh_from_db()
    assert (page.image_state, page.image_alt) == ("ready", "")


def test_the_soft_time_limit_while_describing_keeps_the_picture(page, monkeypatch):
    def out_of_time(instance, images):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(alttext, "describe_all", out_of_time)
    assert run(page).get() == "job:fox-channel:page_images.generate"
    page.refresh_from_db()
    assert (page.image_state, page.image_error, page.image_alt) == ("ready", "", "")


def test_the_models_own_hook_writes_in_its_language(page, settings, monkeypatch):
    settings.PAGE_IMAGES = {"SIZE": "64x64", "NOTIFIER": "tests.test_alttext.recording_notifier"}
    seen = []

    def hook(self, image, *, language):
        seen.append((image[:4], language))
        Page.objects.count()  # a hook may read the database, on its thread's own connection
        return "  Ein Fuchs im Sprung  "

    monkeypatch.setattr(Page, "describe_image", hook)
    monkeypatch.setattr(Page, "get_image_language", lambda self: "de")
    run(page)
    page.refresh_from_db()
    assert page.image_alt == "Ein Fuchs im Sprung"
    assert seen == [(b"\x89PNG", "de")]


def test_a_hook_returning_none_leaves_it_to_the_describer(page, monkeypatch):
    monkeypatch.setattr(Page, "describe_image", lambda self, image, *, language: None)
    run(page)
    page.refresh_from_db()
    assert page.image_alt == described(page)


def test_a_hook_without_a_describer_and_none_to_say(page, settings, monkeypatch):
    settings.PAGE_IMAGES = {"SIZE": "64x64"}
    monkeypatch.setattr(Page, "describe_image", lambda self, image, *, language: None)
    run(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_alt) == ("ready", "")


def test_no_alt_text_setting_no_description(page, settings, monkeypatch):
    settings.PAGE_IMAGES = {"SIZE": "64x64"}
    monkeypatch.setattr(alttext, "describe_all", None)  # would fail if called
    run(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_alt) == ("ready", "")


def test_a_backend_that_cannot_describe_leaves_it_empty(page, settings, caplog):
    caplog.set_level(logging.INFO, logger="page_images")
    settings.PAGE_IMAGES = {
        "BACKEND": "tests.backends.ScriptedBackend",
        "SIZE": "32x32",
        "ALT_TEXT": {},
    }
    run(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_alt) == ("ready", "")
    assert "cannot describe pictures" in caplog.text


def test_storing_the_text_never_raises(page, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(alttext, "publish", broken)
    run(page)
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert "could not be stored" in caplog.text


def test_templates_show_the_written_alt_text(page, editor):
    from tests.test_rendering import render

    run(page)
    page.refresh_from_db()
    assert f'alt="{page.image_alt}"' in render("{% page_image p %}", editor, p=page)


# Review mode: candidates


@pytest.fixture
def review(settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "REVIEW": True, "VARIANTS": 2}


def generate_candidates(page):
    token = queueing.request_generation(page)
    assert token is not None
    run(page, token)
    page.refresh_from_db()
    return pictures.candidates(page)


def test_candidates_get_their_alt_text_and_accepting_one_publishes_it(page, review):
    candidates = generate_candidates(page)
    assert page.image_state == "review"
    assert page.image_alt == ""  # nothing is live yet
    assert [c.alt_text for c in candidates] == [
        describe_colours(read(page, c.name)) for c in candidates
    ]
    assert all(c.alt_text for c in candidates)
    assert pictures.accept(page, candidates[1].pk)
    assert page.image_alt == candidates[1].alt_text
    page.refresh_from_db()
    assert (page.image.name, page.image_alt) == (candidates[1].name, candidates[1].alt_text)


def test_accepting_keeps_an_editors_own_words(page, review):
    candidates = generate_candidates(page)
    Page.objects.filter(pk=page.pk).update(image_alt="Written by hand")
    page.refresh_from_db()
    assert pictures.accept(page, candidates[0].pk)
    page.refresh_from_db()
    assert page.image_alt == "Written by hand"


def test_a_description_that_lands_after_the_accept_is_published(page, review, monkeypatch):
    monkeypatch.setattr(alttext, "describe_all", lambda instance, images: ["", ""])
    candidates = generate_candidates(page)
    assert pictures.accept(page, candidates[0].pk)
    page.refresh_from_db()
    assert page.image_alt == ""
    picture = Picture.objects.get(pk=candidates[0].pk)
    image = validate_image(read(page, picture.name))
    monkeypatch.undo()
    alttext.write(page, [picture], [image])
    page.refresh_from_db()
    assert page.image_alt == describe_colours(image.content)


def test_restoring_a_picture_brings_back_its_alt_text(page):
    run(page)
    page.refresh_from_db()
    first_name, first_alt = page.image.name, page.image_alt
    page.image_text = "A blue whale under a green moon"
    page.save()
    run(page)
    page.refresh_from_db()
    assert page.image_alt != first_alt
    (earlier,) = pictures.earlier(page)
    assert pictures.restore(page, earlier.pk)
    page.refresh_from_db()
    assert (page.image.name, page.image_alt) == (first_name, first_alt)


def test_publish_needs_the_picture_shown_and_a_field(page, poster, monkeypatch):
    assert not alttext.publish(poster, "x.png", "A fox")
    assert not alttext.publish(page, "other.png", "A fox")
    Page.objects.filter(pk=page.pk).update(image="x.png")
    # A nullable field counts NULL as empty.
    monkeypatch.setattr(Page._meta.get_field("image_alt"), "null", True)
    assert alttext.publish(page, "x.png", "A fox")
    assert Page.objects.get(pk=page.pk).image_alt == "A fox"


def test_nothing_to_describe(page, monkeypatch):
    monkeypatch.setattr(alttext, "describe_all", None)  # would fail if called
    alttext.write(page, [], [])


def test_a_text_field_has_no_limit_of_its_own(settings, monkeypatch):
    settings.PAGE_IMAGES = {"ALT_TEXT": {"MAX_LENGTH": 1000}}
    monkeypatch.setattr(Page, "image_alt_text_field", "image_text")
    assert alttext.max_length(Page) == 1000


# The real LiteLLM, end to end


@pytest.fixture
def vision(settings, litellm_settings, provider):
    settings.PAGE_IMAGES = {
        **litellm_settings,
        "NOTIFIER": "tests.test_alttext.recording_notifier",
        "ALT_TEXT": {"MODEL": "openai/gpt-4o-mini", "MAX_LENGTH": 120, "TIMEOUT": 3},
    }
    return provider


def test_litellm_describes_the_stored_picture_in_the_records_language(page, vision, monkeypatch):
    monkeypatch.setattr(Page, "get_image_language", lambda self: "fr")
    vision.push_description(Respond.text("Image of a small fox asleep under a red sky."))
    run(page)
    page.refresh_from_db()
    assert page.image_alt == "A small fox asleep under a red sky."
    (call,) = vision.description_requests
    assert call.body["model"] == "gpt-4o-mini"
    assert "in French" in call.text
    assert "at most 120 characters" in call.text
    (url,) = call.image_urls
    assert url.startswith("data:image/png;base64,")
    assert vision.generation_calls == 1


@case(
    "provider",
    "The vision model fails (5xx) while writing a new picture's alt text",
    "The picture is stored and shown as usual, with an empty (decorative) alt; not retried.",
)
def test_litellm_failure_leaves_the_picture_stored(page, vision):
    vision.push_description(Respond.server_error())
    run(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_error, page.image_alt) == ("ready", "", "")
    assert len(vision.description_requests) == 1  # no retry: a caption is not worth one


@case(
    "provider",
    "The vision model never answers",
    "The job waits ALT_TEXT['TIMEOUT'] at most after the picture is shown; the alt stays empty.",
)
def test_a_hanging_vision_model_costs_the_job_its_timeout_only(page, vision, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "ALT_TEXT": {"TIMEOUT": 0.5}}
    vision.push_description(Respond.hang(10))
    started = time.monotonic()
    run(page)
    assert time.monotonic() - started < 5
    page.refresh_from_db()
    assert (page.image_state, page.image_alt) == ("ready", "")
