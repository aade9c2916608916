"""The files behind a picture: candidates, accept, discard, restore, and what is deleted."""

from __future__ import annotations

import logging

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import transaction

from page_images import claims, pictures
from page_images.exceptions import StaleClaimError, StorageWriteError
from page_images.history import Generation, Picture
from tests.reliability import case
from tests.support.pictures import claimed_generation, files, in_review, kept, with_new_picture
from tests.testapp.models import Page
from tests.testapp.storage import _FillsTheDisk

pytestmark = pytest.mark.django_db(transaction=True)

Status = Generation.Status


def exists(name):
    return FileSystemStorage().exists(name)


def stored_files(settings):
    storage = FileSystemStorage(settings.MEDIA_ROOT)
    if not storage.exists("page_images/testapp/page"):
        return []
    return storage.listdir("page_images/testapp/page")[1]


def test_candidates_put_the_record_in_review_and_leave_the_live_picture(page):
    with_new_picture(page)
    live = page.image.name
    made = in_review(page, 3)
    page.refresh_from_db()
    assert (page.image_state, page.image.name, page.image_generating) == ("review", live, False)
    assert page.image_claim_token is None
    assert pictures.candidates(page) == made
    assert [picture.status for picture in made] == [Picture.Status.CANDIDATE] * 3
    assert all(exists(picture.name) for picture in made)
    assert {picture.generation_id for picture in made} == {Generation.objects.get().pk}


def test_the_history_says_review_as_soon_as_the_candidates_can_be_accepted(page):
    # In the candidates' own transaction: an editor who accepts at once finds the row waiting,
    # and the accept closes it as done (it would otherwise stay "waiting for review" for ever).
    chosen, _other = in_review(page)
    assert Generation.objects.get().status == Status.REVIEW
    assert pictures.accept(page, chosen.pk)
    assert Generation.objects.get().status == Status.DONE


@case(
    "concurrency",
    "A review job whose claim was cancelled or taken over while it stored its candidates",
    "Its files are deleted, no candidate is shown; the record keeps what the winner made.",
)
def test_candidates_of_a_lost_claim_are_deleted(page, settings):
    token, row = claimed_generation(page)
    claims.cancel(page)
    with pytest.raises(StaleClaimError):
        pictures.store_candidates(page, files(2), token=token, generation=row)
    assert stored_files(settings) == []
    assert not Picture.objects.exists()
    page.refresh_from_db()
    assert page.image_state == "empty"


@case(
    "storage",
    "The disk fills while the candidates of a review are written",
    "'The image could not be saved.'; no candidate or half-written file left.",
)
def test_a_storage_failure_leaves_no_candidate_behind(page, settings, monkeypatch):
    token, row = claimed_generation(page)
    save = FileSystemStorage._save
    calls = []

    def fills_the_disk_on_the_second(self, name, content):
        calls.append(name)
        return save(self, name, content if len(calls) == 1 else _FillsTheDisk(content))

    monkeypatch.setattr(FileSystemStorage, "_save", fills_the_disk_on_the_second)
    with pytest.raises(StorageWriteError, match="No space left"):
        pictures.store_candidates(page, files(3), token=token, generation=row)
    assert len(calls) == 2
    assert stored_files(settings) == []
    assert not Picture.objects.exists()
    page.refresh_from_db()
    assert page.image_claim_token == token  # the task's failure path releases it with the message


def test_a_new_review_replaces_the_candidates_of_an_older_one(page):
    old = in_review(page)
    new = in_review(page, 1)
    assert pictures.candidates(page) == new
    assert not any(exists(picture.name) for picture in old)


def test_accept_publishes_the_choice_and_keeps_the_replaced_picture(page):
    with_new_picture(page)
    replaced = page.image.name
    chosen, other = in_review(page)
    page.refresh_from_db()

    assert pictures.accept(page, chosen.pk)

    assert (page.image.name, page.image_state) == (chosen.name, "ready")
    page.refresh_from_db()
    assert (page.image.name, page.image_review) == (chosen.name, False)
    assert not exists(other.name)  # deleted once the choice committed
    assert exists(replaced)
    assert [picture.name for picture in pictures.earlier(page)] == [replaced]
    assert pictures.candidates(page) == []
    assert Generation.objects.get().status == Status.DONE


