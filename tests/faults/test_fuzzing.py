"""Property-based fuzzing (Hypothesis) of the web inputs and of the image pipeline.

Why: the hand-written tests (test_views.py, test_events_stream.py, test_tasks.py) pin the cases
someone thought of; these let Hypothesis try the ones nobody did. Each test states a property that
must hold for *any* input:

* the trigger view (POST): never a 500 nor an escaping exception; a job only for exactly a genuine
  reference to a record the user may change, with a valid CSRF token; no file; no off-site redirect;
* the fragment view and the event stream (GET): never a 500;
* the whole job fed random and mutated provider bytes: the record never stays generating; it ends
  "ready" with a picture Pillow opens, or "error" with a readable message and no file at all.

How: a test takes its fixtures (database rows, users, the published-messages list) once, and every
example first puts the world back: records released, cache (rate limit) cleared, media folder
removed, published list emptied. Whether a reference is genuine is decided here from what the test
built (the exact token the app signed, or a reference re-signed with the site's key whose label
and pk name the record), never by asking the code under test. The runs are derandomized so that a
failure reproduces; the counts keep the whole file well under a minute on two cores. The intake's
own fuzzing of ``validate_image`` alone is in tests/test_intake.py.

Three bodies are left out of the trigger fuzzing because Django's own CSRF check fails on them
with a 500 before any view runs; see ``django_csrf_check_fails``, and the strict xfail test that
tells when Django fixes them.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import BadRequest
from django.test import AsyncClient, Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils.crypto import get_random_string
from django.utils.http import parse_header_parameters
from hypothesis import HealthCheck, assume, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from page_images import claims, tasks
from page_images.backends.base import BaseBackend, GeneratedImage
from page_images.exceptions import InvalidImageError
from page_images.intake import validate_image
from page_images.live.hub import get_hub, reset_hubs
from page_images.live.stream import MAX_REFERENCES
from page_images.live.tokens import sign_references, unsign_references
from page_images.references import sign_record
from page_images.signer import SALT
from page_images.testing import png_bytes
from tests.reliability import case
from tests.support.fuzz import examples
from tests.testapp.models import Note, Page, Poster

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from django.db.models import Model
    from django.http import HttpResponse
    from hypothesis.strategies import DataObject, SearchStrategy
    from pytest_django.fixtures import SettingsWrapper

    from page_images.backends.base import ImageRequest
    from page_images.models import ImageGeneratingMixin

TRIGGER = "/page-images/generate/"
FRAGMENT = "/page-images/fragment/"
EVENTS = "/page-images/events/"
STREAM_SALT = "page_images.stream"


def fuzz_settings(max_examples: int) -> hypothesis_settings:
    """Derandomized, so a failure reproduces; ``max_examples`` is the ci profile's count."""
    return hypothesis_settings(
        max_examples=examples(max_examples),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- Text, URLs and references ------------------------------------------------------------------

#: Any character the test client can encode (lone surrogates cannot travel in UTF-8).
ANY_CHAR = st.characters(exclude_categories=("Cs",))


def text(max_size: int = 40) -> SearchStrategy[str]:
    return st.text(alphabet=ANY_CHAR, max_size=max_size)


#: Form field names that cannot clash with ``ref``/``next``/the CSRF field or break the encoding.
FIELD_NAMES = st.text(
    alphabet=st.one_of(st.characters(categories=("L", "N")), st.sampled_from("_-.[] ")),
    min_size=1,
    max_size=12,
).filter(lambda name: name.strip() not in {"ref", "next", "csrfmiddlewaretoken"})

HOSTILE_URLS = [
    "/stories/",
    "/stories/?page=2#top",
    "https://evil.example/",
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    " //evil.example",
    "\t//evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "\x00javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "mailto:someone@evil.example",
    "ftp://evil.example/",
    "http://testserver/stories/",
    "https://testserver/stories/",
    "//testserver/stories/",
    "http://testserver@evil.example/",
    "http://evil.example\\@testserver/",
    "http://evil.example#@testserver",
    "http:///evil.example",
    "https:evil.example",
    "http://[::1/",
    "/%2F%2Fevil.example",
    "/stories/?next=//evil.example",
    "http://tests\u0435rver/",
    "/" + "a" * 3000,
]
URLS = st.one_of(st.sampled_from(HOSTILE_URLS), text(100))

#: Labels a re-signed reference may carry: the two mixin models (in spellings get_model accepts),
#: models that do not use the mixin, and labels that name nothing.
LABELS = [
    "testapp.page",
    "testapp.Page",
    "testapp.PAGE",
    "testapp.poster",
    "TESTAPP.page",
    "testapp.note",
    "testapp.story",
    "auth.user",
    "auth.permission",
    "sessions.session",
    "contenttypes.contenttype",
    "admin.logentry",
    "page_images.page",
    "testapp",
    "page",
    "",
    ".",
    "testapp.page.page",
    "testapp.nothing",
]

JUNK_REFERENCES = [
    "",
    " ",
    ":",
    "::",
    "testapp.page:1",
    "None",
    "null",
    "\x00",
    "%00",
    "a" * 300,
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
]


def _signed_elsewhere(name: str, value: str) -> str:
    """``value`` signed as something other than a record reference of this site."""
    signers: dict[str, Callable[[str], str]] = {
        "stream salt": signing.Signer(salt=STREAM_SALT).sign,
        "no salt": signing.Signer().sign,
        "other salt": signing.Signer(salt="other").sign,
        "other key": signing.Signer(key="not-the-site-key", salt=SALT).sign,
        "sha1": signing.Signer(salt=SALT, algorithm="sha1").sign,
        "timestamped": signing.TimestampSigner(salt=SALT).sign,
        "dumps": lambda v: signing.dumps(v, salt=SALT),
        "stream token": lambda v: sign_references([v]),
    }
    return signers[name](value)


OTHER_SIGNERS = [
    "stream salt",
    "no salt",
    "other salt",
    "other key",
    "sha1",
    "timestamped",
    "dumps",
    "stream token",
]


def _same_pk(text: str, pk: Any) -> bool:
    # Integer primary keys: the database lookup reads the text as Python's int() does.
    try:
        return int(text) == pk
    except ValueError:
        return False


def named_record(
    reference: str, records: Sequence[ImageGeneratingMixin]
) -> ImageGeneratingMixin | None:
    """Which of ``records`` a genuinely signed ``"<app_label>.<model>:<pk>"`` names, if any.

    The documented rule: the label is everything before the last colon, its model name is read
    case-insensitively (as ``apps.get_model`` does), and only models with the mixin count.
    """
    label, _, pk = reference.rpartition(":")
    app_label, _, model_name = label.partition(".")
    for record in records:
        meta = record._meta
        if (app_label, model_name.lower()) == (meta.app_label, meta.model_name) and _same_pk(
            pk, record.pk
        ):
            return record
    return None


Ref = tuple[str, "ImageGeneratingMixin | None"]
Edit = tuple[str, int, str]

EDITS: SearchStrategy[Edit] = st.tuples(
    st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 10_000), ANY_CHAR
)


