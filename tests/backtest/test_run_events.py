"""The backtest service publishes run lifecycle events and order denials to the live service."""

from __future__ import annotations

import os
import signal
from collections import Counter

from google.protobuf.json_format import MessageToDict

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.live.v1 import live_pb2
from tapedeck_backtest.models import live_outbox
from tests.backtest.runs_support import running_service, spec, worker_pids
from tests.live.publishing_support import all_events, live_database, outbox_count
from tests.live.support import running_live
from tests.support import eventually, free_port


def oversized(dataset: str) -> pb.BacktestSpec:
    # 10 BTC at about 30,000 USDT from a 100,000 USDT CASH account: every buy is denied.
    return spec(
        dataset,
        parameters={
            "fast_period": pb.ParameterValue(int_value=5),
            "slow_period": pb.ParameterValue(int_value=15),
            "trade_size": pb.ParameterValue(double_value=10.0),
        },
    )


async def test_run_events_made_while_the_live_service_is_down_arrive_once_when_it_is_back(
    database_url, data_dir, tmp_path
):
    port = free_port()
    async with running_service(
        database_url,
        data_dir,
        live_address=f"127.0.0.1:{port}",
        live_retry_max_seconds=0.2,
    ) as service:
        dataset = await service.import_trades(rows=2000)
        denied = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=oversized(dataset))
        )
        failing = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(
                spec=spec(
                    dataset,
                    strategy="exploding",
                    parameters={"explode_at": pb.ParameterValue(int_value=5)},
                )
            )
        )
        finished = await service.wait(denied.backtest.name)
        assert finished.state == pb.BACKTEST_STATE_SUCCEEDED, finished.error_message
        failed = await service.wait(failing.backtest.name)
        assert failed.state == pb.BACKTEST_STATE_FAILED
        assert await outbox_count(database_url, live_outbox) > 0  # nobody to send them to yet

        async with running_live(live_database(database_url, tmp_path), tmp_path, port=port) as live:

            async def drained() -> bool:
                return await outbox_count(database_url, live_outbox) == 0

            await eventually(drained, timeout=30, message="outbox drained")
            denied_id = denied.backtest.name.removeprefix("backtests/")
            failed_id = failing.backtest.name.removeprefix("backtests/")
            denied_events = await all_events(live, live_pb2.EventFilter(run_id=denied_id))
            failed_events = await all_events(live, live_pb2.EventFilter(run_id=failed_id))
            blocks = await live.stub.ListBlocks(
                live_pb2.ListBlocksRequest(
                    filter=live_pb2.EventFilter(run_id=denied_id), page_size=1000
                )
            )

    # Exactly once: every event id appears a single time.
    for events in (denied_events, failed_events):
        counts = Counter(e.event_id for e in events)
        assert counts
        assert max(counts.values()) == 1, counts

    kinds = Counter(e.type for e in denied_events)
    assert kinds[live_pb2.EVENT_TYPE_RUN_STARTED] == 1
    assert kinds[live_pb2.EVENT_TYPE_RUN_FINISHED] == 1
    assert kinds[live_pb2.EVENT_TYPE_TRADE_BLOCKED] >= 1
    assert f"backtest:{denied_id}:started:1" in {
        e.event_id.rsplit(":", 1)[0] for e in denied_events
    }

    (end,) = [e for e in denied_events if e.type == live_pb2.EVENT_TYPE_RUN_FINISHED]
    assert end.event_id == f"backtest:{denied_id}:finished"
    assert end.symbol == "BTCUSDT.BINANCE"
    payload = MessageToDict(end.payload)
    assert payload["backtest"] == denied.backtest.name
    assert payload["stats"]["fill_count"] == finished.stats.fill_count
    assert payload["denied_orders"] == kinds[live_pb2.EVENT_TYPE_TRADE_BLOCKED]

    # A denied order: trade_blocked with NautilusTrader's reason and the run id.
    assert len(blocks.events) == kinds[live_pb2.EVENT_TYPE_TRADE_BLOCKED]
    block = blocks.events[0]
    assert block.run_id == denied_id
    assert block.symbol == "BTCUSDT.BINANCE"
    assert block.reason == "NOTIONAL_EXCEEDS_FREE_BALANCE"
    details = MessageToDict(block.payload)
    assert details["message"].startswith("NOTIONAL_EXCEEDS_FREE_BALANCE")
    assert details["side"] == "BUY"
    assert details["quantity"] == "10.000000"
    assert block.event_id == f"backtest:{denied_id}:denied:{details['client_order_id']}"
    assert [(c.reason, c.count) for c in blocks.reason_counts] == [
        ("NOTIONAL_EXCEEDS_FREE_BALANCE", len(blocks.events))
    ]

    # A failed run: run_failed carries the error.
    failure = [e for e in failed_events if e.type == live_pb2.EVENT_TYPE_RUN_FAILED]
    assert len(failure) == 1
    assert failure[0].event_id == f"backtest:{failed_id}:failed"
    assert failure[0].reason == failed.error_message[:128]
    assert "boom at bar 5" in failure[0].reason
    assert MessageToDict(failure[0].payload)["error_message"] == failed.error_message


async def test_a_run_whose_workers_die_publishes_each_attempt_and_one_failure(
    database_url, data_dir, tmp_path
):
    async with (
        running_live(live_database(database_url, tmp_path), tmp_path) as live,
        running_service(
            database_url,
            data_dir,
            run_max_attempts=2,
            live_address=f"127.0.0.1:{live.app.port}",
        ) as service,
    ):
        dataset = await service.import_trades(rows=2000)
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(
                spec=spec(
                    dataset,
                    strategy="slow_cross",
                    parameters={"sleep_seconds": pb.ParameterValue(double_value=0.05)},
                )
            )
        )
        run_id = created.backtest.name.removeprefix("backtests/")
        killed: list[int] = []
        for _ in (1, 2):

            async def running() -> int | None:
                # The second attempt runs in a new process (the first one was killed).
                pid = worker_pids(service.app).get(run_id)
                return pid if pid is not None and pid not in killed else None

            killed.append(await eventually(running, timeout=30, message="run in a worker"))
            os.kill(killed[-1], signal.SIGKILL)
        final = await service.wait(created.backtest.name)
        assert final.state == pb.BACKTEST_STATE_FAILED

        async def published() -> list[live_pb2.Event] | None:
            events = await all_events(live, live_pb2.EventFilter(run_id=run_id))
            return events if len(events) == 3 else None

        events = await eventually(published, timeout=30, message="three events")

    # A start's id ends with the pool that claimed it (after the attempt).
    assert sorted(
        e.event_id.rsplit(":", 1)[0] if e.type == live_pb2.EVENT_TYPE_RUN_STARTED else e.event_id
        for e in events
    ) == [
        f"backtest:{run_id}:failed",
        f"backtest:{run_id}:started:1",
        f"backtest:{run_id}:started:2",
    ]
    (failure,) = [e for e in events if e.type == live_pb2.EVENT_TYPE_RUN_FAILED]
    assert "exited with code -9 during the run (after 2 attempts)" in failure.reason
