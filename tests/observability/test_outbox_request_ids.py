"""Outbox events carry the id of the request that published them into the live service's logs,
and the outbox's gauges show what waits and for how long."""

from __future__ import annotations

from tapedeck.live.v1 import live_pb2
from tapedeck_common.database import session_factory
from tapedeck_common.outbox import publish
from tapedeck_common.request_ids import bound
from tests.live.support import event, running_live
from tests.live.test_outbox import publisher, publisher_database
from tests.observability.support import access_lines, json_log_lines
from tests.support import eventually


async def test_an_outbox_delivery_carries_the_publishing_request_id(database_url, data_dir):
    async with (
        publisher_database(database_url) as (engine, table),
        running_live(database_url, data_dir, access_log=True) as live,
    ):
        sessions = session_factory(engine)
        for request_id, name in (("req-a", "first"), ("req-a", "second"), ("req-b", "third")):
            with bound(request_id):
                async with sessions.begin() as session:
                    await publish(session=session, table=table, events=[event(name)])
        outbox = publisher(engine, table, live.app.port)
        try:
            waiting, age = outbox.probes()
            [(labels, count)] = await waiting.read()
            assert (labels, count) == (("test_live_outbox",), 3.0)

            async def aged() -> bool:
                [(_labels, seconds)] = await age.read()
                return seconds > 0

            await eventually(aged, message="the oldest event has an age")
            with json_log_lines() as stream:
                assert await outbox.drain_once() == 3
            [(_, after)] = await waiting.read()
            assert after == 0
            [(_, age_after)] = await age.read()
            assert age_after == 0
        finally:
            await outbox.stop()
        stored = await live.stub.ListEvents(live_pb2.ListEventsRequest())

    assert sorted(e.event_id for e in stored.events) == ["first", "second", "third"]
    appends = [
        line["request_id"] for line in access_lines(stream) if line["rpc"].endswith("/AppendEvents")
    ]
    assert appends == ["req-a", "req-b"]
