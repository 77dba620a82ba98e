"""The metrics' building blocks: histogram buckets, the text format, type sniffing."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from hubbub.protocol import codec
from hubbub.protocol.messages import ChatRelay, Error, Pong, RoomJoined, UserLeft
from hubbub.server.connection import _type_of
from hubbub.server.metrics import Exposition, Histogram


def test_histogram_buckets_are_cumulative_up_to_inf() -> None:
    histogram = Histogram([0.01, 0.1, 1.0])
    for value in (0.005, 0.01, 0.05, 0.5, 7.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.01", 2), ("0.1", 3), ("1", 4), ("+Inf", 5)]
    assert histogram.count == 5
    assert abs(histogram.sum - 7.565) < 1e-9


def test_exposition_escapes_label_values_and_parses_back() -> None:
    out = Exposition()
    out.labelled("x_total", "counter", "Odd\nlabels.", "kind", {'a"b\\c\nd': 3, "plain": 1.5})
    histogram = Histogram([0.1])
    histogram.observe(0.05)
    out.histogram("y_seconds", "A histogram.", histogram)
    [counter, hist] = text_string_to_metric_families(out.text())
    assert {s.labels["kind"]: s.value for s in counter.samples} == {'a"b\\c\nd': 3, "plain": 1.5}
    assert hist.type == "histogram"
    assert [(s.name, s.value) for s in hist.samples if s.name.endswith("_count")] == [
        ("y_seconds_count", 1)
    ]


def test_the_type_of_every_kind_of_outgoing_message_is_read_from_its_bytes() -> None:
    messages = [
        Pong(ref=1),
        ChatRelay(message='{"type":"fake"}', user_id="u", id="m1", seq=1, ts=1),
        Error(code="bad-json", message="m"),
        UserLeft(user_id="u"),
        RoomJoined(
            room="r",
            user_id="u",
            session_id="s",
            participants=[],
            history=[],
            last_seq=0,
            resume_token="t",
        ),
    ]
    assert [_type_of(codec.encode(m)) for m in messages] == [
        b"pong",
        b"chat",
        b"error",
        b"user-left",
        b"room-joined",
    ]
