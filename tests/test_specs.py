"""What a click asks for (specs.build_spec): the prompt, the preset, the size and the review."""

from __future__ import annotations

import pytest

from page_images.exceptions import EmptyPromptError, InvalidChoiceError
from page_images.specs import GenerationSpec, build_spec, record_prompt, with_preset
from tests.reliability import case
from tests.testapp.models import Page, Poster

FOX = "A red fox at dawn"
PRESETS = {
    "watercolour": {"label": "Watercolour", "prompt": "Soft watercolour, pale paper."},
    "poster": {"prompt": "Bold poster of {prompt}, flat colours", "size": "512x768"},
    "sketch": {"prompt": "", "quality": "low"},
}


def page(text=FOX):
    return Page(image_text=text)


def test_without_choices_the_record_and_the_settings_decide():
    assert build_spec(page()) == GenerationSpec(
        prompt=FOX, subject=FOX, size="256x256", quality=None, variants=1, review=False
    )


def test_the_prompt_template_is_filled_with_the_records_fields(configure):
    configure(PROMPT_TEMPLATE="Watercolour illustration of: {image_text}")
    spec = build_spec(page())
    assert spec.prompt == spec.subject == f"Watercolour illustration of: {FOX}"
    assert not spec.prompt_edited


def test_the_prompt_template_places_the_records_own_prompt(configure):
    configure(PROMPT_TEMPLATE="{prompt}, in the mood {mood}; {missing_mood}")
    poster = Poster(headline="Harvest fair", mood="sunny")
    poster.missing_mood = None  # an attribute that is None reads as nothing
    assert record_prompt(poster) == "Harvest fair sunny, in the mood sunny;"


def test_a_template_field_the_record_lacks_is_a_key_error(configure):
    # System check E060 refuses such a template at start-up.
    configure(PROMPT_TEMPLATE="{no_such_field}")
    with pytest.raises(KeyError):
        record_prompt(page())


@case(
    "storage",
    "A prompt template over a record whose text is empty",
    "'There is no text to make a picture from.'; the template's own words are not a subject.",
)
@pytest.mark.parametrize("template", ["{prompt} in watercolour", "Watercolour of: {image_text}"])
def test_a_template_over_an_empty_record_has_nothing_to_draw(configure, template):
    configure(PROMPT_TEMPLATE=template)
    assert record_prompt(page("")) == ""
    with pytest.raises(EmptyPromptError):
        build_spec(page(""))


def test_the_first_preset_is_the_default(configure):
    configure(PRESETS=PRESETS)
    spec = build_spec(page())
    assert spec.preset == "watercolour"
    assert spec.prompt == f"{FOX}\n\nSoft watercolour, pale paper."
    assert spec.subject == FOX


def test_a_preset_places_the_prompt_and_sets_the_size(configure):
    configure(PRESETS=PRESETS)
    spec = build_spec(page(), preset="poster")
    assert spec.prompt == f"Bold poster of {FOX}, flat colours"
    assert spec.size == "512x768"
    assert spec.quality is None


def test_a_preset_without_words_sets_the_quality_only(configure):
    configure(PRESETS=PRESETS, QUALITY="high")
    spec = build_spec(page(), preset="sketch")
    assert (spec.prompt, spec.size, spec.quality) == (FOX, "256x256", "low")
    assert build_spec(page(), preset="watercolour").quality == "high"


@case(
    "requests",
    "A preset or aspect ratio the site no longer offers (a page drawn before a settings change)",
    "400 'That style (shape) is not offered any more. Reload the page.'; nothing claimed.",
)
def test_an_unknown_preset_is_refused(configure):
    configure(PRESETS=PRESETS)
    with pytest.raises(InvalidChoiceError, match="style is not offered"):
        build_spec(page(), preset="oil")
    configure()
    with pytest.raises(InvalidChoiceError, match="style is not offered"):
        build_spec(page(), preset="watercolour")


def test_without_presets_there_is_no_preset():
    spec = build_spec(page(), preset="")
    assert (spec.preset, spec.prompt) == ("", FOX)


def test_an_aspect_ratio_is_drawn_at_the_backends_size(configure):
    configure(ASPECT_RATIOS=["1:1", "3:2"], SIZE="1024x1024")
    spec = build_spec(page(), aspect_ratio="3:2")
    assert (spec.aspect_ratio, spec.size) == ("3:2", "1280x832")  # the area kept, sides of 64
    assert build_spec(page(), aspect_ratio="1:1").size == "1024x1024"


