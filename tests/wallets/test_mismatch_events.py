"""The wallet service publishes reconciliation mismatches to the live service, exactly once."""

from __future__ import annotations

from collections import Counter

from google.protobuf.json_format import MessageToDict

from tapedeck.live.v1 import live_pb2
from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_wallets.models import live_outbox
from tests.live.publishing_support import all_events, live_database, outbox_count
from tests.live.support import running_live
from tests.support import eventually, free_port

MISMATCH = live_pb2.EVENT_TYPE_RECONCILIATION_MISMATCH


async def test_mismatches_found_while_the_live_service_is_down_arrive_once_when_it_is_back(
    service, database_url, tmp_path
):
    port = free_port()
    async with service(live_address=f"127.0.0.1:{port}", live_retry_max_seconds=0.2) as svc:
        same = await svc.create_wallet(
            "same", balances={"ETH": ("2", "0")}, exchange_balances={"ETH": ("2", "0")}
        )
        off = await svc.create_wallet(
            "off",
            balances={"BTC": ("1.5", "0"), "USD": ("10", "0")},
            exchange_balances={"BTC": ("1.25", "0.25"), "SOL": ("3", "0")},
        )
        report = await svc.finished((await svc.reconcile(threshold="0.0001")).name)
        assert report.state == wallets_pb2.RECONCILIATION_STATE_SUCCEEDED
        assert report.mismatched_count == 1
        assert await outbox_count(database_url, live_outbox) == 1  # waiting for the live service

        # The same wallets again: a second reconciliation is a second fact, with its own event.
        again = await svc.finished((await svc.reconcile([off.name], threshold="0.0001")).name)

        async with running_live(live_database(database_url, tmp_path), tmp_path, port=port) as live:

            async def drained() -> bool:
                return await outbox_count(database_url, live_outbox) == 0

            await eventually(drained, timeout=30, message="outbox drained")
            events = await all_events(live, live_pb2.EventFilter(types=[MISMATCH]))

    assert Counter(e.event_id for e in events) == {
        f"reconciliation:{report.name.removeprefix('reconciliations/')}"
        f":{off.name.removeprefix('wallets/')}:mismatch": 1,
        f"reconciliation:{again.name.removeprefix('reconciliations/')}"
        f":{off.name.removeprefix('wallets/')}:mismatch": 1,
    }
    assert same.name not in str(events)
    first = next(e for e in events if report.name.removeprefix("reconciliations/") in e.event_id)
    assert first.reason == "balance_mismatch"
    payload = MessageToDict(first.payload)
    assert payload["reconciliation"] == report.name
    assert payload["wallet"] == off.name
    assert payload["display_name"] == "off"
    assert payload["assets"] == [
        {"asset": "SOL", "stored": "0", "exchange": "3", "difference": "3"},
        {"asset": "USD", "stored": "10", "exchange": "0", "difference": "-10"},
    ]


async def test_a_reconciliation_without_mismatches_publishes_nothing(service, database_url):
    async with service(live_retry_max_seconds=0.2) as svc:
        await svc.create_wallet(
            "same", balances={"ETH": ("2", "0")}, exchange_balances={"ETH": ("2", "0")}
        )
        report = await svc.finished((await svc.reconcile()).name)
        assert report.state == wallets_pb2.RECONCILIATION_STATE_SUCCEEDED
        assert await outbox_count(database_url, live_outbox) == 0
