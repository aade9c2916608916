from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.utils import translation

from page_images.checks import check_deployment, check_model, check_models, check_settings
from tests.reliability import case
from tests.testapp.models import Page, Poster


def ids(settings_value=None, **overrides):
    with override_settings(PAGE_IMAGES=settings_value, **overrides):
        return sorted({message.id for message in check_settings() if not message.is_silenced()})


def test_the_test_settings_are_clean():
    assert [m for m in check_settings() if not m.is_silenced()] == []
    assert check_models() == []


def test_registered_with_django():
    with override_settings(PAGE_IMAGES={"SIZE": "huge"}):
        assert "page_images.E004" in {m.id for m in run_checks()}
        with pytest.raises(SystemCheckError, match=r"page_images\.E004"):
            call_command("check")


def test_not_a_dict():
    assert ids(["BACKEND"]) == ["page_images.E001"]


def test_unknown_keys_are_named():
    with override_settings(PAGE_IMAGES={"BACKEN": "x", "SIZES": "1x1"}):
        (message,) = [m for m in check_settings() if not m.is_silenced()]
    assert message.id == "page_images.E002"
    assert "BACKEN, SIZES" in message.msg


def test_backend_that_does_not_import():
    with override_settings(PAGE_IMAGES={"BACKEND": "nowhere.Backend"}):
        (message,) = [m for m in check_settings() if not m.is_silenced()]
    assert message.id == "page_images.E003"
    assert "PAGE_IMAGES['BACKEND'] = 'nowhere.Backend'" in message.msg


def test_backend_that_is_not_a_backend():
    assert ids({"BACKEND": "django.db.models.Model"}) == ["page_images.E003"]


def test_bad_size():
    assert ids({"SIZE": "big"}) == ["page_images.E004"]


@pytest.mark.parametrize(
    "value",
    [{"MAX_BYTES": 0}, {"CLAIM_TIMEOUT": "soon"}, {"MAX_RETRIES": -1}, {"DOWNLOAD_TIMEOUT": True}],
)
def test_numbers_must_be_positive(value):
    assert ids(value) == ["page_images.E005"]


@pytest.mark.parametrize("value", [{"PROVENANCE": "False"}, {"AI_LABEL": 1}, {"AI_LABEL": None}])
def test_switches_must_be_true_or_false(value):
    (key,) = value
    with override_settings(PAGE_IMAGES=value):
        (message,) = [m for m in check_settings() if not m.is_silenced()]
    assert message.id == "page_images.E016"
    assert f"PAGE_IMAGES['{key}'] must be True or False" in message.msg


def test_switches_take_either_bool():
    assert ids({"PROVENANCE": False, "AI_LABEL": True}) == []


def test_claim_timeout_must_outlive_the_task():
    assert ids({"CLAIM_TIMEOUT": 100, "TASK_TIME_LIMIT": 100, "TASK_SOFT_TIME_LIMIT": 50}) == [
        "page_images.E006"
    ]
    assert ids({"TASK_SOFT_TIME_LIMIT": 400, "TASK_TIME_LIMIT": 300}) == ["page_images.E006"]


@pytest.mark.parametrize("formats", [["GIF"], [], "PNG", ["PNG", "SVG"]])
def test_formats(formats):
    assert ids({"ALLOWED_FORMATS": formats}) == ["page_images.E007"]


def test_options_must_suit_the_backend():
    assert ids({"OPTIONS": []}) == ["page_images.E008"]
    assert ids({"OPTIONS": {"colour": "red"}}) == ["page_images.E030"]
    assert ids({"BACKEND": "tests.backends.StrictBackend", "OPTIONS": {"color": "red"}}) == [
        "page_images.E008"
    ]


def test_litellm_backend_needs_a_model():
    assert ids({"BACKEND": "page_images.backends.litellm.LiteLLMBackend"}) == ["page_images.E021"]


def test_litellm_backend_owns_retries_and_size():
    value = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "openai/gpt-image-1", "max_retries": 5, "size": "1x1"},
    }
    with override_settings(PAGE_IMAGES=value):
        (message,) = check_settings()
    assert message.id == "page_images.E022"
    assert "max_retries, size" in message.msg


def test_litellm_response_format_warning():
    value = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "openai/gpt-image-1", "response_format": "url"},
    }
    assert ids(value) == ["page_images.W020"]