def _mutate(token: str, edits: Sequence[Edit]) -> str:
    for operation, where, char in edits:
        if operation == "insert":
            at = where % (len(token) + 1)
            token = token[:at] + char + token[at:]
        elif token:
            at = where % len(token)
            token = token[:at] + ("" if operation == "delete" else char) + token[at + 1 :]
    return token


def references(
    records: Sequence[ImageGeneratingMixin], others: Sequence[Model]
) -> SearchStrategy[Ref]:
    """A ``ref`` value, paired with the record it genuinely names (None: it names none).

    ``others`` lend their primary keys, so that a reference to an existing row of a model without
    the mixin (a note, a user) is tried, not only references to rows that do not exist.
    """
    genuine: list[Ref] = [(sign_record(record), record) for record in records]

    def mutated(chosen: Ref, edits: list[Edit]) -> Ref:
        token, record = chosen
        changed = _mutate(token, edits)
        # A signature covers the whole value: any change at all makes the token worthless.
        return changed, record if changed == token else None

    def spliced(chosen: Ref, pk: str) -> Ref:
        # Another pk in place of the signed one, the signature kept.
        token, record = chosen
        value, _, signature = token.rpartition(":")
        label, _, old_pk = value.rpartition(":")
        return f"{label}:{pk}:{signature}", record if pk == old_pk else None

    def resigned(label: str, pk: str) -> Ref:
        # Signed with the site's key: only the label and the pk decide.
        reference = f"{label}:{pk}"
        return signing.Signer(salt=SALT).sign(reference), named_record(reference, records)

    def elsewhere(name: str, record: ImageGeneratingMixin) -> Ref:
        return _signed_elsewhere(name, record.image_reference), None

    known_pks = [str(row.pk) for row in (*records, *others)]
    pk_variants = [
        variant
        for record in records
        for variant in (
            f"0{record.pk}",
            f" {record.pk} ",
            f"+{record.pk}",
            f"-{record.pk}",
            f"{record.pk}.0",
            f"{record.pk}\x00",
            str(record.pk + 1),
        )
    ]
    pks = st.one_of(
        st.sampled_from(known_pks),
        st.sampled_from(pk_variants),
        st.sampled_from(["", "0", "-1", "9" * 30, "1e3", "nan", "None", "\u0661"]),
        st.integers().map(str),
        text(20),
    )
    return st.one_of(
        st.sampled_from(genuine),
        st.builds(mutated, st.sampled_from(genuine), st.lists(EDITS, min_size=1, max_size=4)),
        st.builds(spliced, st.sampled_from(genuine), pks),
        st.builds(resigned, st.one_of(st.sampled_from(LABELS), text(20)), pks),
        st.builds(elsewhere, st.sampled_from(OTHER_SIGNERS), st.sampled_from(records)),
        st.one_of(st.sampled_from(JUNK_REFERENCES), text(200)).map(lambda junk: (junk, None)),
    )


