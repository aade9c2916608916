"""Previews while a picture is drawn (page_images.previews, through the real job): each is stored,
announced and shown to editors only, one file at a time, and none is left once the attempt ends,
whatever its outcome. A preview never fails the job."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.test import Client
from django.utils import timezone

from page_images import claims, previews, queueing, tasks
from page_images.backends.base import PreviewImage
from page_images.conf import app_settings
from page_images.exceptions import ContentPolicyError
from page_images.history import Generation, content_type_of
from page_images.references import sign_record
from page_images.testing import png_bytes
from tests.backends import PreviewingBackend

pytestmark = pytest.mark.django_db(transaction=True)

RED, BLUE = png_bytes(8, 8, (200, 0, 0)), png_bytes(8, 8, (0, 0, 200))
#: What the pages were told, in order: (the record's state, its job's preview) at each news.
NEWS: list[tuple[str, str]] = []
#: The first two news of every job: the click ("queued"), then the job's start ("started").
CLICKED_AND_STARTED = [("generating", ""), ("generating", "")]


def noted(instance):
    """The NOTIFIER of these tests: what a page following the record would re-fetch."""
    preview = (
        Generation.objects.filter(token=instance.image_claim_token)
        .values_list("preview", flat=True)
        .first()
        if instance.image_claim_token
        else None
    )
    NEWS.append((instance.image_state, preview or ""))


@pytest.fixture(autouse=True)
def previewing(settings):
    settings.PAGE_IMAGES = {
        "BACKEND": "tests.backends.PreviewingBackend",
        "SIZE": "32x32",
        "PREVIEWS": 2,
        "MAX_RETRIES": 0,
        "NOTIFIER": "tests.test_previews.noted",
    }
    PreviewingBackend.reset()
    NEWS.clear()
    return PreviewingBackend


def click(page):
    """The click's claim and history row, as the trigger view makes them."""
    return queueing.request_generation(page)


def run(page, token):
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    return tasks.generate_image.apply(args=(job.model_dump(mode="json"),))


def seen_by(user, page):
    client = Client()
    client.force_login(user)
    return client.get("/page-images/fragment/", {"ref": sign_record(page)}).content.decode()


def keeper_of(page, token):
    """The job's on_preview, as the job makes it (Celery's soft limit its time limit)."""
    return previews.PreviewKeeper(
        page, token, announce=claims.notify, time_limit=SoftTimeLimitExceeded
    )


def running_keeper(page):
    """The on_preview of a clicked job whose attempt has started."""
    token = click(page)
    page.refresh_from_db()
    Generation.objects.of(page).update(status=Generation.Status.RUNNING)
    return keeper_of(page, token)


def preview_files(settings):
    return sorted(p.name for p in Path(settings.MEDIA_ROOT).rglob("*preview*"))


def test_each_preview_is_stored_announced_and_shown_to_editors_until_the_picture_lands(
    page, editor, reader, settings
):
    shown = []

    def look():
        shown.append((seen_by(editor, page), seen_by(reader, page), preview_files(settings)))

    PreviewingBackend.reset(previews=(RED, look, BLUE, look))
    run(page, click(page))

    (first, first_visitor, first_files), (second, _, second_files) = shown
    assert len(first_files) == 1
    assert "preview-0" in first_files[0]
    assert second_files == [first_files[0].replace("preview-0", "preview-1")]  # the first gone
    for markup, name in ((first, first_files[0]), (second, second_files[0])):
        assert 'data-state="generating"' in markup
        assert '<img class="page-images-preview" src="/media/' in markup
        assert name in markup
        assert 'alt="Preview: a rough, blurred version of the image being generated"' in markup
        assert '<span class="page-images-preview-label" aria-hidden="true">Preview</span>' in markup
        assert "page-images-previewing" in markup
    assert "preview" not in first_visitor  # a visitor never sees a job, nor its preview
    assert PreviewingBackend.partials_asked == [2]
    # News at the click and when the job starts, for each preview, then for the picture; none
    # names a preview after.
    assert [state for state, _ in NEWS] == ["generating"] * 4 + ["ready"]
    assert [bool(preview) for _, preview in NEWS] == [False, False, True, True, False]
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert Generation.objects.of(page).get().preview == ""
    assert preview_files(settings) == []
    assert "preview" not in seen_by(editor, page)