def test_the_local_backend_is_a_deployment_warning(settings):
    del settings.PAGE_IMAGES
    assert "page_images.W001" not in {m.id for m in run_checks()}
    assert [m.id for m in run_checks(include_deployment_checks=True, tags=["page_images"])] == [
        "page_images.W001"
    ]
    assert [m.id for m in check_deployment()] == ["page_images.W001"]
    settings.PAGE_IMAGES = {"BACKEND": "tests.backends.ScriptedBackend"}
    assert check_deployment() == []


def test_loopback_downloads_are_a_deployment_warning(settings):
    settings.PAGE_IMAGES = {"BACKEND": "tests.backends.ScriptedBackend"}
    assert check_deployment() == []
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "ALLOW_LOOPBACK_DOWNLOADS": True}
    assert [m.id for m in check_deployment()] == ["page_images.W002"]
    assert ids(settings.PAGE_IMAGES) == []  # not an ordinary check's business


def test_checks_carry_the_app_tag():
    from django.core.checks import registry

    tagged = registry.registry.get_checks(include_deployment_checks=True)
    ours = [check for check in tagged if check.__module__ == "page_images.checks"]
    assert len(ours) == 6
    assert all("page_images" in check.tags for check in ours)
    deploy_only = {c.__name__ for c in registry.registry.deployment_checks if c in ours}
    assert deploy_only == {"check_deployment"}


IN_PROCESS = {"BACKEND": "page_images.events.memory.InProcessBus"}
REDIS = "redis://127.0.0.1:1/0"  # never connected to: the check only reads the URL


@pytest.mark.parametrize(
    ("events", "broker", "eager", "warned"),
    [
        (
            {"BACKEND": "page_images.events.memory.InProcessBus"},
            "redis://127.0.0.1:1/0",
            False,
            True,
        ),
        ({"BACKEND": "page_images.events.memory.InProcessBus"}, "memory://", False, False),
        (
            {"BACKEND": "page_images.events.memory.InProcessBus"},
            "redis://127.0.0.1:1/0",
            True,
            False,
        ),
        (
            {"BACKEND": "page_images.events.files.FileBus", "OPTIONS": {"path": "/tmp/x"}},
            "redis://127.0.0.1:1/0",
            False,
            False,
        ),
        (None, "redis://127.0.0.1:1/0", False, False),
        ({"BACKEND": "nowhere.Bus"}, "redis://127.0.0.1:1/0", False, False),
    ],
)
def test_a_bus_that_cannot_reach_the_worker_warns(settings, events, broker, eager, warned):
    from page_images.checks import check_live_refresh
    from tests.support.jobs import celery_app

    settings.PAGE_IMAGES = {"EVENTS": events}
    with celery_app(broker, task_always_eager=eager):
        messages = check_live_refresh()
    assert [m.id for m in messages] == (["page_images.W041"] if warned else [])
    if warned:
        assert "InProcessBus" in messages[0].msg
        assert "RedisBus" in messages[0].hint


def test_the_bus_check_is_silent_when_the_setting_is_not_a_dict(settings):
    from page_images.checks import check_live_refresh

    settings.PAGE_IMAGES = ["not", "a", "dict"]
    assert check_live_refresh() == []


def test_model_checks(monkeypatch):
    assert check_model(Page) == []
    assert check_model(Poster) == []
    monkeypatch.setattr(Page, "image_field_name", "image_text")
    monkeypatch.setattr(Page, "image_prompt_field", "nope")
    assert sorted(m.id for m in check_model(Page)) == ["page_images.E010", "page_images.E012"]
    monkeypatch.setattr(Page, "image_prompt_field", None)
    assert "page_images.E011" in {m.id for m in check_model(Page)}


def test_an_image_field_name_that_names_no_field_is_e010(monkeypatch):
    # A typo in image_field_name: reported at start-up, not as an AttributeError in the first job.
    monkeypatch.setattr(Page, "image_field_name", "imgae")
    (message,) = check_model(Page)
    assert message.id == "page_images.E010"
    assert "'imgae'" in message.msg