# --- What every answer must satisfy ---------------------------------------------------------------

_C0_AND_SPACE = "".join(map(chr, range(0x21)))


def stays_on_site(location: str) -> bool:
    """Whether a browser following ``location`` from http://testserver/ stays on testserver.

    Read the way browsers read it: tabs and newlines dropped anywhere, leading controls and
    spaces stripped, a backslash taken for a slash.
    """
    cleaned = re.sub(r"[\t\n\r]", "", location).lstrip(_C0_AND_SPACE).replace("\\", "/")
    try:
        parts = urlsplit(cleaned)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme:
        return parts.scheme.lower() in ("http", "https") and host == "testserver"
    if cleaned.startswith("//"):  # scheme-relative: the host is whatever follows
        return host == "testserver"
    return True


def files_under(root: str) -> list[Path]:
    return sorted(Path(folder, name) for folder, _, names in os.walk(root) for name in names)


def check_answer(response: HttpResponse) -> None:
    """Never a server error; a refusal says something; a redirect stays on the site."""
    assert response.status_code < 500, response.content[:500]
    if 400 <= response.status_code < 500:
        assert response.content.strip(), "a refusal with an empty body"
    if response.status_code in (301, 302, 303, 307, 308):
        assert stays_on_site(response["Location"]), response["Location"]


# --- The trigger view ---------------------------------------------------------------------------

USERS = ["anonymous", "editor", "reader"]
HX_VALUES = st.one_of(
    st.just("true"), st.none(), st.sampled_from(["false", "True", "1", " true", ""]), text(10)
)
#: How the CSRF check is met, or not. "not enforced" is the test client's default: it lets the
#: examples reach the view itself; the property treats it as a passed check.
CSRF_MODES = [
    "not enforced",
    "valid field",
    "valid header",
    "missing",
    "cookie only",
    "wrong field",
    "field without cookie",
]
CSRF_PASSES = {"not enforced", "valid field", "valid header"}


@pytest.fixture
def world(
    settings: SettingsWrapper, editor: Any, reader: Any, page: Page, poster: Poster
) -> dict[str, Any]:
    note = Note.objects.create(text="not a mixin model")
    return {
        "users": {"anonymous": None, "editor": editor, "reader": reader},
        "records": [page, poster],
        "others": [note, page.story, editor],
        "media": settings.MEDIA_ROOT,
    }


def fresh_start(world: dict[str, Any], published: list[dict[str, Any]]) -> None:
    """Each example starts from the same state: nothing claimed, counted, stored or published."""
    for record in world["records"]:
        type(record)._base_manager.filter(pk=record.pk).update(
            image_generating=False, image_claim_token=None, image_claimed_at=None, image_error=""
        )
    cache.clear()
    shutil.rmtree(world["media"], ignore_errors=True)
    published.clear()


