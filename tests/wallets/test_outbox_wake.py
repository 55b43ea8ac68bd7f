"""The wallet service's outbox against a real live process: it wakes as soon as the live service
is serving again (not at the end of its backoff), and a rejected service token is a logged
configuration error that its health reports, not an endless "unreachable" retry."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_wallets.models import live_outbox
from tests.live.publishing_support import live_database, outbox_count
from tests.live.support import live_process
from tests.support import eventually, free_port

OUTBOX_HEALTH = "tapedeck.outbox.wallets_live_outbox"


async def mismatch(svc, name: str) -> None:
    """Reconcile a wallet that differs from the exchange: one mismatch event enters the outbox."""
    wallet = await svc.create_wallet(
        name, balances={"BTC": ("1.5", "0")}, exchange_balances={"BTC": ("1.25", "0")}
    )
    await svc.finished((await svc.reconcile([wallet.name], threshold="0.0001")).name)


async def live_event_count(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await live_pb2_grpc.LiveServiceStub(channel).ListEvents(
            live_pb2.ListEventsRequest(page_size=1000)
        )
        return len(reply.events)


async def test_the_outbox_delivers_within_a_second_of_a_restarted_live_service_serving(
    service, database_url: str, tmp_path: Path
):
    port = free_port()
    live_url = live_database(database_url, tmp_path)
    # The default 30 s backoff cap: only the health watch can deliver within the bound below.
    async with service(live_address=f"127.0.0.1:{port}", live_retry_max_seconds=30.0) as svc:
        async with live_process(live_url, tmp_path / "live", LIVE_PORT=str(port)):
            await mismatch(svc, "first")

            async def drained() -> bool:
                return await outbox_count(database_url, live_outbox) == 0

            await eventually(drained, timeout=30, message="first event delivered")

        await mismatch(svc, "while-down")
        assert await outbox_count(database_url, live_outbox) == 1
        # Long enough for the backoff to grow past several seconds (1, 1.5, 2.25, 3.4, ...).
        await asyncio.sleep(8)

        async with live_process(live_url, tmp_path / "live", LIVE_PORT=str(port)):
            listening = time.monotonic()
            await eventually(drained, timeout=30, interval=0.02, message="delivered after restart")
            delay = time.monotonic() - listening
            print(f"outbox delivered {delay:.3f}s after the live service listened again")
            assert delay < 5
            assert await live_event_count(port) == 2


async def test_a_rejected_service_token_is_logged_once_and_reported_by_health(
    service, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "wallets", "role": "viewer", "token": "right-token-0123456789abcd"}
                ]
            }
        )
    )
    live_url = live_database(database_url, tmp_path)
    async with (
        live_process(live_url, tmp_path / "live", TAPEDECK_TOKENS_FILE=str(tokens)) as live,
        service(
            live_address=f"127.0.0.1:{live.port}",
            live_retry_max_seconds=0.2,
            service_token=SecretStr("wrong-token-0123456789abcdef"),
        ) as svc,
        grpc.aio.insecure_channel(f"127.0.0.1:{svc.app.port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)

        async def status(name: str) -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            return reply.status

        assert await status(OUTBOX_HEALTH) == health_pb2.HealthCheckResponse.SERVING
        await mismatch(svc, "rejected")

        async def reported() -> bool:
            return await status(OUTBOX_HEALTH) == health_pb2.HealthCheckResponse.NOT_SERVING

        await eventually(reported, timeout=30, message="outbox health NOT_SERVING")
        await asyncio.sleep(2)  # about ten more attempts at the 0.2 s cap
        assert await status("") == health_pb2.HealthCheckResponse.SERVING
        assert await status(OUTBOX_HEALTH) == health_pb2.HealthCheckResponse.NOT_SERVING

    # Still waiting (not parked, not lost) and logged once, not once per attempt.
    assert await outbox_count(database_url, live_outbox) == 1
    errors = [r.getMessage() for r in caplog.records if "configuration error" in r.getMessage()]
    assert len(errors) == 1, errors
    assert "UNAUTHENTICATED" in errors[0]
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