def test_notifier_and_permission_must_import():
    assert ids({"NOTIFIER": "nowhere.notify"}) == ["page_images.E009"]
    assert ids({"NOTIFIER": "page_images.conf.SETTING_NAME"}) == ["page_images.E009"]
    assert ids({"PERMISSION": "nowhere.allow"}) == ["page_images.E013"]
    assert ids({"PERMISSION": "tests.test_views.only_alice"}) == []


def test_rate_limit_format():
    assert ids({"RATE_LIMIT": "lots"}) == ["page_images.E014"]
    assert ids({"RATE_LIMIT": None}) == []
    assert ids({"POLL_INTERVAL": 0}) == ["page_images.E005"]


@pytest.mark.parametrize(
    ("url", "options", "warned"),
    [
        ("redis://127.0.0.1:6379/0", {}, True),
        ("rediss://cache.example:6380/0", {"socket_timeout": 5}, True),
        ("redis://127.0.0.1:6379/0", {"socket_timeout": 5, "socket_connect_timeout": 5}, False),
        ("amqp://guest@localhost//", {}, False),
        ("memory://", {}, False),
    ],
)
def test_a_redis_broker_without_socket_timeouts_warns(url, options, warned):
    from page_images.checks import check_broker
    from tests.support.jobs import celery_app

    with celery_app(url, broker_transport_options=options):
        messages = check_broker()
    assert [m.id for m in messages] == (["page_images.W050"] if warned else [])
    if warned:
        assert "forever" in messages[0].msg
        assert "socket_timeout" in messages[0].hint


def _urlconf(*patterns):
    urlconf = type("urlconf", (), {})()
    urlconf.urlpatterns = list(patterns)
    return urlconf


@case(
    "requests",
    "page_images.urls appended after a catch-all pattern such as include(wagtail_urls)",
    "System check E015 names the view that answers our URL.",
)
def test_our_urls_behind_a_catch_all_are_an_error(settings):
    from django.http import HttpResponse
    from django.urls import include, path, re_path

    from page_images.checks import check_urls

    def cms_page(request, **kwargs):
        return HttpResponse("a CMS page")

    settings.ROOT_URLCONF = _urlconf(
        re_path(r"^(?P<slug>.*)$", cms_page), path("page-images/", include("page_images.urls"))
    )
    (message,) = check_urls()
    assert message.id == "page_images.E015"
    assert "cms_page" in message.msg
    assert "before catch-all" in message.hint
    settings.ROOT_URLCONF = _urlconf(
        path("page-images/", include("page_images.urls")), re_path(r"^(?P<slug>.*)$", cms_page)
    )
    assert check_urls() == []


def test_urls_not_included_at_all_are_a_warning(settings):
    from django.urls import path

    from page_images.checks import check_urls

    settings.ROOT_URLCONF = _urlconf(path("", lambda request: None))
    assert [m.id for m in check_urls()] == ["page_images.W015"]


# --- The editor's tools (E060-E066) ---------------------------------------------------------

GPT_IMAGE = {
    "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
    "OPTIONS": {"model": "openai/gpt-image-1"},
}


def messages_of(**value):
    with override_settings(PAGE_IMAGES=value):
        return [m for m in check_settings() if not m.is_silenced()]


def test_the_editors_tools_configured_well_are_clean():
    assert (
        ids(
            {
                "PROMPT_PANEL": True,
                "PROMPT_TEMPLATE": "Watercolour of {prompt}, {pk}, {id!r:>4}",
                "MAX_PROMPT_LENGTH": 500,
                "PRESETS": {
                    "ink": {"label": "Ink", "prompt": "In ink: {prompt}", "size": "512x512"},
                    "fine": {"quality": "high"},
                    "plain": {},
                },
                "ASPECT_RATIOS": ["1:1", "16:9"],
                "VARIANTS": 10,
                "PREVIEWS": 3,
                "REVIEW": True,
                "REGENERATE": False,
                "KEEP_PICTURES": 0,
            }
        )
        == []
    )
    assert ids({**GPT_IMAGE, "ASPECT_RATIOS": ("1:1", "3:2", "2:3")}) == []


