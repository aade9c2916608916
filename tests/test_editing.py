"""What the editor's panels and tools show (editing.py and the container's review, regenerate and
earlier-pictures markup in rendering.py)."""

from __future__ import annotations

import uuid

import pytest
from django.test import RequestFactory

from page_images import claims
from page_images.editing import Choice, Thumbnail, candidates, panel_context
from page_images.history import Generation, content_type_of
from page_images.references import sign_record
from page_images.rendering import container_context, rendered_references
from tests.reliability import case
from tests.support.pictures import in_review, kept, with_new_picture
from tests.support.web import client_for

pytestmark = pytest.mark.django_db(transaction=True)

FOX = "A red fox jumps over a sleeping dog at dawn"


def clicked(page, **fields):
    """A generation of ``page`` in its history, as a click leaves it."""
    fields.setdefault("token", uuid.uuid4())
    return Generation.objects.create(
        content_type=content_type_of(page),
        object_id=str(page.pk),
        prompt=fields.get("subject", FOX),
        **fields,
    )


def failed(page, subject, error="Your request was refused by the content policy."):
    token = claims.claim(page)
    clicked(page, subject=subject, prompt_edited=True, token=token)
    claims.fail_generation(type(page), page.pk, token, error)
    page.refresh_from_db()


def container(user, page, **kwargs):
    request = RequestFactory().get("/stories/")
    request.user = user
    return request, container_context(request, page, **kwargs)


def fragment(user, page):
    response = client_for(user).get("/page-images/fragment/", {"ref": sign_record(page)})
    return response.content.decode()


def test_the_compose_panel_starts_from_the_records_prompt(page, configure):
    configure(PROMPT_TEMPLATE="Ink drawing of {image_text}", VARIANTS=2, MAX_PROMPT_LENGTH=300)
    values = panel_context(page, "compose")
    assert values == {
        "draft": f"Ink drawing of {FOX}",
        "reason": "",
        "max_length": 300,
        "presets": [],
        "aspect_ratios": [],
        "variants": 2,
        "replace": False,
    }


def test_the_first_preset_and_ratio_are_chosen_until_a_click_chose_others(page, configure):
    configure(PRESETS={"ink": {"label": "Ink"}, "oil": {}}, ASPECT_RATIOS=["1:1", "3:2"])
    values = panel_context(page, "compose")
    # No preset is marked: the browser shows the first option, which build_spec defaults to.
    assert values["presets"] == [Choice("ink", "Ink", False), Choice("oil", "oil", False)]
    assert values["aspect_ratios"] == [Choice("1:1", "1:1", True), Choice("3:2", "3:2", False)]
    clicked(page, preset="oil", aspect_ratio="3:2")
    values = panel_context(page, "compose")
    assert [choice.selected for choice in values["presets"]] == [False, True]
    assert [choice.selected for choice in values["aspect_ratios"]] == [False, True]


def test_after_a_refusal_the_panel_opens_with_the_refused_text_and_the_reason(page):
    failed(page, "A fox fighting a dog")
    values = panel_context(page, "compose")
    assert values["draft"] == "A fox fighting a dog"
    assert values["reason"] == "Your request was refused by the content policy."


def test_after_a_refusal_without_a_recorded_subject_the_records_prompt_is_offered(page):
    failed(page, "")
    assert panel_context(page, "compose")["draft"] == FOX


def test_a_refusal_no_longer_shown_does_not_fill_the_panel(page):
    failed(page, "A fox fighting a dog")
    claims.cancel(page)  # nothing; the error stays until the next click
    with_new_picture(page)  # a new picture clears the error
    values = panel_context(page, "compose")
    assert (values["draft"], values["reason"], values["replace"]) == (FOX, "", True)


def test_the_text_the_editor_typed_wins(page):
    failed(page, "A fox fighting a dog")
    assert panel_context(page, "compose", "A fox asleep")["draft"] == "A fox asleep"


def test_the_earlier_panel_lists_the_pictures_restore_offers(page):
    with_new_picture(page)
    first = kept(page, "page_images/first.png")
    second = kept(page, "page_images/second.png")
    assert panel_context(page, "earlier") == {
        "earlier": [
            Thumbnail(second.pk, "/media/page_images/second.png", ""),
            Thumbnail(first.pk, "/media/page_images/first.png", ""),
        ]
    }


