"""Events encoded once: their bytes parse as the events of every response that sends them."""

from __future__ import annotations

from tapedeck.live.v1 import live_pb2
from tapedeck_live.domain import EventType, StoredEvent
from tapedeck_live.messages import MAX_MESSAGE_EVENT_BYTES, EncodedEvents, event_message


def stored(sequence: int, *, payload_bytes: int = 0) -> StoredEvent:
    return StoredEvent(
        sequence=sequence,
        event_id=f"e-{sequence}",
        type=EventType.ORDER_FILLED,
        run_id="run-1",
        symbol="BTC-USD",
        reason="",
        ts_ns=1_767_225_600_000_000_000 + sequence,
        payload={"price": "101.25", "quantity": 2.5, "note": "x" * payload_bytes},
    )


def test_encoded_events_parse_as_the_events_of_every_response_that_sends_events():
    events = [stored(s) for s in (3, 5, 8)]
    (chunk,) = EncodedEvents(max_events=10).chunks(events)
    expected = [event_message(e) for e in events]
    for response in (
        live_pb2.ListEventsResponse,
        live_pb2.ListBlocksResponse,
        live_pb2.SubscribeEventsResponse,
    ):
        assert list(response.FromString(chunk.events).events) == expected, response
    assert chunk.last_sequence == 8


def test_encoded_events_split_into_chunks_under_the_message_limit_in_order():
    events = [stored(s, payload_bytes=1024 * 1024) for s in range(1, 11)]
    chunks = list(EncodedEvents(max_events=10).chunks(events))
    assert len(chunks) > 1
    assert all(len(chunk.events) <= MAX_MESSAGE_EVENT_BYTES for chunk in chunks)
    parsed = [list(live_pb2.ListEventsResponse.FromString(c.events).events) for c in chunks]
    assert [c.last_sequence for c in chunks] == [p[-1].sequence for p in parsed]
    assert [e.sequence for p in parsed for e in p] == list(range(1, 11))


def test_an_event_is_encoded_once_while_among_the_newest_kept():
    encoded = EncodedEvents(max_events=2)
    first = encoded.encoded(stored(1))
    assert encoded.encoded(stored(1)) is first
    encoded.encoded(stored(2))
    encoded.encoded(stored(3))  # the first goes: encoded again, to the same bytes
    again = encoded.encoded(stored(1))
    assert again == first
    assert again is not first