@pytest.mark.parametrize(
    ("template", "words"),
    [
        (42, "must be a string or None"),
        ("Ink of {prompt", "not a format string"),
        ("Ink of {}", "positional field"),
        ("Ink of {0}", "positional field"),
        ("Ink of {image_text}", "image_text, which testapp.Poster does not have"),
        ("Ink of {story.title} {colour[0]}", "names colour, which testapp.Page"),
    ],
)
def test_a_prompt_template_the_records_cannot_fill(template, words):
    (message,) = messages_of(PROMPT_TEMPLATE=template)
    assert message.id == "page_images.E060"
    assert words in message.msg


@pytest.mark.parametrize(
    ("presets", "words"),
    [
        (["ink"], "must be a dict of name to preset, not list"),
        ({"": {}}, "needs a name of 1 to 64 characters"),
        ({"x" * 65: {}}, "needs a name of 1 to 64 characters"),
        ({"ink": "In ink."}, "must be a dict, not str"),
        ({"ink": {"words": "In ink."}}, "unknown keys: words"),
        ({"ink": {"prompt": ["In ink."]}}, "'prompt' must be a string"),
        ({"ink": {"label": 3}}, "'label' must be a string"),
        ({"ink": {"quality": 3}}, "'quality' must be None or a string of at most 16"),
        ({"ink": {"quality": "x" * 17}}, "'quality' must be None or a string of at most 16"),
        ({"ink": {"size": "huge"}}, "'size': "),
        ({"ink": {"size": "9000x10"}}, "'size': "),
    ],
)
def test_presets_of_the_wrong_shape(presets, words):
    (message,) = messages_of(PRESETS=presets)
    assert message.id == "page_images.E061"
    assert words in message.msg


@pytest.mark.parametrize(
    ("ratios", "words"),
    [
        ("3:2", "must be a list"),
        (3, "must be a list"),
        (["3/2"], "not an aspect ratio"),
        (["10000000:10000000"], "longer than 16 characters"),
    ],
)
def test_aspect_ratios_that_are_no_ratios(ratios, words):
    (message,) = messages_of(ASPECT_RATIOS=ratios)
    assert message.id == "page_images.E062"
    assert words in message.msg


@case(
    "requests",
    "ASPECT_RATIOS names a ratio the configured model cannot draw",
    "manage.py check fails with E062, naming the ratios the model draws.",
)
def test_aspect_ratios_the_backend_cannot_draw():
    messages = messages_of(**GPT_IMAGE, ASPECT_RATIOS=["1:1", "16:9", "4:3"])
    assert [m.id for m in messages] == ["page_images.E062", "page_images.E062"]
    assert "cannot draw the aspect ratio 16:9; it draws 1:1, 3:2, 2:3" in messages[0].msg


def test_aspect_ratios_are_not_judged_by_a_backend_that_does_not_load():
    assert ids({"BACKEND": "nowhere.Backend", "ASPECT_RATIOS": ["16:9"]}) == ["page_images.E003"]
    assert ids({"SIZE": "big", "ASPECT_RATIOS": ["16:9"]}) == ["page_images.E004"]


@pytest.mark.parametrize("variants", [0, 11, "3", True, 2.0])
def test_variants_are_one_to_ten(variants):
    assert ids({"VARIANTS": variants}) == ["page_images.E063"]


@pytest.mark.parametrize("previews", [-1, 4, "2", True, 1.0, None])
def test_previews_are_zero_to_three(previews):
    assert ids({"PREVIEWS": previews}) == ["page_images.E067"]


@pytest.mark.parametrize("keep", [-1, "5", 1.5, False])
def test_keep_pictures_is_none_or_a_whole_number(keep):
    assert ids({"KEEP_PICTURES": keep}) == ["page_images.E064"]


@pytest.mark.parametrize("length", [0, -5, "4000", 10.5])
def test_max_prompt_length_is_a_positive_whole_number(length):
    assert ids({"MAX_PROMPT_LENGTH": length}) == ["page_images.E065"]


@pytest.mark.parametrize("key", ["PROMPT_PANEL", "REVIEW", "REGENERATE"])
def test_the_switches_are_true_or_false(key):
    (message,) = messages_of(**{key: "yes"})
    assert (message.id, message.msg) == (
        "page_images.E066",
        f"PAGE_IMAGES['{key}'] must be True or False, not 'yes'.",
    )