def client_for(user: Any, csrf: str, fields: dict[str, Any], headers: dict[str, str]) -> Client:
    """A client logged in as ``user`` whose request will meet the CSRF check as ``csrf`` says."""
    client = Client(enforce_csrf_checks=csrf != "not enforced")
    if user is not None:
        client.force_login(user)
    secret = get_random_string(32)
    if csrf in ("valid field", "valid header", "cookie only", "wrong field"):
        client.cookies[django_settings.CSRF_COOKIE_NAME] = secret
    if csrf in ("valid field", "field without cookie"):
        fields["csrfmiddlewaretoken"] = secret
    elif csrf == "wrong field":
        fields["csrfmiddlewaretoken"] = get_random_string(32)
    elif csrf == "valid header":
        headers["HTTP_X_CSRFTOKEN"] = secret
    return client


def assert_trigger_outcome(
    response: HttpResponse,
    published: list[dict[str, Any]],
    world: dict[str, Any],
    *,
    may_publish: bool,
) -> None:
    check_answer(response)
    assert len(published) <= 1
    if published:
        assert may_publish, f"a job was queued for a refused request ({response.status_code})"
        assert published[0]["task"] == tasks.WORKFLOW
    assert files_under(world["media"]) == []


@case(
    "fuzzing",
    "Trigger POST form: random and mutated signed references (characters flipped, inserted or "
    "deleted; another pk spliced in; re-signed for other models, other pks, another salt or key), "
    "random extra fields, hostile `next` and Referer, anonymous/editor/reader, with and without "
    "HX-Request and a valid CSRF token",
    "A 4xx with a message, or a redirect back that stays on the site; never a 500. A job only for "
    "a genuine reference to a record the user may change, with a valid CSRF token; no file",
)
@pytest.mark.django_db(transaction=True)
@fuzz_settings(max_examples=400)
@given(data=st.data())
def test_trigger_form_posts(
    data: DataObject, world: dict[str, Any], published: list[dict[str, Any]]
) -> None:
    fresh_start(world, published)
    # Half the examples are an editor's genuine click with everything around it hostile (next,
    # Referer, extra fields, headers), so that the path that queues a job is fuzzed too.
    if data.draw(st.booleans(), label="genuine click"):
        record = data.draw(st.sampled_from(world["records"]), label="record")
        ref_values: list[Ref] = [(sign_record(record), record)]
        user_name = "editor"
        csrf = data.draw(st.sampled_from(sorted(CSRF_PASSES)), label="csrf")
    else:
        ref_values = data.draw(
            st.lists(references(world["records"], world["others"]), max_size=2), label="refs"
        )
        user_name = data.draw(st.sampled_from(USERS), label="user")
        csrf = data.draw(st.sampled_from(CSRF_MODES), label="csrf")
    extra = data.draw(st.dictionaries(FIELD_NAMES, text(40), max_size=4), label="extra fields")
    padding = data.draw(st.sampled_from([0, 0, 0, 5000]), label="padding")
    next_url = data.draw(st.none() | URLS, label="next")
    referer = data.draw(st.none() | URLS, label="referer")
    hx = data.draw(HX_VALUES, label="HX-Request")
    multipart = data.draw(st.booleans(), label="multipart")

    fields: dict[str, Any] = dict(extra)
    if ref_values:
        fields["ref"] = [token for token, _ in ref_values]
    if next_url is not None:
        fields["next"] = next_url
    if padding:
        fields["padding"] = "x" * padding
    headers: dict[str, str] = {}
    if hx is not None:
        headers["HTTP_HX_REQUEST"] = hx
    if referer is not None:
        headers["HTTP_REFERER"] = referer
    client = client_for(world["users"][user_name], csrf, fields, headers)
    if multipart:
        body, content_type = encode_multipart(BOUNDARY, fields), MULTIPART_CONTENT
    else:
        body = urlencode(fields, doseq=True).encode()
        content_type = "application/x-www-form-urlencoded"

    response = client.generic("POST", TRIGGER, body, content_type=content_type, **headers)

    event(f"status {response.status_code}" + (", job queued" if published else ""))
    target = ref_values[-1][1] if ref_values else None  # the form's last ``ref`` is the one read
    expected = (
        target is not None and user_name == "editor" and csrf in CSRF_PASSES and len(body) <= 4096
    )
    assert_trigger_outcome(response, published, world, may_publish=expected)
    assert bool(published) == expected, (response.status_code, response.content[:300])
    if expected:
        assert response.status_code == (200 if hx == "true" else 302)


CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=rot13",
    "application/x-www-form-urlencoded; charset=base64",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    MULTIPART_CONTENT,
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=" + "x" * 300,
    f"multipart/form-data; boundary={BOUNDARY}; charset=rot13",
    "multipart/mixed; boundary=x",
    "text/plain",
    "application/json",
    "application/octet-stream",
    "",
]
CONTENT_LENGTHS = [
    "abc",
    "",
    "-1",
    "-99999999",
    "0",
    "1e9",
    "0x10",
    " 12",
    "1_0",
    "\u0663",
    "4097",
    str(10**12),
    "9" * 40,
]


def _known_charset(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False  # Django ignores a charset it does not know
    return True


def _text_encoding(charset: str) -> bool:
    try:
        b"a".decode(charset, "replace")
    except LookupError:  # a codec such as rot13 or base64, but not a text encoding
        return False
    return True


def django_csrf_check_fails(content_type: str, declared_length: str | None) -> bool:
    """Bodies on which Django's CSRF check itself fails with a 500, before any view runs.

    Django's bugs, not ours (5.2 and 6.1 alike). With a CSRF cookie, CsrfViewMiddleware reads the
    form and lets through what the parsers raise for: an urlencoded body declaring a charset other
    than UTF-8 (a BadRequest, raised again by the 400 handler's own CSRF check), a multipart body
    whose charset is a codec but no text encoding ("rot13": LookupError), and an urlencoded body
    whose Content-Length is not a number (ValueError; real servers refuse that header before
    Django). Without a cookie the check refuses before reading the form, and the view itself
    answers all three with a 400 (test_views.py). test_django_csrf_check_on_unparseable_forms
    pins Django's side, so that this exclusion goes when Django fixes it.
    """
    kind, params = parse_header_parameters(content_type)
    charset = params.get("charset")
    if kind == "application/x-www-form-urlencoded":
        if charset and _known_charset(charset) and charset.lower() != "utf-8":
            return True
        try:
            int(declared_length or 0)
        except ValueError:
            return True
    if kind == "multipart/form-data" and charset and _known_charset(charset):
        return not _text_encoding(charset)
    return False


@case(
    "fuzzing",
    "Trigger POST body: random bytes and mutated forms (urlencoded and multipart, non-UTF-8) "
    "under random content types and charsets, with lying, huge, negative or non-numeric "
    "Content-Length",
    "A 4xx, never a 500 or an escaping exception; no job unless the body still carries a genuine "
    "reference from a user who may change the record, with a valid CSRF token; no file. (Three "
    "bodies on which Django's own CSRF check fails first are left out, pinned by a strict xfail)",
)
@pytest.mark.django_db(transaction=True)
@fuzz_settings(max_examples=300)
@given(data=st.data())
def test_trigger_raw_bodies(
    data: DataObject, world: dict[str, Any], published: list[dict[str, Any]]
) -> None:
    fresh_start(world, published)
    record = data.draw(st.sampled_from(world["records"]), label="record")
    user_name = data.draw(st.sampled_from(USERS), label="user")
    csrf = data.draw(st.sampled_from(["not enforced", "valid field", "missing"]), label="csrf")
    secret = get_random_string(32)
    ref = sign_record(record)
    form = {"ref": ref, "next": "/stories/", "csrfmiddlewaretoken": secret}
    templates = [urlencode(form).encode(), encode_multipart(BOUNDARY, form)]
    body = data.draw(
        st.one_of(
            st.binary(max_size=600),
            st.builds(
                lambda template, edits, cut: bytes(_mutate_bytes(template, edits))[:cut],
                st.sampled_from(templates),
                st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
                st.integers(0, 1000),
            ),
            st.builds(bytes.__add__, st.sampled_from(templates), st.binary(max_size=200)),
        ),
        label="body",
    )
    content_type = data.draw(st.one_of(st.sampled_from(CONTENT_TYPES), text(60)), label="type")
    declared = data.draw(
        st.one_of(st.none(), st.sampled_from(CONTENT_LENGTHS), st.integers(-10, 10**15).map(str)),
        label="Content-Length",
    )
    hx = data.draw(st.sampled_from([None, "true"]), label="HX-Request")
    assume(not (csrf == "valid field" and django_csrf_check_fails(content_type, declared)))

    client = Client(enforce_csrf_checks=csrf != "not enforced")
    if user_name != "anonymous":
        client.force_login(world["users"][user_name])
    if csrf == "valid field":
        client.cookies[django_settings.CSRF_COOKIE_NAME] = secret
    extra: dict[str, Any] = {
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)) if declared is None else declared,
        "wsgi.input": ServerStream(body),
    }
    if hx is not None:
        extra["HTTP_HX_REQUEST"] = hx

    response = client.generic("POST", TRIGGER, b"", **extra)

    event(f"status {response.status_code}" + (", job queued" if published else ""))
    carries_ref = ref.encode() in body or quote(ref, safe="").encode() in body
    may_publish = user_name == "editor" and csrf in CSRF_PASSES and carries_ref
    assert_trigger_outcome(response, published, world, may_publish=may_publish)