def test_candidates_are_thumbnails_in_the_order_they_were_made(page):
    made = in_review(page, 3)
    assert [thumbnail.id for thumbnail in candidates(page)] == [picture.pk for picture in made]
    assert candidates(page)[0].url == f"/media/{made[0].name}"


def test_an_editor_sees_the_candidates_and_a_visitor_the_live_picture(page, editor, reader):
    with_new_picture(page)
    live = page.image.url
    made = in_review(page)
    page.refresh_from_db()
    _, values = container(editor, page)
    assert values["state"] == "review"
    assert [thumbnail.id for thumbnail in values["candidates"]] == [p.pk for p in made]
    assert values["image_url"] == ""
    request, values = container(reader, page)
    assert (values["state"], values["image_url"], values["candidates"]) == ("ready", live, ())
    assert rendered_references(request) == []


def test_the_review_markup_offers_each_candidate_and_discard(page, editor):
    made = in_review(page)
    text = fragment(editor, page)
    assert text.count('action="/page-images/accept/"') == 2
    assert f'name="picture" value="{made[0].pk}"' in text
    assert 'aria-label="Use picture 1"' in text
    assert 'action="/page-images/discard/"' in text
    assert "Visitors see none until you do." in text


@pytest.mark.parametrize("regenerate", [False, True])
def test_a_picture_is_followed_and_offers_tools_only_with_regenerate(
    page, editor, configure, regenerate
):
    configure(REGENERATE=regenerate)
    with_new_picture(page)
    request, values = container(editor, page)
    assert (values["follow"], values["regenerate"]) == (regenerate, regenerate)
    assert rendered_references(request) == ([page.image_reference] if regenerate else [])


def test_a_visitor_gets_no_tools_even_with_regenerate(page, reader, configure):
    configure(REGENERATE=True)
    with_new_picture(page)
    request, values = container(reader, page)
    assert (values["state"], values["follow"], values["regenerate"]) == ("ready", False, False)
    assert rendered_references(request) == []


@pytest.mark.parametrize(
    ("panel", "opens"),
    [(False, 'action="/page-images/generate/"'), (True, 'action="/page-images/panel/"')],
)
def test_regenerate_posts_at_once_or_opens_the_panel(page, editor, configure, panel, opens):
    configure(REGENERATE=True, PROMPT_PANEL=panel)
    with_new_picture(page)
    text = fragment(editor, page)
    assert "Regenerate" in text
    assert opens in text
    assert "Earlier pictures" in text
    assert ('name="replace" value="1"' in text) is not panel


def test_a_panel_is_shown_only_to_those_who_may_generate(page, reader, editor):
    _, values = container(reader, page, panel="compose")
    assert values["state"] == "empty"
    _, values = container(editor, page, panel="compose")
    assert (values["state"], values["draft"]) == ("compose", FOX)
    _, values = container(editor, page, panel="nonsense")
    assert values["state"] == "empty"


def test_the_chip_opens_the_panel_when_the_site_offers_it(page, editor, configure):
    configure(PROMPT_PANEL=True)
    text = fragment(editor, page)
    assert 'method="get" action="/page-images/panel/"' in text
    assert 'hx-trigger="page-images:' in text


@case(
    "provider",
    "Regenerate refused by the provider (content policy) on a record that has a picture",
    "The picture stays, with the reason under it; the prompt panel reopens with the refused "
    "text and the reason. Visitors see the picture only.",
)
def test_a_refused_regenerate_says_why_beside_the_picture(page, editor, reader, configure):
    configure(REGENERATE=True, PROMPT_PANEL=True)
    with_new_picture(page)
    failed(page, "A fox fighting a dog")
    assert page.image_state == "ready"
    text = fragment(editor, page)
    assert 'data-state="ready"' in text
    assert "refused by the content policy" in text
    values = panel_context(page, "compose")
    assert (values["draft"], values["reason"]) == (
        "A fox fighting a dog",
        "Your request was refused by the content policy.",
    )
    assert "refused" not in fragment(reader, page)
    configure(REGENERATE=False)  # no tools on pictures: nothing to say beside them
    assert "refused" not in fragment(editor, page)
