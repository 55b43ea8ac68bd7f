"""Ray benchmark: one sweep on the local worker pool vs the same sweep on a two-node Ray cluster.

Run: `.venv/bin/python -m bench.backtest.ray_sweep [--ticks 500000] [--runs 16] [--repeat 1]`

In the same run, on this machine: the service (in process, SQLite) with 2 local worker processes,
then with BACKTEST_EXECUTOR=ray on a Ray cluster of two single-CPU nodes started here on 127.0.0.1
(tests/backtest/ray_support.py: only those processes are ended after), first with the catalog and
results on local disk, then in a bucket of a real S3 server (moto, on 127.0.0.1, reached through a
relay here that counts the bytes each way). Each side runs the same sweep of `--runs` EMA-cross
parameter sets over `--ticks` generated trade ticks, created through CreateSweep and watched to
the end through gRPC (queue, dispatch, result files, database included). Prints each side's wall
seconds, Ray's overhead against the local pool, the per-run scheduling cost on Ray (an empty task's
round trip in a warm worker, what a run on its Ray worker's loaded data adds; a task replacing its
engine process, as a run on other data does; for comparison an empty task in a fresh Ray worker
process, as `max_calls=1` would give), and the bytes a run reads from and writes to S3. The control
plane's own limits: `control_plane.py`.
"""

from __future__ import annotations

import os

# Before Ray is imported (by the service): every Ray process of this benchmark on 127.0.0.1.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path

import ray

from bench.backtest.runs import _pool_only, write_ticks
from tapedeck_backtest.runs.ray_executor import engine_processes
from tests.backtest.ray_support import ray_cluster
from tests.s3_support import s3_server

WORKERS = 2


def _noop() -> int:
    return os.getpid()


def wait_for_nodes(address: str, count: int) -> None:
    """Wait until the cluster has `count` live nodes (the timing needs both)."""
    ray.init(address=address, log_to_driver=False)
    try:
        deadline = time.monotonic() + 120
        while len([n for n in ray.nodes() if n["Alive"]]) < count:
            assert time.monotonic() < deadline, "the Ray nodes did not all join"
            time.sleep(0.5)
    finally:
        ray.shutdown()


def fresh_process_seconds(address: str, tasks: int) -> float:
    """Return the mean wall seconds of an empty one-CPU task in a fresh process (2 in flight)."""
    ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, max_calls=1)(_noop)
        ray.get([task.remote() for _ in range(WORKERS)])  # warm the nodes
        started = time.perf_counter()
        pids = ray.get([task.remote() for _ in range(tasks)])
        assert len(set(pids)) == tasks, "every task had a process of its own"
        return (time.perf_counter() - started) * WORKERS / tasks
    finally:
        ray.shutdown()


def _fresh_engine_process() -> None:
    # Another dataset's run: the Ray worker ends its kept engine process and forks a fresh one.
    processes = engine_processes()
    processes.keep(processes.take(uuid.uuid4().hex, ()), idle_seconds=None)


def fresh_engine_seconds(address: str, tasks: int) -> float:
    """Return the mean wall seconds of a task replacing its engine process (2 in flight).

    What a run on other data than the Ray worker's engine process holds costs before its window
    loads: the old process killed, a fresh one forked from the worker's warm forkserver.
    """
    ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(_fresh_engine_process)
        ray.get([task.remote() for _ in range(WORKERS)])  # warm the nodes' workers
        started = time.perf_counter()
        ray.get([task.remote() for _ in range(tasks)])
        return (time.perf_counter() - started) * WORKERS / tasks
    finally:
        ray.shutdown()


def warm_task_seconds(address: str, tasks: int) -> float:
    """Return the mean round trip of an empty one-CPU task in an already running worker."""
    ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(_noop)
        ray.get(task.remote())  # start the worker
        started = time.perf_counter()
        for _ in range(tasks):
            ray.get(task.remote())
        return (time.perf_counter() - started) / tasks
    finally:
        ray.shutdown()


class CountingRelay:
    """A TCP relay on 127.0.0.1 to the S3 server, counting bytes each way (own thread and loop)."""

    def __init__(self, target: str) -> None:
        self._port = int(target.rsplit(":", 1)[1])
        self.read = 0  # server -> clients: what the clients downloaded
        self.written = 0  # clients -> server: what they uploaded
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.endpoint = ""

    def __enter__(self) -> CountingRelay:
        self._thread.start()
        start = asyncio.start_server(self._relay, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result()
        self.endpoint = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> None:
        self.read = self.written = 0

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        server, to_server = await asyncio.open_connection("127.0.0.1", self._port)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, downloaded: bool
        ) -> None:
            try:
                while data := await source.read(1 << 16):
                    if downloaded:
                        self.read += len(data)
                    else:
                        self.written += len(data)
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(client, to_server, False), pipe(server, to_client, True))