def test_alt_text_field_must_be_a_text_field(monkeypatch):
    monkeypatch.setattr(Page, "image_alt_text_field", "story")
    (message,) = check_model(Page)
    assert message.id == "page_images.E081"
    assert "'story'" in message.msg
    monkeypatch.setattr(Page, "image_alt_text_field", "nope")
    assert [m.id for m in check_model(Page)] == ["page_images.E081"]
    monkeypatch.setattr(Page, "image_alt_text_field", "image_text")  # a TextField will do
    assert check_model(Page) == []


@pytest.mark.parametrize(
    "alt_text",
    [
        "yes",
        {"MODLE": "openai/gpt-4o-mini"},
        {"MAX_LENGTH": 0},
        {"TIMEOUT": True},
        {"PROMPT": " "},
        {"OPTIONS": ["model"]},
        {"BACKEND": "nowhere.Backend"},
        {"BACKEND": "tests.backends.StrictBackend", "OPTIONS": {"color": "red"}},
    ],
)
def test_alt_text_setting_is_checked(alt_text):
    assert ids({"ALT_TEXT": alt_text}) == ["page_images.E080"]


def test_alt_text_settings_that_work():
    assert ids({"ALT_TEXT": None}) == []
    assert ids({"ALT_TEXT": {}}) == []
    litellm = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "openai/gpt-image-1"},
        "ALT_TEXT": {"MODEL": "openai/gpt-4o-mini", "MAX_LENGTH": 125, "TIMEOUT": 20},
    }
    assert ids(litellm) == []


def test_alt_text_with_nowhere_to_keep_it_is_w060(settings, monkeypatch):
    settings.PAGE_IMAGES = {"ALT_TEXT": {}}
    assert check_models() == []
    monkeypatch.setattr(Page, "image_alt_text_field", None)
    assert [m.id for m in check_models()] == ["page_images.W080"]
    settings.PAGE_IMAGES = {}
    assert check_models() == []


# --- In the active language: `manage.py check` on a German site ------------------------------

GPT_IMAGE_UNPRICED = {**GPT_IMAGE, "OPTIONS": {"model": "openai/not-in-the-price-table"}}