@case(
    "requests",
    "Bodies Django's own CSRF check cannot parse (urlencoded with a non-UTF-8 charset, multipart "
    "with charset=rot13) when a CSRF cookie is sent",
    "A 500 from Django's CsrfViewMiddleware before our view runs: a Django bug (5.2 to 6.1), "
    "pinned by a strict xfail so we learn when it is fixed.",
)
@pytest.mark.parametrize(
    ("content_type", "declared_length"),
    [
        ("application/x-www-form-urlencoded; charset=latin-1", None),
        (f"multipart/form-data; boundary={BOUNDARY}; charset=rot13", None),
        # A non-numeric Content-Length is a 500 in Django's CSRF check too on Python 3.11, not on
        # 3.13: the fuzzer leaves it out, but it cannot be pinned by a strict xfail.
    ],
)
@pytest.mark.xfail(
    strict=True,
    raises=(BadRequest, LookupError, ValueError),
    reason="Django (5.2 to 6.1): CsrfViewMiddleware lets the form parsers' errors escape, "
    "a 500 before any view runs",
)
@pytest.mark.django_db
def test_django_csrf_check_on_unparseable_forms(
    editor: Any, content_type: str, declared_length: str | None
) -> None:
    assert django_csrf_check_fails(content_type, declared_length)
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = "a" * 32
    form = {"ref": "x", "csrfmiddlewaretoken": "a" * 32}
    if content_type.startswith("multipart/"):
        body = encode_multipart(BOUNDARY, form)
    else:
        body = urlencode(form).encode()
    extra = {} if declared_length is None else {"CONTENT_LENGTH": declared_length}
    response = client.generic("POST", TRIGGER, body, content_type=content_type, **extra)
    assert response.status_code < 500


class ServerStream:
    """``wsgi.input`` as a server hands it over: reads end with the body, whatever was declared.

    The test client's own stream asserts instead, and io.BytesIO cannot take the sizes a huge
    declared length asks for (OverflowError); a server's reader clamps them.
    """

    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)
        self._size = len(body)

    def _clamp(self, size: int | None) -> int:
        return self._size if size is None or size < 0 else min(size, self._size)

    def read(self, size: int | None = -1, /) -> bytes:
        return self._body.read(self._clamp(size))

    def readline(self, size: int | None = -1, /) -> bytes:
        return self._body.readline(self._clamp(size))


def _mutate_bytes(template: bytes, edits: Sequence[tuple[int, int]]) -> bytearray:
    content = bytearray(template)
    for where, value in edits:
        content[where % len(content)] = value
    return content


# --- The fragment view --------------------------------------------------------------------------


@case(
    "fuzzing",
    "Fragment GET: random and mutated `ref` values (as for the trigger), repeated or missing, "
    "random extra query parameters, any user",
    "The container for a genuine reference; otherwise a 400 or 404 with a message; never a 500",
)
@pytest.mark.django_db
@fuzz_settings(max_examples=300)
@given(data=st.data())
def test_fragment_gets(data: DataObject, world: dict[str, Any]) -> None:
    ref_values = data.draw(
        st.lists(references(world["records"], world["others"]), max_size=2), label="refs"
    )
    user = world["users"][data.draw(st.sampled_from(USERS), label="user")]
    extra = data.draw(st.dictionaries(FIELD_NAMES, text(40), max_size=3), label="extra")
    hx = data.draw(HX_VALUES, label="HX-Request")

    client = Client()
    if user is not None:
        client.force_login(user)
    query: dict[str, Any] = {**extra, "ref": [token for token, _ in ref_values]}
    headers = {} if hx is None else {"HTTP_HX_REQUEST": hx}
    response = client.get(FRAGMENT, query, **headers)

    check_answer(response)
    event(f"status {response.status_code}")
    target = ref_values[-1][1] if ref_values else None
    if target is not None:
        assert response.status_code == 200
        assert "data-state=" in response.content.decode()
    else:
        assert response.status_code in (400, 404)