def test_the_other_candidates_are_deleted_only_once_the_choice_is_committed(page):
    chosen, other = in_review(page)
    page.refresh_from_db()
    with transaction.atomic():
        assert pictures.accept(page, chosen.pk)
        assert exists(other.name)  # a rollback would bring the review back: its files stay
    assert not exists(other.name)


def test_a_rolled_back_choice_deletes_nothing(page):
    chosen, other = in_review(page)
    page.refresh_from_db()

    def the_request_fails_after_the_choice():
        with transaction.atomic():
            pictures.accept(page, chosen.pk)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        the_request_fails_after_the_choice()
    assert exists(other.name)
    assert pictures.candidates(Page.objects.get(pk=page.pk)) == [chosen, other]


def test_accept_on_a_record_without_a_picture(page):
    chosen, _other = in_review(page)
    page.refresh_from_db()
    assert pictures.accept(page, str(chosen.pk))
    assert pictures.earlier(page) == []


@case(
    "concurrency",
    "Accept or restore sent from a page drawn before another editor's choice (or a new click)",
    "409 with the record as it is now; nothing published, nothing deleted.",
)
def test_accept_from_an_out_of_date_page_changes_nothing(page, make_page):
    chosen, other = in_review(page)
    page.refresh_from_db()
    stale = Page.objects.get(pk=page.pk)
    assert pictures.accept(page, other.pk)
    assert not pictures.accept(stale, chosen.pk)  # that choice was made: chosen is gone
    # A candidate of another record, or a record that is not in review (a new click took it).
    assert not pictures.accept(make_page(), other.pk)
    candidate, _ = in_review(page)
    page.refresh_from_db()
    claims.claim(page)
    assert not pictures.accept(page, candidate.pk)


def test_accept_does_nothing_when_the_live_picture_changed_meanwhile(page):
    chosen, _ = in_review(page)
    page.refresh_from_db()
    Page.objects.filter(pk=page.pk).update(image="page_images/uploaded.png")
    assert not pictures.accept(page, chosen.pk)
    assert Picture.objects.get(pk=chosen.pk).status == Picture.Status.CANDIDATE


def test_discard_drops_the_candidates_and_keeps_the_live_picture(page):
    with_new_picture(page)
    made = in_review(page)
    page.refresh_from_db()
    assert pictures.discard(page)
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert pictures.candidates(page) == []
    assert not any(exists(picture.name) for picture in made)
    assert Generation.objects.get().status == Status.CANCELLED
    assert not pictures.discard(page)  # nothing waits any more


def test_discard_from_an_out_of_date_page_keeps_the_newer_review(page):
    seen, _ = in_review(page)
    newer = in_review(Page.objects.get(pk=page.pk))  # another editor regenerated meanwhile
    assert not pictures.discard(page, seen.pk)
    assert pictures.candidates(page) == newer
    assert pictures.discard(page, newer[1].pk)
    assert pictures.candidates(page) == []


def test_drop_review_is_what_a_new_click_does_to_a_waiting_review(page):
    made = in_review(page)
    pictures.drop_review(page)
    assert pictures.candidates(page) == []
    assert not any(exists(picture.name) for picture in made)
    assert Generation.objects.get().status == Status.CANCELLED


def test_restore_brings_back_an_earlier_picture_and_keeps_the_one_it_replaces(page):
    with_new_picture(page)
    first = page.image.name
    chosen, _ = in_review(page)
    page.refresh_from_db()
    pictures.accept(page, chosen.pk)
    (earlier,) = pictures.earlier(page)
    Page.objects.filter(pk=page.pk).update(image_error="Refused")
    page.refresh_from_db()

    assert pictures.restore(page, earlier.pk)

    assert page.image.name == first
    page.refresh_from_db()
    assert (page.image.name, page.image_error) == (first, "")
    assert [picture.name for picture in pictures.earlier(page)] == [chosen.name]


def test_restore_from_an_out_of_date_page_changes_nothing(page):
    with_new_picture(page)
    first = kept(page, "page_images/first.png")
    stale = Page.objects.get(pk=page.pk)
    assert not pictures.restore(page, 0)  # no such picture (deleted by a prune meanwhile)
    assert pictures.restore(page, first.pk)
    assert not pictures.restore(page, first.pk)  # it shows it already
    second = kept(page, "page_images/second.png")
    assert not pictures.restore(stale, second.pk)  # drawn before the first restore
    claims.claim(page)
    page.refresh_from_db()
    assert not pictures.restore(page, second.pk)  # a job is making a new one


