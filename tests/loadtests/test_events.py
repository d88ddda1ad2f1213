"""The SSE scenario's reading of an event stream, chunk by chunk as it arrives."""

import pytest

from loadtests.events import Event, events, final_event
from loadtests.responses import UnexpectedResponseError

STREAM = (
    b'event: queued\r\nid: 0\r\ndata: {"status": "queued"}\r\n\r\n'
    b": ping\r\n\r\n"
    b'event: running\nid: 1\ndata: {"status": "running"}\n\n'
    b'event: succeeded\nid: 2\ndata: {"status": "succeeded"}\n\n'
)


def test_events_come_whole_whatever_the_chunks() -> None:
    expected = [
        Event("queued", '{"status": "queued"}'),
        Event("running", '{"status": "running"}'),
        Event("succeeded", '{"status": "succeeded"}'),
    ]
    assert list(events([STREAM])) == expected
    assert list(events(STREAM[i : i + 1] for i in range(len(STREAM)))) == expected


def test_an_event_waits_for_its_blank_line_and_joins_its_data_lines() -> None:
    assert list(events([b"event: succeeded\ndata: {}\n"])) == []
    assert list(events([b"data: a\ndata: b\n\n"])) == [Event("message", "a\nb")]


def test_the_final_event_is_the_first_of_a_final_state() -> None:
    assert final_event([STREAM]).name == "succeeded"
    assert final_event([b"event: expired\ndata: {}\n\n", STREAM]).name == "expired"


def test_a_stream_without_a_final_event_is_a_failure() -> None:
    with pytest.raises(UnexpectedResponseError, match="without a final event"):
        final_event([STREAM.split(b"event: succeeded")[0]])