# --- The event stream ---------------------------------------------------------------------------


def stream_tokens() -> SearchStrategy[str]:
    """``refs`` tokens: genuine, mutated, signed for something else, or validly signed nonsense."""
    reference_lists = st.lists(text(30), max_size=5)
    genuine = st.builds(sign_references, reference_lists)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text(20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text(5), inner, max_size=4),
        max_leaves=10,
    )
    return st.one_of(
        genuine,
        st.builds(_mutate, genuine, st.lists(EDITS, min_size=1, max_size=4)),
        # The right key and salt around a payload sign_references never makes.
        json_values.map(lambda value: signing.dumps(value, salt=STREAM_SALT)),
        json_values.map(lambda value: signing.dumps(value, salt=STREAM_SALT, compress=True)),
        text(60).map(signing.TimestampSigner(salt=STREAM_SALT).sign),
        text(60).map(lambda value: signing.TimestampSigner(salt=STREAM_SALT).sign("." + value)),
        # Right payloads, wrong signer.
        reference_lists.map(lambda refs: signing.dumps(refs, salt=SALT)),
        reference_lists.map(lambda refs: signing.dumps(refs, salt=STREAM_SALT, key="other-key")),
        text(40).map(signing.Signer(salt=SALT).sign),
        text(200),
    )


@case(
    "fuzzing",
    "Event-stream `refs` token: random, mutated, signed with another salt or key, or signed with "
    "the site's key around a payload that is not a list of references",
    "Refused as a bad signature (the stream answers 400), never another exception",
)
@fuzz_settings(max_examples=500)
@given(token=stream_tokens())
def test_unsign_references_returns_references_or_refuses(token: str) -> None:
    try:
        value = unsign_references(token)
    except signing.BadSignature:
        return
    assert isinstance(value, list)
    assert all(isinstance(item, str) for item in value)