def test_restore_does_nothing_when_the_live_picture_changed_meanwhile(page):
    with_new_picture(page)
    earlier = kept(page, "page_images/first.png")
    Page.objects.filter(pk=page.pk).update(image="page_images/uploaded.png")
    assert not pictures.restore(page, earlier.pk)


def test_a_hand_uploaded_picture_becomes_restorable_when_a_job_replaces_it(page):
    Page.objects.filter(pk=page.pk).update(image="page_images/uploaded.png")
    page.refresh_from_db()
    with_new_picture(page)
    pictures.kept_live(page, page.image.name, "page_images/uploaded.png", None)
    assert [picture.name for picture in pictures.earlier(page)] == ["page_images/uploaded.png"]
    pictures.kept_live(page, page.image.name, "page_images/uploaded.png", None)
    assert Picture.objects.filter(name="page_images/uploaded.png").count() == 1


def test_nothing_is_tracked_for_a_record_that_had_no_picture(page):
    with_new_picture(page)
    pictures.kept_live(page, page.image.name, "", None)
    assert [picture.name for picture in Picture.objects.all()] == [page.image.name]


def test_prune_keeps_the_newest_and_never_the_one_shown(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "KEEP_PICTURES": 1}
    with_new_picture(page)
    names = []
    for _ in range(3):
        names.append(page.image.name)
        with_new_picture(page)
        pictures.kept_live(page, page.image.name, names[-1], None)
    assert [picture.name for picture in pictures.earlier(page)] == [names[-1]]
    assert [exists(name) for name in names] == [False, False, True]
    assert exists(page.image.name)


def test_keep_pictures_none_keeps_every_file(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "KEEP_PICTURES": None}
    with_new_picture(page)
    for _ in range(3):
        replaced = page.image.name
        with_new_picture(page)
        pictures.kept_live(page, page.image.name, replaced, None)
    assert pictures.prune(page) == []
    assert len(pictures.earlier(page)) == 3


def test_keep_pictures_zero_keeps_only_the_live_picture(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "KEEP_PICTURES": 0}
    with_new_picture(page)
    replaced = page.image.name
    with_new_picture(page)
    pictures.kept_live(page, page.image.name, replaced, None)
    assert pictures.earlier(page) == []
    assert not exists(replaced)


def test_pruned_files_are_deleted_only_once_the_change_is_committed(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "KEEP_PICTURES": 0}
    with_new_picture(page)
    replaced = page.image.name

    def a_request_that_fails_after_the_prune():
        with transaction.atomic():
            with_new_picture(page)
            pictures.kept_live(page, page.image.name, replaced, None)
            assert exists(replaced)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        a_request_that_fails_after_the_prune()
    assert exists(replaced)  # its row is back (rolled back), and so is its file


@case(
    "storage",
    "Two records show one file (a copied page) and one of them regenerates until it is pruned",
    "The other record keeps its picture: a file any record shows is never deleted.",
)
def test_prune_never_deletes_a_file_another_record_shows(page, make_page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "KEEP_PICTURES": 0}
    with_new_picture(page)
    shared = page.image.name
    copy = make_page(image=shared)  # "Save as new", a CMS's "copy page"
    with_new_picture(copy)
    pictures.kept_live(copy, copy.image.name, shared, None)
    assert exists(shared)
    page.refresh_from_db()
    assert page.image.name == shared
    assert pictures.earlier(copy) == []  # no longer this record's to restore


def test_delete_files_logs_and_never_raises(caplog):
    class Broken(FileSystemStorage):
        def delete(self, name):
            raise OSError("read-only file system")

    with caplog.at_level(logging.ERROR, logger="page_images.pictures"):
        pictures.delete_files(Broken(), ["a.png", "b.png"])
    assert [record.args for record in caplog.records] == [("a.png",), ("b.png",)]


def test_a_record_whose_image_field_is_no_file_field_is_a_type_error(page):
    page.image_field_name = "image_text"  # system check E010 reports this at start-up
    with pytest.raises(TypeError, match="image_text is not a FileField"):
        pictures.current_name(page)


def test_current_name_of_a_record_without_a_picture(page):
    assert pictures.current_name(page) == ""


def test_a_thumbnails_url(page):
    (candidate,) = in_review(page, 1)
    assert candidate.url(pictures.storage_of(page)) == f"/media/{candidate.name}"
