"""Helpers for the live service's tests: a running service, event builders, a drained stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.runtime import ServiceApp
from tapedeck_live import server
from tapedeck_live.settings import LiveSettings
from tests.support import eventually

BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


@dataclass
class Live:
    """A live service running in process and a stub to it."""

    app: ServiceApp
    stub: live_pb2_grpc.LiveServiceStub
    channel: grpc.aio.Channel


@asynccontextmanager
async def running_live(database_url: str, data_dir: Path, **overrides: Any) -> AsyncIterator[Live]:
    """Start the live service on port 0 against the database, yield it, stop it."""
    settings = LiveSettings(
        **{
            "database_url": database_url,
            "port": 0,
            "data_dir": data_dir,
            "shutdown_grace_seconds": 0.2,
            **overrides,
        }
    )
    app = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Live(app=app, stub=live_pb2_grpc.LiveServiceStub(channel), channel=channel)
    finally:
        await app.stop()


def timestamp(offset_seconds: float = 0) -> Timestamp:
    """Return BASE_NS + offset as a Timestamp."""
    nanos = BASE_NS + int(offset_seconds * 1_000_000_000)
    return Timestamp(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


def event(
    event_id: str,
    *,
    type: int = live_pb2.EVENT_TYPE_ORDER_FILLED,
    run_id: str = "",
    symbol: str = "",
    reason: str = "",
    at: float = 0,
    payload: dict[str, Any] | None = None,
) -> live_pb2.Event:
    """Build an event to append."""
    message = live_pb2.Event(
        event_id=event_id,
        type=type,
        run_id=run_id,
        symbol=symbol,
        reason=reason,
        time=timestamp(at),
    )
    if payload is not None:
        message.payload.update(payload)
    return message


def block(event_id: str, *, reason: str, **fields: Any) -> live_pb2.Event:
    """Build a trade_blocked event."""
    return event(event_id, type=live_pb2.EVENT_TYPE_TRADE_BLOCKED, reason=reason, **fields)


@dataclass
class LiveProcess:
    """A live service running as its own process (`python -m tapedeck_live`)."""

    process: asyncio.subprocess.Process
    port: int
    log: Path


@asynccontextmanager
async def live_process(
    database_url: str, directory: Path, **env: str
) -> AsyncIterator[LiveProcess]:
    """Start `python -m tapedeck_live` on a free port, yield it once it listens, then SIGTERM it."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test helper, once
    log = directory / "live.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LIVE_", "TAPEDECK_"))},
        "LIVE_DATABASE_URL": database_url,
        "LIVE_PORT": "0",
        "TAPEDECK_DATA_DIR": str(directory),
        "TAPEDECK_ENV": "development",
        **env,
    }
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tapedeck_live",
            env=environment,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:

        async def listening() -> int | None:
            assert process.returncode is None, log.read_text()
            for line in log.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("message") == "listening":
                        return int(entry["address"].rsplit(":", 1)[1])
            return None

        port = await eventually(listening, timeout=30, message="live process listening")
        yield LiveProcess(process=process, port=port, log=log)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


# $1 events for scale tests and the bench: blocks are rarer than fills (2%), as in a working
# strategy; 100 runs, 100 symbols, 4 reasons.
GENERATE_EVENTS = """
INSERT INTO events (event_id, type, run_id, symbol, reason, ts_ns, payload)
SELECT
    'gen-' || g,
    CASE WHEN g % 50 = 1 THEN 'trade_blocked'
         ELSE (ARRAY['order_filled', 'run_started', 'reconciliation_mismatch',
                     'run_finished'])[1 + g % 4] END,
    'run-' || ((g / 7) % 100),
    'SYM' || ((g / 3) % 100) || '-USD',
    CASE WHEN g % 50 = 1
         THEN (ARRAY['insufficient_funds', 'max_notional', 'stale_balance',
                     'unknown_wallet'])[1 + (g / 50) % 4]
         ELSE '' END,
    1767225600000000000 + g::bigint * 1000000000,
    jsonb_build_object('quantity', g % 17, 'price', '101.25', 'venue', 'COINBASE')
FROM generate_series(1, $1::int) AS g
"""