@pytest.fixture
def event_loop_for_stream() -> Iterator[asyncio.AbstractEventLoop]:
    """One loop for all the examples (so one hub), shut down with every stream it opened."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        reset_hubs()
        loop.run_until_complete(_cancel_the_rest())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _cancel_the_rest() -> None:
    await asyncio.sleep(0)  # lets the hub's close() (queued by reset_hubs) cancel its listener
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


async def _open_stream(query: dict[str, Any]) -> tuple[HttpResponse, bytes, int]:
    """GET the stream; for a stream, read only its first frame (bounded) and hang up.

    Hanging up is done as an ASGI server does when the client leaves: the pending read is
    cancelled. Returns the response, that frame, and how many streams the hub still serves.
    """
    response = await AsyncClient().get(EVENTS, query)
    first = b""
    if response.streaming:
        frames = aiter(response.streaming_content)
        first = await asyncio.wait_for(anext(frames), timeout=5)
        waiting = asyncio.ensure_future(anext(frames))
        await asyncio.sleep(0)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    return response, first, get_hub().subscriber_count


@case(
    "fuzzing",
    "Event-stream GET under ASGI: random and mutated `refs` tokens, missing or repeated, more "
    "references than allowed, random extra query parameters",
    "A 400 with a plain-text reason, or the stream opening with retry and resync; never a 500",
)
@fuzz_settings(max_examples=200)
@given(
    tokens=st.lists(
        st.one_of(
            stream_tokens(),
            st.integers(MAX_REFERENCES - 2, MAX_REFERENCES + 2).map(
                lambda n: sign_references(f"testapp.page:{i}" for i in range(n))
            ),
        ),
        max_size=2,
    ),
    extra=st.dictionaries(FIELD_NAMES, text(20), max_size=2),
)
def test_event_stream_gets(
    tokens: list[str], extra: dict[str, str], event_loop_for_stream: asyncio.AbstractEventLoop
) -> None:
    response, first, subscribers = event_loop_for_stream.run_until_complete(
        _open_stream({**extra, "refs": tokens})
    )
    event(f"status {response.status_code}")
    assert subscribers == 0, "a closed stream is still subscribed"

    assert response.status_code < 500
    try:
        expected_open = bool(tokens) and len(unsign_references(tokens[-1])) <= MAX_REFERENCES
    except signing.BadSignature:
        expected_open = False
    if expected_open:
        assert response.status_code == 200
        assert first.startswith(b"retry: ")
        assert b"event: resync" in first
    else:
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/plain")
        assert response.content.strip()


# --- The whole job, fed fuzzed provider bytes -----------------------------------------------------


class FuzzBackend(BaseBackend):
    """Answers whatever bytes and declared type the current example chose."""

    answer: ClassVar[tuple[bytes, str | None]] = (b"", None)

    def generate(self, request: ImageRequest) -> GeneratedImage:
        content, content_type = self.answer
        return GeneratedImage(content=content, content_type=content_type, model="fuzz")


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new("RGB", (12, 10), (200, 80, 40))
    picture.putpixel((3, 4), (10, 200, 90))
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


SEEDS = [png_bytes(16, 16), _image("PNG"), _image("JPEG"), _image("WEBP")]
MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"GIF89a",
    b"<svg xmlns='http://www.w3.org/2000/svg'>",
    b"<!doctype html>",
    b"BM",
]
DECLARED_TYPES = st.one_of(
    st.sampled_from(
        [
            None,
            "image/png",
            "image/jpeg",
            "image/webp",
            "IMAGE/PNG; charset=binary",
            "application/octet-stream",
            "",
            "text/html",
            "image/svg+xml",
            "image/gif",
        ]
    ),
    text(30),
)


def provider_bytes() -> SearchStrategy[bytes]:
    edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6)

    def mutated(seed: bytes, changes: list[tuple[int, int]], cut: int, insert: bytes) -> bytes:
        content = _mutate_bytes(seed, changes)
        at = cut % (len(content) + 1)
        return bytes(content[:at] + insert + content[at:]) if insert else bytes(content[:at])

    return st.one_of(
        st.sampled_from(SEEDS),
        st.builds(
            mutated, st.sampled_from(SEEDS), edits, st.integers(0, 10_000), st.binary(max_size=8)
        ),
        st.builds(bytes.__add__, st.sampled_from(MAGIC), st.binary(max_size=512)),
    )


def _pixels(content: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(content)) as picture:
        picture.load()
        return picture.mode, picture.size, picture.tobytes()


def _readable(message: str) -> bool:
    return bool(message.strip()) and message.isprintable() and "Traceback" not in message


@case(
    "fuzzing",
    "Provider bytes through the whole job: random bytes behind image signatures, and valid "
    "PNG/JPEG/WEBP with bytes changed, cut or inserted, under any declared content type",
    "The record ends 'ready' with the very bytes stored, or those bytes with the provenance "
    "packet added (the same pixels), in a file Pillow opens, or 'error' with a readable message "
    "and no file anywhere; never left generating",
)
@pytest.mark.django_db(transaction=True)
@fuzz_settings(max_examples=200)
@given(content=provider_bytes(), declared=DECLARED_TYPES)
def test_job_with_fuzzed_provider_bytes(
    content: bytes, declared: str | None, page: Page, settings: SettingsWrapper
) -> None:
    settings.PAGE_IMAGES = {
        "BACKEND": f"{__name__}.FuzzBackend",
        "SIZE": "32x32",
        "MAX_RETRIES": 0,
        "MAX_PIXELS": 1_000_000,
    }
    media = settings.MEDIA_ROOT
    shutil.rmtree(media, ignore_errors=True)
    Page._base_manager.filter(pk=page.pk).update(
        image="", image_error="", image_generating=False, image_claim_token=None
    )
    page.refresh_from_db()
    FuzzBackend.answer = (content, declared)
    try:
        validate_image(content, declared_type=declared)
        refusal = None
    except InvalidImageError as exc:
        refusal = exc.user_message

    token = claims.claim(page)
    assert token is not None
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    result = tasks.generate_image.apply(args=(job.model_dump(mode="json"),))

    assert result.successful(), result.traceback
    page.refresh_from_db()
    assert not page.image_generating
    assert page.image_claim_token is None
    files = files_under(media)
    event(page.image_state)
    if refusal is None:
        assert page.image_state == "ready", page.image_error
        assert files == [Path(page.image.path)]
        stored = files[0].read_bytes()
        assert stored == content or _pixels(stored) == _pixels(content)
        event("marked" if stored != content else "stored as it came")
    else:
        assert page.image_state == "error"
        assert page.image_error == refusal
        assert _readable(page.image_error)
        assert files == []