async def _main(ticks: int, runs: int, repeat: int) -> None:
    periods = tuple(range(5, 5 + runs))
    with (
        tempfile.TemporaryDirectory(prefix="tapedeck-bench-ray-") as tmp,
        s3_server() as s3,
        CountingRelay(s3.endpoint) as relay,
    ):
        # The service and every node reach the bucket through the relay, from their environment.
        env = {**s3.env, "AWS_ENDPOINT_URL": relay.endpoint}
        os.environ.update(env)
        prefix = uuid.uuid4().hex[:8]
        on_s3 = {"catalog_dir": s3.url(prefix, "catalog"), "results_dir": s3.url(prefix, "runs")}
        with ray_cluster(env=env) as cluster:
            root = Path(tmp)
            write_ticks(root / "raw" / "ticks.parquet", ticks)
            await asyncio.to_thread(wait_for_nodes, cluster.address, WORKERS)
            print(f"sweep: {runs} EMA-cross parameter sets x {ticks:,} trade ticks, 1-minute bars")
            sides = {
                "local": {"executor": "local"},
                "ray": {"executor": "ray", "ray_address": cluster.address},
                "ray+s3": {"executor": "ray", "ray_address": cluster.address, **on_s3},
            }
            walls: dict[str, list[float]] = {name: [] for name in sides}
            transfer = types.SimpleNamespace(read=0, written=0)
            for attempt in range(repeat):
                for name, settings in sides.items():
                    load = os.getloadavg()[0]
                    wall, _, cpu, run_seconds = await _pool_only(
                        root,
                        WORKERS,
                        periods,
                        attempt,
                        label="-s3" if name == "ray+s3" else "",
                        before_sweep=relay.reset,
                        **settings,  # type: ignore[arg-type]
                    )
                    if name == "ray+s3":
                        transfer.read, transfer.written = relay.read, relay.written
                    walls[name].append(wall)
                    print(
                        f"{name:6} ({WORKERS} {'processes' if name == 'local' else 'nodes'}):"
                        f" {wall:7.2f} s ({ticks * runs / wall:,.0f} ticks/s,"
                        f" engine {sum(run_seconds) / runs:.2f} s per run,"
                        f" service process CPU {cpu:.2f} s, load average before {load:.2f})"
                    )
            local = min(walls["local"])
            for name in ("ray", "ray+s3"):
                remote = min(walls[name])
                print(
                    f"{name} overhead vs the local pool: {(remote / local - 1) * 100:+.1f}%"
                    f" (best of each; {(remote - local) * WORKERS / runs:+.3f} s per run)"
                )
                if repeat > 1:
                    ratio = statistics.median(walls[name]) / statistics.median(walls["local"])
                    print(f"{'':{len(name)}} median: {(ratio - 1) * 100:+.1f}%")
            warm = await asyncio.to_thread(warm_task_seconds, cluster.address, 50)
            fresh = await asyncio.to_thread(fresh_process_seconds, cluster.address, 16)
            engine = await asyncio.to_thread(fresh_engine_seconds, cluster.address, 16)
            print(f"per run, an empty task's round trip in a warm Ray worker: {warm * 1e3:.1f} ms")
            print(
                f"per run on other data, a fresh engine process in a warm Ray worker: {engine:.3f} s"
                f" (an empty task in a fresh Ray worker process, max_calls=1: {fresh:.3f} s)"
            )
            catalog = sum(
                f.stat().st_size
                for f in (root / f"data-{WORKERS}-0-ray" / "catalog").rglob("*")
                if f.is_file()
            )
            print(f"catalog: {catalog / 1e6:.1f} MB ({catalog / ticks:.1f} B/tick)")
            print(
                f"per run from S3: {transfer.read / runs / 1e6:.1f} MB read"
                f" ({transfer.read / runs / catalog:.2f}x the catalog),"
                f" {transfer.written / runs / 1e6:.2f} MB written (results)"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(_main(args.ticks, args.runs, args.repeat))


if __name__ == "__main__":
    main()
