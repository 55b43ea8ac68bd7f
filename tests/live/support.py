"""Helpers for the live service's tests: a running service, event builders, a drained stream."""

from __future__ import annotations

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
        database_url=database_url,
        port=0,
        data_dir=data_dir,
        shutdown_grace_seconds=0.2,
        **overrides,
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
