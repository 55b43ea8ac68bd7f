"""The bridge's queue and drainer against the real live service, without an engine."""

from __future__ import annotations

import asyncio

from tapedeck.live.v1 import live_pb2
from tapedeck_nautilus.events import request_field
from tapedeck_nautilus.queue import EventQueue, QueuedEvent
from tests.bridge.support import drain
from tests.live.support import block, event, running_live


def queued(message: live_pb2.Event) -> QueuedEvent:
    return QueuedEvent(message.event_id, request_field(message.SerializeToString()))


async def test_an_event_the_service_refuses_is_parked_and_the_rest_are_stored(
    database_url, data_dir, tmp_path
):
    queue = EventQueue.shared(tmp_path / "queue.sqlite")
    good = [event(f"good-{i}", run_id="node:1") for i in range(6)]
    bad = block("bad-1", reason="")  # a trade_blocked event needs a reason
    for message in [*good[:3], bad, *good[3:]]:
        queue.put(queued(message))
    async with running_live(database_url, data_dir) as live:
        await asyncio.to_thread(drain, queue, f"127.0.0.1:{live.app.port}")
        stored = await live.stub.ListEvents(live_pb2.ListEventsRequest())
    parked = queue.parked()
    queue.release()

    assert sorted(e.event_id for e in stored.events) == sorted(e.event_id for e in good)
    assert [(e.event_id, "reason" in why) for e, why in parked] == [("bad-1", True)]


async def test_events_queued_while_tapedeck_is_away_survive_a_restart_of_the_node(
    database_url, data_dir, tmp_path
):
    path = tmp_path / "queue.sqlite"
    queue = EventQueue.shared(path)
    for index in range(3):
        queue.put(queued(event(f"waiting-{index}")))
    queue.release()  # the node stops with the events unsent

    reopened = EventQueue.shared(path)
    assert reopened.size() == 3
    async with running_live(database_url, data_dir) as live:
        await asyncio.to_thread(drain, reopened, f"127.0.0.1:{live.app.port}")
        stored = await live.stub.ListEvents(live_pb2.ListEventsRequest())
    reopened.release()

    assert sorted(e.event_id for e in stored.events) == ["waiting-0", "waiting-1", "waiting-2"]