#: A PAGE_IMAGES value for every sentence check_settings can say (each id, each wording of it).
MISCONFIGURED = [
    ["BACKEND"],
    {"RATE_LIMITS": ["openai/gpt-image-1"]},
    {"RATE_LIMITS": {"m": {}}},
    {"RATE_LIMITS": {"m": {"requests_per_minute": 0, "per_hour": 1, "window": -1}}},
    {"RATE_LIMITS": {"m": {"images_per_minute": 5}}, "PACING_REDIS_URL": "http://x"},
    {"RATE_LIMITS": {"m": {"images_per_minute": 5}}, "EVENTS": None},
    {"BACKEN": "x"},
    {"BACKEND": "nowhere.Backend"},
    {"BACKEND": "django.db.models.Model"},
    {"SIZE": "big"},
    {"SIZE": "1x1"},
    {"MAX_BYTES": 0},
    {"MAX_RETRIES": -1},
    {"TASK_SOFT_TIME_LIMIT": 400, "TASK_TIME_LIMIT": 300},
    {"CLAIM_TIMEOUT": 100, "TASK_TIME_LIMIT": 100, "TASK_SOFT_TIME_LIMIT": 50},
    {"ALLOWED_FORMATS": ["GIF"]},
    {"OPTIONS": []},
    {"BACKEND": "tests.backends.StrictBackend", "OPTIONS": {"color": "red"}},
    {"NOTIFIER": "nowhere.notify"},
    {"NOTIFIER": "page_images.conf.SETTING_NAME"},
    {"PERMISSION": "nowhere.allow"},
    {"RATE_LIMIT": "lots"},
    {"AI_LABEL": 1},
    {"BACKEND": "page_images.backends.litellm.LiteLLMBackend"},
    {**GPT_IMAGE, "OPTIONS": {"model": "openai/gpt-image-1", "max_retries": 5}},
    {**GPT_IMAGE, "OPTIONS": {"model": "openai/gpt-image-1", "response_format": "url"}},
    {"OPTIONS": {"colour": "red"}},
    {"EVENTS": {"BACKEND": 1}},
    {"EVENTS": {"BACKEND": "page_images.events.memory.InProcessBus", "OPTIONS": ["x"]}},
    {"EVENTS": {"BACKEND": "page_images.events.redis.RedisBus", "OPTIONS": {"url": "x://"}}},
    {"EVENTS": {"BACKEND": "page_images.events.redis.RedisBus", "OPTIONS": {"channel": ""}}},
    {"EVENTS": {"BACKEND": "page_images.events.files.FileBus", "OPTIONS": {"path": ""}}},
    {"EVENTS": {"BACKEND": "page_images.events.files.FileBus", "OPTIONS": {"path": __file__}}},
    {"EVENTS": {"BACKEND": "page_images.events.files.FileBus", "OPTIONS": {"path": "events"}}},
    {"PROMPT_TEMPLATE": 5},
    {"PROMPT_TEMPLATE": "{"},
    {"PROMPT_TEMPLATE": "{} in ink"},
    {"PROMPT_TEMPLATE": "{subtitle}"},
    {"PRESETS": []},
    {"PRESETS": {"": {}}},
    {"PRESETS": {"ink": []}},
    {"PRESETS": {"ink": {"colour": "red"}}},
    {"PRESETS": {"ink": {"label": 1}}},
    {"PRESETS": {"ink": {"quality": 5}}},
    {"PRESETS": {"ink": {"size": "big"}}},
    {"ASPECT_RATIOS": "1:1"},
    {"ASPECT_RATIOS": ["wide"]},
    {"ASPECT_RATIOS": ["1:1000000000000000"]},
    {**GPT_IMAGE, "ASPECT_RATIOS": ["5:1"]},
    {"VARIANTS": 0},
    {"PREVIEWS": 4},
    {"KEEP_PICTURES": -1},
    {"MAX_PROMPT_LENGTH": 0},
    {"REVIEW": "yes"},
    {"QUOTAS": ["day"]},
    {"QUOTAS": {"everyone": {}}},
    {"QUOTAS": {"site": {"week": 1}}},
    {"QUOTAS": {"site": {"day": 0}}},
    {"QUOTAS": {"site": {"day_usd": "lots"}}},
    {**GPT_IMAGE_UNPRICED, "QUOTAS": {"site": {"month_usd": "10.00"}}},
    {"PRICES": ["x"]},
    {"PRICES": {"m": {"1x1": "-1"}}},
    {"ALT_TEXT": 5},
    {"ALT_TEXT": {"NOPE": 1}},
    {"ALT_TEXT": {"TIMEOUT": 0}},
    {"ALT_TEXT": {"PROMPT": ""}},
    {"ALT_TEXT": {"OPTIONS": []}},
    {"ALT_TEXT": {"BACKEND": "nowhere.Describer"}},
]
#: Hints that are a command to type, the same in every language.
COMMANDS = {'pip install "django-page-images[celery]"', 'pip install "django-page-images[tasks]"'}


def in_english_and_german(check, *args):
    """What ``check`` says in English and in German, message by message."""
    with translation.override("en"):
        english = [m for m in check(*args) if not m.is_silenced()]
    with translation.override("de"):
        german = [m for m in check(*args) if not m.is_silenced()]
    assert [m.id for m in german] == [m.id for m in english]
    assert english, "the case should be misconfigured"
    return list(zip(english, german, strict=True))


def assert_translated(pairs):
    """Every message and hint reads differently in German: none was left in English."""
    for english, german in pairs:
        assert german.msg != english.msg, f"{english.id} is not translated: {english.msg}"
        if english.hint is not None and english.hint not in COMMANDS:
            assert german.hint != english.hint, f"{english.id}'s hint is not translated"


@pytest.mark.parametrize("value", MISCONFIGURED, ids=repr)
def test_every_settings_message_is_read_in_german(value):
    with override_settings(PAGE_IMAGES=value):
        assert_translated(in_english_and_german(check_settings))


