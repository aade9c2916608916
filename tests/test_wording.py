"""Stored sentences are English and are read in the reader's language (page_images.wording)."""

from __future__ import annotations

from django.utils import translation

from page_images.exceptions import ContentPolicyError, TransientGenerationError
from page_images.wording import CONTENT_POLICY_REFUSAL, shown, with_reason


def test_a_stored_sentence_is_read_in_the_active_language():
    stored = TransientGenerationError().user_message
    assert stored == "The image service is busy or unreachable. Try again in a moment."
    with translation.override("de"):
        assert shown(stored).startswith("Der Bilddienst ist ausgelastet")
    with translation.override("en"):
        assert shown(stored) == stored


def test_a_refusal_keeps_the_providers_words_after_its_translated_opening():
    stored = with_reason(CONTENT_POLICY_REFUSAL, "Your request was rejected: safety system.")
    assert ContentPolicyError(stored).user_message == stored
    with translation.override("de"):
        assert shown(stored) == (
            "Der Bilddienst hat diesen Text nach seinen Inhaltsrichtlinien abgelehnt: "
            "Your request was rejected: safety system."
        )


def test_a_sentence_the_catalogs_do_not_know_is_shown_as_stored():
    with translation.override("de"):
        assert shown("Our own backend is out of crayons.") == "Our own backend is out of crayons."
        assert shown("") == ""
        # The opening alone, with no words after it, is not taken for a refusal with a reason.
        assert shown(CONTENT_POLICY_REFUSAL + "x") == CONTENT_POLICY_REFUSAL + "x"
