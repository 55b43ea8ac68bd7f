"""Playback benchmark: StreamCandles, GetPortfolioState, StreamEquity, ListTrades, ExportBacktest vs the old REST baseline.

    .venv/bin/python -m bench.playback            # default sizes, a few minutes on 2 cores
    .venv/bin/python -m bench.playback --full     # also the whole 10M-point curve streamed

Default sizes are the issue's: 2,000 and 100,000 candles, 10,000 and 1,000,000 fills, 100,000 and
10,000,000 equity points (--big-fills / --big-equity change the large ones).

Starts the real stack (launcher, backtest service, Envoy) on free ports, writes synthetic
finished runs into its result store, and calls the service directly (native gRPC to the
backtest port) and through Envoy (gRPC-web over HTTP/1.1, as the browser does). The baseline
(`baseline.py`) runs in this process without HTTP. Prints p50/p99, bytes and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench.playback import baseline
from bench.playback.synthetic import MINUTE, T0, Written, write_run
from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.backtest.v1 import backtest_pb2_grpc
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.runs import repository as run_repository
from tapedeck_backtest.runs.domain import AccountKind, Run, RunSpec, RunState, final_content_version
from tests.gateway.stack import Stack, descendants, start_stack

ALL_INDICATORS = list(range(1, 12))
SERVICE = "/tapedeck.backtest.v1.BacktestService"
BASELINE_EQUITY_POINTS = 1_000_000


def percentile(samples: list[float], q: float) -> float:
    """Return the q-th percentile (0-100), interpolated."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def _service_status(stack: Stack) -> dict[str, str] | None:
    """Return the backtest service process's /proc status fields."""
    for pid in descendants(stack.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if b"tapedeck_backtest" in command:
            return dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return None


def _megabytes(fields: dict[str, str], name: str) -> float:
    return int(fields[name].split()[0]) / 1024


def service_memory(stack: Stack) -> str:
    """Return the backtest service's anonymous (heap) memory now and at its peak RSS, in MB."""
    fields = _service_status(stack)
    if fields is None:
        return "backtest service not found"
    anon, peak = _megabytes(fields, "RssAnon"), _megabytes(fields, "VmHWM")
    return f"backtest service RssAnon {anon:.0f} MB, peak RSS {peak:.0f} MB"


class HeapPeak:
    """The backtest service's largest RssAnon while the block runs, sampled every 5 ms."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._stop = threading.Event()
        self.before = self.peak = 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _heap(self) -> float:
        fields = _service_status(self._stack)
        return 0.0 if fields is None else _megabytes(fields, "RssAnon")

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._heap())

    def __enter__(self) -> HeapPeak:
        self.before = self.peak = self._heap()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(reps: int, call: Callable[[int], int]) -> tuple[float, float, int]:
    """Time `call(rep)` `reps` times; return p50 and p99 seconds and the last byte count."""
    call(0)  # warm
    samples: list[float] = []
    size = 0
    for rep in range(reps):
        started = time.perf_counter()
        size = call(rep)
        samples.append(time.perf_counter() - started)
    return percentile(samples, 50), percentile(samples, 99), size


class GrpcWeb:
    """A browser-like gRPC-web client over one kept-alive HTTP/1.1 connection to Envoy."""

    def __init__(self, address: str, token: str) -> None:
        host, port = address.split(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=300)
        self._headers = {
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {token}",
        }

    def call(self, method: str, request: Message) -> tuple[list[bytes], int]:
        """Send one request; return the message frames and the response body's size."""
        body = request.SerializeToString()
        self._connection.request(
            "POST",
            f"{SERVICE}/{method}",
            body=b"\x00" + struct.pack(">I", len(body)) + body,
            headers=self._headers,
        )
        response = self._connection.getresponse()
        payload = response.read()
        frames, offset = [], 0
        while offset < len(payload):
            (length,) = struct.unpack(">I", payload[offset + 1 : offset + 5])
            if not payload[offset] & 0x80:
                frames.append(payload[offset + 5 : offset + 5 + length])
            elif b"grpc-status:0" not in payload[offset + 5 : offset + 5 + length].replace(
                b" ", b""
            ):
                raise RuntimeError(payload[offset + 5 : offset + 5 + length].decode())
            offset += 5 + length
        return frames, len(payload)


def ts(nanos: int) -> common_pb2.TimeRange:
    window = common_pb2.TimeRange()
    window.start_time.FromNanoseconds(nanos)
    return window


def window(start: int | None, end: int | None) -> common_pb2.TimeRange:
    result = common_pb2.TimeRange()
    if start is not None:
        result.start_time.FromNanoseconds(start)
    if end is not None:
        result.end_time.FromNanoseconds(end)
    return result


async def register(database: Path, run_ids: list[str]) -> None:
    """Store finished runs under these ids in the backtest service's SQLite database."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    sessions = async_sessionmaker(engine)
    try:
        for run_id in run_ids:
            run = Run(
                id=run_id,
                spec=RunSpec(
                    "bench",
                    "ema_cross",
                    {},
                    T0,
                    T0 + MINUTE,
                    (("USDT", Decimal(1)),),
                    AccountKind.MARGIN,
                ),
                spec_hash=run_id,
                state=RunState.SUCCEEDED,
                create_time=datetime.now(UTC),
                content_version=final_content_version(run_id, RunState.SUCCEEDED, "{}"),
            )
            async with sessions() as session, session.begin():
                await run_repository.insert_run(session=session, run=run)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also stream the whole 10M-point curve")
    parser.add_argument("--reps", type=int, default=200, help="samples of the fast cases")
    parser.add_argument("--big-equity", type=int, default=10_000_000)
    parser.add_argument("--big-fills", type=int, default=1_000_000)
    parser.add_argument("--export-candles", type=int, default=1_000_000)
    args = parser.parse_args()
    reps = args.reps
    os.environ["BACKTEST_WORKERS"] = (
        "0"  # playback only: no engine processes competing for the cores
    )
    rows: list[tuple[str, str, float, float, int, float | None]] = []

    def report(case: str, path: str, p50: float, p99: float, size: int, base: float | None) -> None:
        rows.append((case, path, p50, p99, size, base))
        ratio = f"{base / p50:9.1f}x" if base else ""
        print(
            f"{case:<44} {path:<14} p50 {p50 * 1e3:9.2f} ms  p99 {p99 * 1e3:9.2f} ms  {size:>12,} B {ratio}",
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="bench-playback-") as tmp:
        print("starting the stack (launcher, services, Envoy) ...", flush=True)
        stack = start_stack(Path(tmp))
        try:
            results = stack.data_dir / "runs"
            started = time.perf_counter()
            runs: dict[str, Written] = {
                "candles": write_run(
                    results, "benchcandles", candles=100_000, fills=0, equity_points=0, seed=1
                ),
                "fills_10k": write_run(
                    results, "benchfills10k", candles=20_000, fills=10_000, equity_points=0, seed=2
                ),
                "fills_big": write_run(
                    results,
                    "benchfillsbig",
                    candles=50_000,
                    fills=args.big_fills,
                    equity_points=0,
                    seed=3,
                ),
                "equity_100k": write_run(
                    results,
                    "benchequity100k",
                    candles=1_000,
                    fills=0,
                    equity_points=100_000,
                    seed=4,
                ),
                "export": write_run(
                    results,
                    "benchexport",
                    candles=args.export_candles,
                    fills=0,
                    equity_points=0,
                    seed=6,
                ),
                "equity_big": write_run(
                    results,
                    "benchequitybig",
                    candles=1_000,
                    fills=0,
                    equity_points=args.big_equity,
                    seed=5,
                ),
            }
            asyncio.run(register(stack.data_dir / "backtest.db", [w.run_id for w in runs.values()]))
            print(f"synthetic results written in {time.perf_counter() - started:.1f} s", flush=True)
            token = stack.admin_token()
            metadata = (("authorization", f"Bearer {token}"),)
            channel = grpc.insecure_channel(
                f"127.0.0.1:{stack.base_port + 1}",
                options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
            )
            stub = backtest_pb2_grpc.BacktestServiceStub(channel)
            web = GrpcWeb(stack.address, token)

            for name, run in runs.items():
                started = time.perf_counter()
                stub.GetPortfolioState(
                    pb.GetPortfolioStateRequest(
                        backtest=f"backtests/{run.run_id}", time=ts(T0).start_time
                    ),
                    metadata=metadata,
                )
                print(
                    f"first read of {name} (builds the memory-mapped sidecar once): {time.perf_counter() - started:.2f} s",
                    flush=True,
                )
            print(service_memory(stack), flush=True)

            def native_stream(method: str, request: Message) -> int:
                return sum(
                    m.ByteSize() + 5 for m in getattr(stub, method)(request, metadata=metadata)
                )

            def native_unary(method: str, request: Message) -> int:
                return int(getattr(stub, method)(request, metadata=metadata).ByteSize() + 5)

            def via_envoy(method: str, request: Message) -> int:
                return web.call(method, request)[1]

            # --- candles
            candles = runs["candles"]
            frame = pd.DataFrame(
                {
                    "time": candles.candles.times,
                    "open": candles.candles.open,
                    "high": candles.candles.high,
                    "low": candles.candles.low,
                    "close": candles.candles.close,
                    "volume": candles.candles.volume,
                }
            )
            rng = np.random.default_rng(7)
            starts = rng.integers(0, 100_000 - 2_000, 10_000)

            def candle_request(
                rep: int, count: int, max_candles: int = 0
            ) -> pb.StreamCandlesRequest:
                lo = int(starts[rep]) if count < 100_000 else 0
                return pb.StreamCandlesRequest(
                    backtest=f"backtests/{candles.run_id}",
                    time_range=window(T0 + lo * MINUTE, T0 + (lo + count) * MINUTE),
                    indicators=ALL_INDICATORS,  # type: ignore[arg-type]
                    max_candles=max_candles,
                    chunk_size=10_000,
                )

            for count, n in ((2_000, reps), (100_000, max(5, reps // 20))):
                base50, _, base_size = measure(
                    max(3, n // 10),
                    lambda rep, count=count: len(
                        baseline.candles_json(
                            frame,
                            int(starts[rep]) if count < 100_000 else 0,
                            (int(starts[rep]) if count < 100_000 else 0) + count,
                        )
                    ),
                )
                report(f"candles {count:,}, 11 indicators", "baseline", base50, _, base_size, None)
                for path, call in (("direct", native_stream), ("envoy grpc-web", via_envoy)):
                    p50, p99, size = measure(
                        n,
                        lambda rep, call=call, count=count: call(
                            "StreamCandles", candle_request(rep, count)
                        ),
                    )
                    report(f"candles {count:,}, 11 indicators", path, p50, p99, size, base50)
            for path, call in (("direct", native_stream), ("envoy grpc-web", via_envoy)):
                p50, p99, size = measure(
                    max(5, reps // 10),
                    lambda rep, call=call: call(
                        "StreamCandles", candle_request(rep, 100_000, 2_000)
                    ),
                )
                report("candles 100,000 -> max_candles 2,000", path, p50, p99, size, None)

            # --- portfolio state
            portfolio_p50: dict[str, float] = {}
            for key, label in (("fills_10k", "10,000"), ("fills_big", f"{args.big_fills:,}")):
                run = runs[key]
                trades = baseline.trades(run)
                instants = rng.integers(int(run.fill_times[0]), int(run.fill_times[-1]), 10_000)
                base_reps = 30 if key == "fills_10k" else 3
                base50, base99, base_size = measure(
                    base_reps,
                    lambda rep, trades=trades, instants=instants: len(
                        baseline.portfolio_json(trades, int(instants[rep]))
                    ),
                )
                report(
                    f"portfolio state at {label} fills", "baseline", base50, base99, base_size, None
                )
                for path, call in (("direct", native_unary), ("envoy grpc-web", via_envoy)):
                    p50, p99, size = measure(
                        reps * 5,
                        lambda rep, call=call, run=run, instants=instants: call(
                            "GetPortfolioState",
                            pb.GetPortfolioStateRequest(
                                backtest=f"backtests/{run.run_id}",
                                time=ts(int(instants[rep % 10_000])).start_time,
                            ),
                        ),
                    )
                    report(f"portfolio state at {label} fills", path, p50, p99, size, base50)
                    portfolio_p50[f"{key}/{path}"] = p50

            # --- equity
            for key, label, whole in (
                ("equity_100k", "100,000", True),
                ("equity_big", f"{args.big_equity:,}", args.full),
            ):
                run = runs[key]
                name = f"backtests/{run.run_id}"
                base50: float | None = None
                if whole:
                    # The whole curve as JSON records needs gigabytes beyond 1M points (one dict
                    # per point): beyond that the baseline is measured on 1M and scaled linearly.
                    sampled = min(run.equity_times.size, BASELINE_EQUITY_POINTS)
                    scale = run.equity_times.size / sampled
                    base50, base99, base_size = measure(
                        3 if key == "equity_100k" else 1,
                        lambda rep, run=run, sampled=sampled: len(
                            baseline.equity_json(
                                run.equity_times[:sampled], run.equity_values[:sampled]
                            )
                        ),
                    )
                    base50, base99, base_size = (
                        base50 * scale,
                        base99 * scale,
                        int(base_size * scale),
                    )
                    report(
                        f"equity {label} points, whole",
                        "baseline" if scale == 1 else f"baseline x{scale:g}",
                        base50,
                        base99,
                        base_size,
                        None,
                    )
                    for path, call in (("direct", native_stream), ("envoy grpc-web", via_envoy)):
                        n = max(5, reps // 10) if key == "equity_100k" else 2
                        p50, p99, size = measure(
                            n,
                            lambda rep, call=call, name=name: call(
                                "StreamEquity",
                                pb.StreamEquityRequest(backtest=name, chunk_size=100_000),
                            ),
                        )
                        report(f"equity {label} points, whole", path, p50, p99, size, base50)
                for path, call in (("direct", native_stream), ("envoy grpc-web", via_envoy)):
                    p50, p99, size = measure(
                        max(5, reps // 10),
                        lambda rep, call=call, name=name: call(
                            "StreamEquity", pb.StreamEquityRequest(backtest=name, max_points=2_000)
                        ),
                    )
                    report(
                        f"equity {label} points -> max_points 2,000", path, p50, p99, size, base50
                    )

            # --- trades (round trips): a page of 1,000 from a random exit instant
            run = runs["fills_big"]
            trades_file = results / run.run_id / "trades.parquet"
            instants = rng.integers(int(run.fill_times[0]), int(run.fill_times[-1]), 10_000)
            label = f"trades page 1,000 of {len(run.fill_times) // 2:,}"
            base50, base99, base_size = measure(
                3,
                lambda rep: len(baseline.trades_page_json(trades_file, int(instants[rep]), 1_000)),
            )
            report(label, "baseline", base50, base99, base_size, None)
            for path, call in (("direct", native_unary), ("envoy grpc-web", via_envoy)):
                p50, p99, size = measure(
                    reps,
                    lambda rep, call=call: call(
                        "ListTrades",
                        pb.ListTradesRequest(
                            backtest=f"backtests/{run.run_id}",
                            time_range=window(int(instants[rep % 10_000]), None),
                            page_size=1_000,
                        ),
                    ),
                )
                report(label, path, p50, p99, size, base50)

            # --- export: a whole run's candles with indicators as one file
            run = runs["export"]
            candles_file = results / run.run_id / "candles.parquet"
            label = f"export {args.export_candles:,} candles"
            base50, base99, base_size = measure(
                3, lambda rep: len(baseline.candles_csv(candles_file))
            )
            report(f"{label}, CSV", "baseline", base50, base99, base_size, None)
            for form, name in (
                (pb.EXPORT_FORMAT_CSV, "CSV"),
                (pb.EXPORT_FORMAT_PARQUET, "Parquet"),
            ):
                for path, call in (("direct", native_stream), ("envoy grpc-web", via_envoy)):
                    with HeapPeak(stack) as heap:
                        p50, p99, size = measure(
                            3,
                            lambda rep, call=call, form=form: call(
                                "ExportBacktest",
                                pb.ExportBacktestRequest(
                                    backtest=f"backtests/{run.run_id}",
                                    format=form,
                                    parts=[pb.EXPORT_PART_CANDLES],
                                    chunk_size=3 << 20,
                                ),
                            ),
                        )
                    report(f"{label}, {name}", path, p50, p99, size, base50)
                    # The service's heap while it exports, against the exported file's size.
                    growth = heap.peak - heap.before
                    print(
                        f"  service heap during the export: +{growth:.0f} MB over"
                        f" {heap.before:.0f} MB = {growth / (size / 2**20):.2f}x the file"
                        f" ({size / 2**20:.0f} MB)",
                        flush=True,
                    )

            print()
            print(service_memory(stack))
            for path in ("direct", "envoy grpc-web"):
                ratio = portfolio_p50[f"fills_big/{path}"] / portfolio_p50[f"fills_10k/{path}"]
                print(
                    f"portfolio state p50 {args.big_fills:,} fills / 10,000 fills ({path}): {ratio:.2f}"
                )
            channel.close()
        finally:
            stack.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