def test_previews_are_asked_for_only_when_the_setting_says(page, settings, configure):
    configure(PREVIEWS=0)
    PreviewingBackend.reset(previews=(RED,))
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert PreviewingBackend.partials_asked == []
    assert [*CLICKED_AND_STARTED, ("ready", "")] == NEWS


def test_previews_are_off_by_default():
    from page_images.conf import DEFAULTS

    assert DEFAULTS["PREVIEWS"] == 0  # OpenAI bills each partial: a site asks for them


def test_candidates_to_choose_from_are_drawn_without_previews(page, configure):
    configure(VARIANTS=2)
    PreviewingBackend.reset(previews=(RED,))
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "review"
    assert PreviewingBackend.partials_asked == []


def test_a_preview_that_is_not_a_picture_is_skipped_and_the_next_shown(page, settings, caplog):
    PreviewingBackend.reset(previews=(b"<svg onload=alert(1)>", BLUE))
    with caplog.at_level(logging.WARNING, logger="page_images.previews"):
        run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert f"preview 0 of testapp.page:{page.pk} skipped" in caplog.text
    assert [bool(preview) for _, preview in NEWS] == [False, False, True, False]
    assert preview_files(settings) == []


def test_a_storage_that_refuses_a_preview_does_not_fail_the_job(page, settings, monkeypatch):
    real_save = FileSystemStorage.save

    def save(self, name, content, max_length=None):
        if "preview" in name:
            raise OSError(28, "No space left on device")
        return real_save(self, name, content, max_length=max_length)

    monkeypatch.setattr(FileSystemStorage, "save", save)
    PreviewingBackend.reset(previews=(RED, BLUE))
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert [*CLICKED_AND_STARTED, ("ready", "")] == NEWS


@pytest.mark.parametrize(
    "failure",
    [ContentPolicyError(detail="refused after its partials"), RuntimeError("worker bug")],
    ids=["provider", "unexpected"],
)
def test_a_job_that_fails_after_a_preview_leaves_the_error_and_no_preview(page, settings, failure):
    PreviewingBackend.reset(failure, previews=(RED,))
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "error"
    assert NEWS[-1] == ("error", "")
    assert Generation.objects.of(page).get().preview == ""
    assert preview_files(settings) == []


def test_a_job_cancelled_while_drawing_shows_no_further_preview(page, editor, settings):
    PreviewingBackend.reset(previews=(RED, lambda: claims.cancel(page), BLUE))
    run(page, click(page))
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == ("empty", "")
    row = Generation.objects.of(page).get()
    assert (row.status, row.preview) == ("cancelled", "")
    # The click, the job's start, the preview, the cancel: nothing after.
    assert [state for state, _ in NEWS] == ["generating"] * 3 + ["empty"]
    assert preview_files(settings) == []


def _left_behind(page, settings):
    """A preview a killed worker's job left: its row ended, its file still there."""
    storage = FileSystemStorage(settings.MEDIA_ROOT)
    name = storage.save("page_images/tests/page/dead-preview-0.png", ContentFile(RED))
    Generation.objects.create(
        content_type=content_type_of(page),
        object_id=str(page.pk),
        token=uuid.uuid4(),
        prompt="p",
        status=Generation.Status.FAILED,
        preview=name,
    )
    return name


def test_the_next_job_deletes_what_a_killed_workers_job_left(page, settings):
    _left_behind(page, settings)
    run(page, click(page))
    assert preview_files(settings) == []
    assert not Generation.objects.of(page).exclude(preview="").exists()