def test_the_table_of_german_cases_covers_every_settings_check():
    seen = set()
    for value in MISCONFIGURED:
        with override_settings(PAGE_IMAGES=value):
            seen |= {m.id for m in check_settings()}
    # E020 needs litellm missing and E042 redis missing: their German is tested beside their
    # other tests (test_backends_litellm.py, test_events_buses.py).
    expected = {f"page_images.E0{n:02}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 16)}
    expected |= {"page_images.E021", "page_images.E022", "page_images.W020", "page_images.E030"}
    expected |= {f"page_images.E04{n}" for n in (0, 1, 3, 4)} | {"page_images.W040"}
    expected |= {f"page_images.E06{n}" for n in range(8)}
    expected |= {"page_images.E070", "page_images.E071", "page_images.E072", "page_images.E075"}
    expected |= {"page_images.W070", "page_images.E080"}
    expected |= {"page_images.E100", "page_images.E101"}
    assert seen == expected


def test_a_german_sites_check_names_the_setting_and_the_fix_in_german():
    with override_settings(PAGE_IMAGES={"SIZE": "big"}), translation.override("de"):
        (message,) = check_settings()
    assert message.msg == (
        "PAGE_IMAGES['SIZE']: 'big' hat nicht die Form 'BREITExHÖHE', wie '1024x1024'."
    )
    with override_settings(PAGE_IMAGES={"BACKEN": "x"}), translation.override("de"):
        (message,) = check_settings()
    assert message.msg == "PAGE_IMAGES enthält unbekannte Schlüssel: BACKEN."
    assert message.hint.startswith("Bekannte Schlüssel: AI_LABEL, ALLOWED_FORMATS,")
    with override_settings(PAGE_IMAGES={"VARIANTS": 11}), translation.override("de"):
        (message,) = check_settings()
    assert message.msg == (
        "PAGE_IMAGES['VARIANTS'] muss eine ganze Zahl von 1 bis 10 sein, nicht 11."
    )
    assert message.hint == "Bilddienste erzeugen höchstens 10 Bilder pro Aufruf (OpenAIs n)."


def test_manage_py_check_speaks_the_sites_language(settings):
    """LANGUAGE_CODE is the language of `manage.py check`: no request activates another."""
    settings.LANGUAGE_CODE = "de"
    settings.PAGE_IMAGES = {"MAX_BYTES": 0}
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", "--tag", "page_images")
    assert "PAGE_IMAGES['MAX_BYTES'] muss eine positive Zahl sein, nicht 0." in str(caught.value)


def test_the_deployment_and_model_checks_are_read_in_german(settings, monkeypatch):
    settings.PAGE_IMAGES = {"ALLOW_LOOPBACK_DOWNLOADS": True}
    assert_translated(in_english_and_german(check_deployment))
    monkeypatch.setattr(Page, "image_field_name", "image_text")
    monkeypatch.setattr(Page, "image_prompt_field", "nope")
    monkeypatch.setattr(Page, "image_alt_text_field", "story")
    assert_translated(in_english_and_german(check_model, Page))
    monkeypatch.setattr(Page, "image_prompt_field", None)
    pairs = in_english_and_german(check_model, Page)
    assert_translated(pairs)
    german = {m.id: m for _, m in pairs}["page_images.E011"]
    assert german.msg == "testapp.Page gibt nicht an, woher sein Bild-Prompt kommt."
    assert german.hint == (
        "image_prompt_field = '<Feldname>' setzen oder get_image_prompt() überschreiben."
    )
    monkeypatch.setattr(Page, "image_alt_text_field", None)
    settings.PAGE_IMAGES = {"ALT_TEXT": {}}
    assert_translated(in_english_and_german(check_models))


def test_the_url_broker_and_live_refresh_checks_are_read_in_german(settings):
    from django.http import HttpResponse
    from django.urls import include, path, re_path

    from page_images.checks import check_broker, check_live_refresh, check_urls
    from tests.support.jobs import celery_app

    settings.ROOT_URLCONF = _urlconf(path("", lambda request: None))
    assert_translated(in_english_and_german(check_urls))
    settings.ROOT_URLCONF = _urlconf(
        re_path(r"^(?P<slug>.*)$", lambda request, **kwargs: HttpResponse()),
        path("page-images/", include("page_images.urls")),
    )
    assert_translated(in_english_and_german(check_urls))
    with celery_app("redis://127.0.0.1:6379/0", broker_transport_options={}):
        pairs = in_english_and_german(check_broker)
    assert_translated(pairs)
    assert pairs[0][1].msg.startswith(
        "Celerys Redis-Broker hat kein socket_timeout oder socket_connect_timeout:"
    )
    settings.PAGE_IMAGES = {"EVENTS": IN_PROCESS}
    with celery_app(REDIS, task_always_eager=False):
        assert_translated(in_english_and_german(check_live_refresh))
