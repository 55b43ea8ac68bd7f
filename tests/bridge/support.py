"""Helpers for the bridge tests: the engine child process and a session's events in the store."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_nautilus.link import TapedeckLink
from tapedeck_nautilus.queue import EventQueue
from tapedeck_nautilus.sender import Drainer, LiveEvents
from tests.backtest.reference import REAL

ROOT = Path(__file__).resolve().parents[2]
TRADES = REAL / "binance-btcusdt-trades.parquet"
TRADER_ID = "BRIDGE-001"
# Another interpreter with another NautilusTrader release can run the engine, e.g. a Python
# 3.12 environment with NautilusTrader 1.231 (it needs only nautilus_trader, grpcio, protobuf).
CHILD_PYTHON = os.environ.get("TAPEDECK_BRIDGE_PYTHON", sys.executable)


def spec(tmp_path: Path, *, port: int, **fields: Any) -> dict[str, Any]:
    """Return an engine child's spec: the real trades, a fresh session and queue file."""
    return {
        "address": f"127.0.0.1:{port}",
        "queue_path": str(tmp_path / "node" / "tapedeck.sqlite"),
        "instance_id": str(uuid.uuid4()),
        "trader_id": TRADER_ID,
        "trades": str(TRADES),
        **fields,
    }


def run_id(child_spec: dict[str, Any]) -> str:
    """Return the session run_id the child's events carry."""
    return f"{child_spec['trader_id']}:{child_spec['instance_id']}"


class EngineChild:
    """`python -m tests.bridge.engine_child` with a spec; lines of its protocol on stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, child_spec: dict[str, Any], directory: Path, **env: str) -> EngineChild:
        """Start the child on a spec written to `directory`."""
        path = directory / f"spec-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(child_spec))
        pythonpath = os.pathsep.join([str(ROOT), str(ROOT / "clients/nautilus/src")])
        process = await asyncio.create_subprocess_exec(
            CHILD_PYTHON,
            "-m",
            "tests.bridge.engine_child",
            str(path),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": pythonpath, **env},
        )
        return cls(process)

    async def expect(self, word: str, *, timeout: float = 180.0) -> str:
        """Return the rest of the next line starting with `word` (other lines are skipped)."""
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not line:
                await self.process.wait()
                assert self.process.stderr is not None
                error = (await self.process.stderr.read()).decode()[-4000:]
                raise AssertionError(f"the engine child ended before {word}: {error}")
            text = line.decode().rstrip("\n")
            if text.startswith(word):
                return text[len(word) :].strip()

    def resume(self) -> None:
        """Answer PAUSED: run the rest."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def result(self, *, timeout: float = 180.0) -> dict[str, Any]:
        """Wait for RESULT and the child's exit; return NautilusTrader's view."""
        outcome: dict[str, Any] = json.loads(await self.expect("RESULT", timeout=timeout))
        assert await asyncio.wait_for(self.process.wait(), timeout) == 0
        return outcome

    async def kill(self) -> None:
        """End the child if it still runs."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def session_events(
    stub: live_pb2_grpc.LiveServiceStub, session: str, *, metadata: Any = ()
) -> list[live_pb2.Event]:
    """Return every stored event of a session, oldest first (paging through ListEvents)."""
    found: list[live_pb2.Event] = []
    token = ""
    while True:
        page = await stub.ListEvents(
            live_pb2.ListEventsRequest(
                filter=live_pb2.EventFilter(run_id=session), page_size=1000, page_token=token
            ),
            metadata=metadata,
        )
        found.extend(page.events)
        token = page.next_page_token
        if not token:
            return sorted(found, key=lambda event: event.sequence)


async def session_trades(
    stub: live_pb2_grpc.LiveServiceStub, session: str
) -> list[live_pb2.SessionTrade]:
    """Return every round trip of a session, latest closed first (paging in small pages)."""
    found: list[live_pb2.SessionTrade] = []
    token = ""
    while True:
        page = await stub.ListSessionTrades(
            live_pb2.ListSessionTradesRequest(run_id=session, page_size=7, page_token=token)
        )
        found.extend(page.trades)
        token = page.next_page_token
        if not token:
            return found


def of_type(events: list[live_pb2.Event], *types: int) -> list[live_pb2.Event]:
    """Return the events of these types."""
    return [event for event in events if event.type in types]


class Quiet:
    """A logger for drainers run by tests."""

    def info(self, message: str) -> None:
        pass

    warning = error = info


def drain(queue: EventQueue, address: str) -> int:
    """Send a queue with the bridge's own drainer until it is empty; return what it sent."""
    drainer = Drainer(
        queue,
        LiveEvents(TapedeckLink(address=address, token_env=None), timeout_seconds=5),
        batch_size=100,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.2,
        log=Quiet(),
    )
    drainer.start()
    assert drainer.stop(flush_timeout=60) == 0
    return drainer.sent
