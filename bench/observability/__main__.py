"""The observability interceptor's cost per unary call, against the same server without it.

    .venv/bin/python -m bench.observability [--calls 2000] [--rounds 6] [--playback-reps 200]

Each variant (`server.py`) runs in its own process; one client calls Health/Check over a real
channel, variants interleaved round by round so the machine's drift hits all alike. Prints each
variant's p50/p99 per call, the added p50 in microseconds over `bare`, an A/A pair of `bare`
as the noise floor, and the cost as a share of the playback benchmark's p50 (target <= 3 %),
measured in the same run: `bench.playback`'s first case (StreamCandles, 2,000 candles with 11
indicators, direct to the backtest service) against a backtest service started here. The server's
CPU time per call (from /proc) is printed too: on a shared machine it is steadier than latency.
Tracing is off in every variant, as by default: it adds no interceptor (checked here), so its
cost is not measurable by construction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.playback.__main__ import ALL_INDICATORS, measure, register, window
from bench.playback.synthetic import MINUTE, T0, write_run
from bench.services import cpu_seconds, service_process
from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.backtest.v1 import backtest_pb2_grpc
from tapedeck_common.tracing import ENDPOINT_VARIABLE

VARIANTS = ("bare", "bare (A/A)", "deployed", "access-log")


def start(variant: str) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if k != ENDPOINT_VARIABLE}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.observability.server", variant.split(maxsplit=1)[0]],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def timed(stub: health_pb2_grpc.HealthStub, calls: int) -> list[float]:
    request = health_pb2.HealthCheckRequest()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        stub.Check(request)
        samples.append(time.perf_counter() - started)
    return samples


async def playback_p50(reps: int) -> float:
    """Return the p50 of `bench.playback`'s first case against a backtest service of our own."""
    candles = 10_000
    with tempfile.TemporaryDirectory(prefix="bench-observability-") as tmp:
        directory = Path(tmp)
        env = {
            "TAPEDECK_ENV": "development",
            "BACKTEST_WORKERS": "0",  # playback only: no engine processes
            "BACKTEST_LIVE_ADDRESS": "",  # no live service here
        }
        async with service_process(
            "tapedeck_backtest", prefix="BACKTEST_", directory=directory, env=env
        ) as (port, _pid):
            run = write_run(
                directory / "runs", "obsbench", candles=candles, fills=0, equity_points=0, seed=1
            )
            await register(directory / "backtest.db", [run.run_id])
            starts = np.random.default_rng(7).integers(0, candles - 2_000, reps + 1)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = backtest_pb2_grpc.BacktestServiceStub(channel)

                def stream(rep: int) -> int:
                    lo = int(starts[rep])
                    request = pb.StreamCandlesRequest(
                        backtest=f"backtests/{run.run_id}",
                        time_range=window(T0 + lo * MINUTE, T0 + (lo + 2_000) * MINUTE),
                        indicators=ALL_INDICATORS,  # type: ignore[arg-type]
                        chunk_size=10_000,
                    )
                    return sum(m.ByteSize() + 5 for m in stub.StreamCandles(request))

                p50, _p99, _size = measure(reps, stream)
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--playback-reps", type=int, default=200)
    args = parser.parse_args()

    servers = {variant: start(variant) for variant in VARIANTS}
    samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu: dict[str, float] = dict.fromkeys(VARIANTS, 0.0)
    try:
        channels = {
            v: grpc.insecure_channel(f"127.0.0.1:{port}") for v, (_, port) in servers.items()
        }
        stubs = {v: health_pb2_grpc.HealthStub(channel) for v, channel in channels.items()}
        for stub in stubs.values():
            timed(stub, 200)  # warm: connection, handler caches, allocator
        for _ in range(args.rounds):
            for variant in VARIANTS:
                pid = servers[variant][0].pid
                before = cpu_seconds(pid)
                samples[variant].extend(timed(stubs[variant], args.calls // args.rounds))
                cpu[variant] += cpu_seconds(pid) - before
    finally:
        for process, _ in servers.values():
            process.kill()
            process.wait()

    def p(variant: str, q: int) -> float:
        return statistics.quantiles(samples[variant], n=100)[q - 1]

    bare = p("bare", 50)
    per_call = {v: cpu[v] / len(samples[v]) for v in VARIANTS}
    print(
        f"{'variant':<12} {'p50 us':>9} {'p99 us':>9} {'added p50 us':>13} {'vs bare':>8}"
        f" {'server cpu us/call':>19}"
    )
    for variant in VARIANTS:
        added = p(variant, 50) - bare
        print(
            f"{variant:<12} {p(variant, 50) * 1e6:9.1f} {p(variant, 99) * 1e6:9.1f}"
            f" {added * 1e6:13.1f} {p(variant, 50) / bare:8.3f} {per_call[variant] * 1e6:19.1f}"
        )
    cost = p("deployed", 50) - bare
    noise = abs(p("bare (A/A)", 50) - bare)
    print(f"interceptor cost per unary call: {cost * 1e6:.1f} us (A/A noise {noise * 1e6:.1f} us)")
    cpu_cost = per_call["deployed"] - per_call["bare"]
    print(f"interceptor server CPU per unary call: {cpu_cost * 1e6:.1f} us")
    playback = asyncio.run(playback_p50(args.playback_reps))
    print(
        f"as a share of the playback p50 (StreamCandles 2,000 candles, 11 indicators, direct:"
        f" {playback * 1e3:.2f} ms, this run): {cost / playback:.2%} latency,"
        f" {cpu_cost / playback:.2%} server CPU (target <= 3 %)"
    )
    print("tracing off: no interceptor added, grpc.aio.server unpatched -> nothing to measure")


if __name__ == "__main__":
    main()
