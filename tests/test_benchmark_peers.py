"""Target 9's judgement (benchmarks/peers.py): each figure of ours beside the best peer's, a peer
that could not serve the load left out of the comparison but named, and the floor beside ours."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

from benchmarks.peers import CONTENDERS, FLOOR, OURS, best, listing, rows, stream_query
from benchmarks.peers_site import group_name


def result(kb: float, p99: float, reconnect: float) -> dict[str, float]:
    return {"kb_per_stream": kb, "p99_ms": p99, "reconnect_seconds": reconnect}


def results(ours=None, **peers):
    out = {OURS: ours or result(15.0, 2.0, 1.0), FLOOR: result(14.0, 1.9, 0.9)}
    out.update(peers)
    return out


def test_each_figure_of_ours_is_held_against_the_best_peer_for_that_figure():
    judged = rows(
        results(
            eventstream=result(45.0, 3.0, 4.0),
            channels=result(31.0, 5.0, 2.5),
        ),
        2000,
    )
    memory, latency, reconnect, floor = (row.judge(False) for row in judged)
    assert (memory.baseline, memory.baseline_name) == (31.0, "best peer: channels")
    assert (latency.baseline, latency.baseline_name) == (3.0, "best peer: eventstream")
    assert reconnect.baseline == 2.5
    assert (floor.baseline, floor.baseline_name) == (0.9, FLOOR)
    assert [row.passed for row in judged] == [True, True, True, True]
    assert "eventstream 45.0 KB; channels 31.0 KB" in memory.note


def test_a_miss_fails_its_row_and_ci_allows_its_margin():
    slow = results(ours=result(15.0, 2.0, 1.5), channels=result(31.0, 1.5, 2.5))
    judged = rows(slow, 2000)
    assert [row.judge(False).passed for row in judged] == [True, False, False, False]
    # Quick mode: 2.0 / 1.5 = 1.33x is within 1x * 2; 1.5 / 2.5 = 0.6x within 0.5x * 1.5.
    assert [row.judge(True).passed for row in judged] == [True, True, True, True]


def test_a_peer_that_failed_is_named_and_left_out_of_the_comparison():
    broken = {"failed": "101 of 200 warm-up streams never subscribed"}
    judged = rows(results(channels=broken, eventstream=result(45.0, 3.0, 4.0)), 2000)
    assert judged[0].baseline_name == "best peer: eventstream"
    assert "channels failed (101 of 200 warm-up streams never subscribed)" in judged[0].note


def test_ours_failing_fails_every_row():
    judged = rows(results(ours={"failed": "3 of 2000 streams never subscribed"}), 2000)
    assert not any(row.judge(True).passed for row in judged)


def test_without_a_peer_there_is_no_best():
    name, value = best({OURS: 1.0, FLOOR: 0.5})
    assert name == "none ran"
    assert math.isnan(value)
    assert listing({OURS: result(1.0, 2.0, 3.0)}, "p99_ms", "{:.2f}", "ms") == "page_images 2.00 ms"


def test_each_contender_is_asked_for_the_records_as_its_pages_would():
    by_kind = {contender.publish: contender for contender in CONTENDERS}
    references = ["bench.article:1", "bench.article:2"]
    query = parse_qs(stream_query(by_kind["eventstream"], references))
    assert query == {"channel": references}
    assert parse_qs(stream_query(by_kind["channels-pubsub"], references)) == {
        "refs": ["bench.article:1,bench.article:2"]
    }
    assert group_name("bench.article:1") == "ref.bench.article_1"


def test_our_stream_is_asked_with_a_signed_token(settings):
    from page_images.live.tokens import unsign_references

    ours = next(contender for contender in CONTENDERS if contender.name == OURS)
    token = parse_qs(urlsplit("?" + stream_query(ours, ["bench.article:1"])).query)["refs"][0]
    assert unsign_references(token) == ["bench.article:1"]
