"""The crowd's stream parser: frames found whatever way TCP splits the chunked bytes."""

from __future__ import annotations

import os

from benchmarks.crowd import Stream
from benchmarks.harness import process_tree


class Recorder:
    """Stands in for the crowd: what a stream reported, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def resynced(self, stream: Stream) -> None:
        self.seen.append(("resync", ""))

    def changed(self, stream: Stream, reference: str) -> None:
        self.seen.append(("changed", reference))

    def refused(self, stream: Stream, head: bytes) -> None:
        self.seen.append(("refused", head.decode()))


def chunk(frame: bytes) -> bytes:
    return f"{len(frame):x}\r\n".encode() + frame + b"\r\n"


ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    + chunk(b"retry: 3000\n\nevent: resync\ndata: \n\n")
    + chunk(b": keep-alive\n\n")
    + chunk(b"event: changed\ndata: shop.product:7\n\n")
    + chunk(b"event: resync\ndata: \n\n")
)


def test_every_frame_is_found_however_the_bytes_are_split():
    for size in (1, 2, 7, 64, len(ANSWER)):
        recorder = Recorder()
        stream = Stream(recorder, b"")  # type: ignore[arg-type]
        for start in range(0, len(ANSWER), size):
            stream.data_received(ANSWER[start : start + size])
        assert recorder.seen == [("resync", ""), ("changed", "shop.product:7"), ("resync", "")]


def test_an_answer_other_than_200_is_refused_and_read_no_further():
    recorder = Recorder()
    stream = Stream(recorder, b"")  # type: ignore[arg-type]
    stream.data_received(b"HTTP/1.1 403 Forbidden\r\n\r\nexpired\n\nevent: resync\n\n")
    assert [kind for kind, _ in recorder.seen] == ["refused"]


def test_the_process_tree_holds_this_process():
    assert process_tree(os.getppid())[0] == os.getppid()
    assert os.getpid() in process_tree(os.getppid())