def test_an_aspect_ratio_applies_to_the_presets_size(configure):
    configure(ASPECT_RATIOS=["2:3"], PRESETS=PRESETS)
    assert build_spec(page(), preset="poster", aspect_ratio="2:3").size == "512x768"


def test_an_aspect_ratio_not_offered_is_refused(configure):
    configure(ASPECT_RATIOS=["1:1"])
    with pytest.raises(InvalidChoiceError, match="shape is not offered"):
        build_spec(page(), aspect_ratio="16:9")


@case(
    "requests",
    "An aspect ratio the backend's provider cannot draw (OpenAI's fixed sizes)",
    "400 naming the ratios the model draws; nothing claimed (system check E062 says it first).",
)
def test_a_ratio_the_backend_cannot_draw_is_an_invalid_choice(configure):
    configure(
        BACKEND="page_images.backends.litellm.LiteLLMBackend",
        OPTIONS={"model": "openai/gpt-image-1"},
        ASPECT_RATIOS=["3:2", "16:9"],
    )
    assert build_spec(page(), aspect_ratio="3:2").size == "1536x1024"
    with pytest.raises(InvalidChoiceError, match=r"cannot draw the aspect ratio 16:9.*1:1, 3:2"):
        build_spec(page(), aspect_ratio="16:9")


def test_an_edited_prompt_is_what_is_sent(configure):
    configure(PRESETS=PRESETS)
    spec = build_spec(page(), prompt="  A grey wolf at dusk ", preset="poster")
    assert spec.prompt_edited
    assert spec.subject == "A grey wolf at dusk"
    assert spec.prompt == "Bold poster of A grey wolf at dusk, flat colours"


def test_the_records_own_prompt_sent_back_unchanged_is_not_an_edit():
    spec = build_spec(page(), prompt=f"{FOX}  ")
    assert not spec.prompt_edited
    assert spec.subject == FOX


def test_a_record_of_several_lines_sent_back_by_a_browser_is_not_an_edit(configure):
    # A textarea's value is submitted with CRLF line breaks, whatever the page held.
    configure(MAX_PROMPT_LENGTH=30)
    text = "A red fox.\n\nIt is dawn and the fox is hungry."
    spec = build_spec(page(text), prompt=text.replace("\n", "\r\n") + "\r\n")
    assert (spec.prompt_edited, spec.subject) == (False, text)  # nor held to MAX_PROMPT_LENGTH
    spec = build_spec(page(text), prompt="A grey wolf.\r\rAt dusk.")
    assert (spec.prompt_edited, spec.subject) == (True, "A grey wolf.\n\nAt dusk.")


def test_an_emptied_prompt_is_refused():
    with pytest.raises(EmptyPromptError):
        build_spec(page(), prompt="   ")
    with pytest.raises(EmptyPromptError):
        build_spec(page(""))


@case(
    "requests",
    "A prompt longer than MAX_PROMPT_LENGTH sent from the panel",
    "400 'The prompt is too long: at most N characters.', back in the panel with the text.",
)
def test_an_edited_prompt_too_long_is_refused(configure):
    configure(MAX_PROMPT_LENGTH=10)
    assert build_spec(page("x" * 11)).subject == "x" * 11  # the record's own is not limited
    assert build_spec(page(), prompt="y" * 10).prompt == "y" * 10
    with pytest.raises(InvalidChoiceError, match="at most 10 characters"):
        build_spec(page(), prompt="y" * 11)


@pytest.mark.parametrize(
    ("variants", "review", "expected"),
    [(1, False, (1, False)), (1, True, (1, True)), (3, False, (3, True)), (0, False, (1, False))],
)
def test_variants_ask_for_a_review(configure, variants, review, expected):
    configure(VARIANTS=variants, REVIEW=review)
    spec = build_spec(page())
    assert (spec.variants, spec.review) == expected


def test_with_preset_adds_nothing_for_empty_words():
    assert with_preset("a fox", {}) == "a fox"
    assert with_preset("a fox", {"prompt": "  "}) == "a fox"
    assert with_preset("a fox", {"prompt": "In ink."}) == "a fox\n\nIn ink."


def test_a_presets_label_defaults_to_its_name():
    from page_images.specs import preset_label

    assert preset_label("poster", PRESETS["poster"]) == "poster"
    assert preset_label("watercolour", PRESETS["watercolour"]) == "Watercolour"
