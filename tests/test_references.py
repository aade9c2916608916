from __future__ import annotations

import pytest
from django.core import signing

from page_images.references import (
    BadReference,
    RecordNotFound,
    event_key,
    load_record,
    sign_record,
)
from page_images.signer import SALT
from tests.reliability import case
from tests.testapp.models import Note, Page


def test_round_trip(page):
    assert load_record(sign_record(page)) == page


@pytest.mark.parametrize("token", ["", "testapp.page:1", "testapp.page:1:forged", "x" * 500])
def test_tampered_or_unsigned(token, db):
    with pytest.raises(BadReference):
        load_record(token)


@case(
    "requests",
    "A chip reference with its record id edited",
    "Refused as tampered (400 'This button is out of date. Reload the page.').",
)
def test_edited_pk_breaks_the_signature(page):
    token = sign_record(page)
    with pytest.raises(BadReference):
        load_record(token.replace(f":{page.pk}:", f":{page.pk + 1}:", 1))


def test_models_without_the_mixin_are_refused_even_when_signed(db):
    note = Note.objects.create(text="private")
    token = signing.Signer(salt=SALT).sign(f"testapp.note:{note.pk}")
    with pytest.raises(BadReference, match="does not generate images"):
        load_record(token)
    with pytest.raises(BadReference):
        load_record(signing.Signer(salt=SALT).sign("auth.user:1"))
    with pytest.raises(BadReference):
        load_record(signing.Signer(salt=SALT).sign("nope.model:1"))


@case(
    "requests",
    "A reference signed for another purpose (another salt) replayed at the trigger",
    "Refused as tampered (400).",
)
def test_signed_with_another_salt_is_refused(page):
    with pytest.raises(BadReference):
        load_record(signing.Signer().sign(page.image_reference))


def test_deleted_record(page):
    token = sign_record(page)
    Page.objects.filter(pk=page.pk).delete()
    with pytest.raises(RecordNotFound):
        load_record(token)


def test_garbage_pk(db):
    with pytest.raises(RecordNotFound):
        load_record(signing.Signer(salt=SALT).sign("testapp.page:not-a-number"))


def test_event_key_is_dom_safe():
    assert event_key("testapp.page:12") == "testapp-page-12"
    assert event_key('a.b:<"x">') == "a-b---x--"
