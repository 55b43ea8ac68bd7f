"""Benchmark the live-event service on PostgreSQL: `.venv/bin/python -m bench.live`.

1. A filtered ListBlocks page at 1M events against the endpoint it replaces ("fetch the latest
   500 events, filter them in Python"), and how many matches that approach misses.
2. Append throughput through gRPC at batch sizes 1, 100 and 1000.
3. Append-to-delivery latency across two live processes (LISTEN/NOTIFY) against polling.

Needs PostgreSQL at TAPEDECK_BENCH_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.services import service_process
from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tests.live.support import GENERATE_EVENTS

ADMIN_DSN = os.environ.get(
    "TAPEDECK_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NAIVE = (
    "SELECT sequence, event_id, type, run_id, symbol, reason, ts_ns, payload "
    "FROM events ORDER BY sequence DESC LIMIT 500"
)
PAGE = 10
RUN, REASON = "run-43", "insufficient_funds"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, samples_ms: list[float]) -> tuple[float, float]:
    p50, p99 = percentile(samples_ms, 0.5), percentile(samples_ms, 0.99)
    print(f"  {name:<58} p50 {p50:8.3f} ms   p99 {p99:8.3f} ms   (n={len(samples_ms)})")
    return p50, p99


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    name = f"tapedeck_bench_live_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def live_process(dsn: str, directory: Path) -> AsyncIterator[tuple[int, int]]:
    """Run `python -m tapedeck_live` and yield its port and pid."""
    env = {"LIVE_DATABASE_URL": dsn, "LIVE_HEARTBEAT_SECONDS": "60"}
    async with service_process("tapedeck_live", prefix="LIVE_", directory=directory, env=env) as (
        port,
        pid,
    ):
        yield port, pid


def event(event_id: str, run_id: str = "bench") -> live_pb2.Event:
    now = time.time_ns()
    message = live_pb2.Event(
        event_id=event_id,
        type=live_pb2.EVENT_TYPE_ORDER_FILLED,
        run_id=run_id,
        symbol="BTC-USD",
        time=Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000),
    )
    message.payload.update({"quantity": 1, "price": "101.25", "venue": "COINBASE"})
    return message


async def filtered_page(stub: live_pb2_grpc.LiveServiceStub, conn: asyncpg.Connection) -> None:
    print(
        f"\n1. Filtered blocks page (type=trade_blocked, run_id={RUN}, reason={REASON}), "
        f"page size {PAGE}, 1M events"
    )
    request = live_pb2.ListBlocksRequest(
        filter=live_pb2.EventFilter(run_id=RUN, reason=REASON), page_size=PAGE
    )
    await stub.ListBlocks(request)  # warm
    new_sql_page = (
        "SELECT sequence, event_id, type, run_id, symbol, reason, ts_ns, payload FROM events "
        "WHERE type = 'trade_blocked' AND run_id = $1 AND reason = $2 "
        "ORDER BY sequence DESC LIMIT $3"
    )
    new_sql = await timed(lambda: conn.fetch(new_sql_page, RUN, REASON, PAGE + 1), 300)
    rpc = await timed(lambda: stub.ListBlocks(request), 300)

    async def naive() -> list[asyncpg.Record]:
        rows = await conn.fetch(NAIVE)
        hits = []
        for row in rows:
            payload = json.loads(row["payload"])  # the old endpoint decoded every row
            if row["type"] == "trade_blocked" and row["run_id"] == RUN and row["reason"] == REASON:
                hits.append((row, payload))
        return hits[:PAGE]

    old = await timed(naive, 300)

    async def naive_rpc() -> list[live_pb2.Event]:
        reply = await stub.ListEvents(live_pb2.ListEventsRequest(page_size=500))
        hits = [
            e
            for e in reply.events
            if e.type == live_pb2.EVENT_TYPE_TRADE_BLOCKED
            and e.run_id == RUN
            and e.reason == REASON
        ]
        return hits[:PAGE]

    old_rpc = await timed(naive_rpc, 100)
    sql_p50, _ = report("new: indexed page query (SQL only)", new_sql)
    old_p50, _ = report("old: latest 500, filter in Python (SQL + decode)", old)
    rpc_p50, _ = report("new: ListBlocks over gRPC (page + counts per reason)", rpc)
    old_rpc_p50, _ = report("old over gRPC: ListEvents 500, filter in the client", old_rpc)
    found_old = len(await naive())
    total = await conn.fetchval(
        "SELECT count(*) FROM events WHERE type = 'trade_blocked' AND run_id = $1 AND reason = $2",
        RUN,
        REASON,
    )
    reply = await stub.ListBlocks(request)
    print(
        f"  matches: {total} in the store; new page returns {len(reply.events)} "
        f"(+ next_page_token: {bool(reply.next_page_token)}); old returns {found_old}, "
        f"missing {total - found_old} ({100 * (total - found_old) / max(total, 1):.1f}%)"
    )
    print(
        f"  ratio old/new p50: SQL {old_p50 / sql_p50:.1f}x, "
        f"end to end over gRPC {old_rpc_p50 / rpc_p50:.1f}x"
    )


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def append_throughput(stub: live_pb2_grpc.LiveServiceStub, pid: int) -> None:
    print("\n2. AppendEvents throughput (live service in its own process, PostgreSQL, 1M rows)")
    rates = {}
    for batch, calls in ((1, 1000), (100, 200), (1000, 60)):
        prefix = f"tp-{batch}-{uuid.uuid4().hex[:6]}"
        requests = [
            live_pb2.AppendEventsRequest(events=[event(f"{prefix}-{c}-{i}") for i in range(batch)])
            for c in range(calls)
        ]
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        for request in requests:
            await stub.AppendEvents(request)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu
        rates[batch] = batch * calls / elapsed
        print(
            f"  batch {batch:>5}: {rates[batch]:>10,.0f} events/s  "
            f"({calls} calls, {1000 * elapsed / calls:.2f} ms per call; live-service CPU "
            f"{1e6 * cpu / (batch * calls):.1f} us/event = {batch * calls / max(cpu, 1e-9):,.0f}"
            " events/s per free core, PostgreSQL not included)"
        )
    # Several callers at once: one validates and encodes while another's insert runs.
    callers, per_caller = 4, 15
    prefix = f"tp-par-{uuid.uuid4().hex[:6]}"
    batches = [
        [
            live_pb2.AppendEventsRequest(
                events=[event(f"{prefix}-{w}-{c}-{i}") for i in range(1000)]
            )
            for c in range(per_caller)
        ]
        for w in range(callers)
    ]

    async def caller(requests: list[live_pb2.AppendEventsRequest]) -> None:
        for request in requests:
            await stub.AppendEvents(request)

    started = time.perf_counter()
    await asyncio.gather(*(caller(b) for b in batches))
    parallel = callers * per_caller * 1000 / (time.perf_counter() - started)
    print(f"  batch  1000, {callers} concurrent callers: {parallel:>10,.0f} events/s")
    # Replaying a batch: all duplicates, nothing written.
    replay = requests[0]
    started = time.perf_counter()
    for _ in range(20):
        reply = await stub.AppendEvents(replay)
    rate = 20 * len(replay.events) / (time.perf_counter() - started)
    assert reply.duplicate_count == len(replay.events)
    print(f"  batch  1000 replayed (all duplicates): {rate:,.0f} events/s")
    print(
        f"  ratio batch 100 / batch 1: {rates[100] / rates[1]:.1f}x; "
        f"batch 1000 / batch 1: {rates[1000] / rates[1]:.1f}x"
    )


async def delivery_latency(
    writer: live_pb2_grpc.LiveServiceStub, reader: live_pb2_grpc.LiveServiceStub, samples: int
) -> None:
    print("\n3. Append-to-delivery latency across two processes (append on A, subscribe on B)")
    call = reader.SubscribeEvents(
        live_pb2.SubscribeEventsRequest(
            filter=live_pb2.EventFilter(run_id="latency"), tail_only=True
        )
    )
    await call.read()
    latencies = []
    for i in range(samples):
        started = time.perf_counter()
        await writer.AppendEvents(
            live_pb2.AppendEventsRequest(
                events=[event(f"lat-{uuid.uuid4().hex}", run_id="latency")]
            )
        )
        while True:
            message = await asyncio.wait_for(call.read(), timeout=10)
            if message.events:
                break
        latencies.append((time.perf_counter() - started) * 1000)
        if i % 10 == 0:
            await asyncio.sleep(0.01)
    call.cancel()
    new_p50, _ = report("SubscribeEvents on B (LISTEN/NOTIFY)", latencies)

    # The baseline: a client polling ListEvents on B every 250 ms, as a page refresh would,
    # while events are appended at moments unrelated to its schedule.
    seen: dict[str, float] = {}
    sent: dict[str, float] = {}
    sending_done = asyncio.Event()

    async def poller() -> None:
        while not (sending_done.is_set() and set(sent) <= set(seen)):
            reply = await reader.ListEvents(
                live_pb2.ListEventsRequest(filter=live_pb2.EventFilter(run_id="polling"))
            )
            now = time.perf_counter()
            for e in reply.events:
                seen.setdefault(e.event_id, now)
            await asyncio.sleep(0.25)

    polling = asyncio.create_task(poller())
    for i in range(max(20, samples // 10)):
        marker = f"poll-{uuid.uuid4().hex}"
        sent[marker] = time.perf_counter()
        await writer.AppendEvents(
            live_pb2.AppendEventsRequest(events=[event(marker, run_id="polling")])
        )
        await asyncio.sleep(0.05 + (i * 0.037) % 0.3)
    sending_done.set()
    await polling
    polled = [(seen[m] - t) * 1000 for m, t in sent.items()]
    old_p50, _ = report("baseline: poll ListEvents on B every 250 ms", polled)
    print(f"  ratio polling/notify p50: {old_p50 / new_p50:.1f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    async with bench_database() as dsn:
        with tempfile.TemporaryDirectory() as tmp:
            async with live_process(dsn, Path(tmp) / "a") as (port_a, pid_a):
                conn = await asyncpg.connect(dsn)
                started = time.perf_counter()
                await conn.execute(GENERATE_EVENTS, args.events)
                await conn.execute("VACUUM ANALYZE events")
                print(
                    f"generated {args.events:,} events in {time.perf_counter() - started:.1f} s "
                    "(one INSERT ... SELECT generate_series)"
                )
                async with (
                    live_process(dsn, Path(tmp) / "b") as (port_b, _pid_b),
                    grpc.aio.insecure_channel(f"127.0.0.1:{port_a}") as channel_a,
                    grpc.aio.insecure_channel(f"127.0.0.1:{port_b}") as channel_b,
                ):
                    a = live_pb2_grpc.LiveServiceStub(channel_a)
                    b = live_pb2_grpc.LiveServiceStub(channel_b)
                    await filtered_page(a, conn)
                    await append_throughput(a, pid_a)
                    await delivery_latency(a, b, args.latency_samples)
                await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