def test_release_stale_claims_deletes_a_dead_jobs_preview(page, settings):
    click(page)
    run_at = timezone.now() - timedelta(seconds=app_settings.CLAIM_TIMEOUT + 1)
    row = Generation.objects.of(page).get()
    storage = FileSystemStorage(settings.MEDIA_ROOT)
    name = storage.save("page_images/tests/page/dead-preview-0.png", ContentFile(RED))
    Generation.objects.filter(pk=row.pk).update(status=Generation.Status.RUNNING, preview=name)
    type(page).objects.filter(pk=page.pk).update(image_started_at=run_at)
    assert claims.release_stale_claims() == 1
    row.refresh_from_db()
    assert (row.status, row.preview) == ("failed", "")
    assert preview_files(settings) == []


def test_a_soft_time_limit_inside_a_preview_ends_the_job(page, settings, monkeypatch):
    def late(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    keeper = running_keeper(page)
    keeper(PreviewImage(content=RED, index=0, content_type="image/png"))
    assert keeper.shown == 1
    monkeypatch.setattr(previews, "validate_image", late)
    with pytest.raises(SoftTimeLimitExceeded):
        keeper(PreviewImage(content=BLUE, index=1, content_type="image/png"))
    keeper.close()
    assert preview_files(settings) == []


def test_a_preview_for_a_job_without_a_history_row_is_not_kept(page, settings):
    keeper = keeper_of(page, claims.claim(page))  # claim() and enqueue_generation(): no history
    keeper(PreviewImage(content=RED, index=0, content_type="image/png"))
    keeper(PreviewImage(content=BLUE, index=1, content_type="image/png"))
    assert (keeper.shown, keeper.current) == (0, "")
    assert preview_files(settings) == []
    assert NEWS == []


def test_a_preview_file_that_cannot_be_deleted_is_logged(page, settings, monkeypatch, caplog):
    def refuse(self, name):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(FileSystemStorage, "delete", refuse)
    with caplog.at_level(logging.WARNING, logger="page_images.previews"):
        previews.discard(FileSystemStorage(settings.MEDIA_ROOT), "x-preview-0.png")
    assert "could not delete the preview x-preview-0.png" in caplog.text


def test_a_history_that_cannot_forget_the_preview_still_deletes_its_file(
    page, settings, monkeypatch, caplog
):
    keeper = running_keeper(page)
    keeper(PreviewImage(content=RED, index=0, content_type="image/png"))
    assert preview_files(settings)

    class Broken:
        def filter(self, **kwargs):
            raise RuntimeError("database gone")

    monkeypatch.setattr(keeper, "_rows", lambda: Broken())
    with caplog.at_level(logging.WARNING, logger="page_images.previews"):
        keeper.close()
    assert "could not forget the preview" in caplog.text
    assert preview_files(settings) == []


def test_a_picture_field_that_is_not_a_file_field_is_refused(page):
    page.image_field_name = "image_text"  # system check E010 reports this at start-up
    with pytest.raises(TypeError, match="image_text is not a FileField"):
        previews.image_field(page)


def test_litellms_streamed_partials_reach_the_page_before_the_picture(
    page, settings, provider, litellm_settings
):
    # The real backend over real HTTP: the fake provider streams OpenAI's partial_image events.
    settings.PAGE_IMAGES = {
        **litellm_settings,
        "PREVIEWS": 2,
        "NOTIFIER": "tests.test_previews.noted",
    }
    provider.latency, provider.partial_schedule = 0.4, (0.3, 0.6)
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert provider.requests[0].body["partial_images"] == 2
    assert provider.requests[0].body["stream"] is True
    news = [preview for _, preview in NEWS]
    assert news[:2] == ["", ""]  # the click, the job's start
    assert "-preview-0.png" in news[2]
    assert "-preview-1.png" in news[3]
    assert news[4:] == [""]
    assert preview_files(settings) == []
