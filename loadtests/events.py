"""Server-Sent Events as the API streams them (`GET /predict/{id}/events`): the final event of a
job's stream, read from the chunks of its body as they arrive."""

from collections.abc import Iterable
from dataclasses import dataclass

from loadtests.responses import UnexpectedResponseError

# The states after which the API ends a job's stream.
FINAL_STATES = frozenset({"succeeded", "failed", "expired", "canceled"})


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: str


def events(chunks: Iterable[bytes]) -> Iterable[Event]:
    """The events of a stream, each once its blank line has arrived; comments (`: ping`, the
    heartbeats) and fields other than `event` and `data` are skipped."""
    buffer = b""
    name, data = "message", list[str]()
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.removesuffix(b"\r").decode()
            if not line:
                if data:
                    yield Event(name, "\n".join(data))
                name, data = "message", list[str]()
                continue
            field, _, value = line.partition(":")
            if field == "event":
                name = value.removeprefix(" ")
            elif field == "data":
                data.append(value.removeprefix(" "))


def final_event(chunks: Iterable[bytes]) -> Event:
    """The stream's final event; a stream that ends without one is a failure."""
    for event in events(chunks):
        if event.name in FINAL_STATES:
            return event
    raise UnexpectedResponseError("the event stream ended without a final event")
