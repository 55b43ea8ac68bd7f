"""The whole stack at rest after `make run`: `.venv/bin/python -m bench.idle`.

Starts `tapedeck --demo` (what `make run` runs) on free ports in a temporary directory, waits
until the demo is seeded, its runs have ended and every service answers SERVING, lets it settle,
then measures over `--seconds`:
- CPU seconds of every process of the stack (launcher, exchange emulator, services, backtest
  workers, front, Envoy; children that exited included) as a share of one core;
- RSS and PSS of each (forked workers share pages: PSS splits them, so its sum is what the stack
  holds) and the totals;
- database transactions: on PostgreSQL (`--variants postgres`, a database created for the run
  and dropped after, at TAPEDECK_BENCH_POSTGRES) the database's own commit and rollback counters;
  on SQLite (the `make run` default) fcntl locks on the WAL index seen by strace over a second
  window of the same length, and changes of the database files.
Each figure is printed against issue 14's targets: 0 transactions/s, < 1 % of one core,
<= 1.2 GB for the whole stack.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.idle import database, processes
from bench.idle.stack import demo_stack, wait_until_idle

TARGET_CPU_PERCENT = 1.0
TARGET_MEMORY_MB = 1200.0
TARGET_TRANSACTIONS_PER_SECOND = 0.0


@dataclass(frozen=True)
class Outcome:
    """What one variant measured."""

    cpu_percent: float
    rss_mb: float
    pss_mb: float
    transactions_per_second: float


def _verdict(ok: bool) -> str:
    return "ok" if ok else "OVER TARGET"


def report_processes(
    before: dict[int, processes.Reading], after: dict[int, processes.Reading], seconds: float
) -> tuple[float, float, float]:
    """Print each process's CPU share and memory; return the CPU %, RSS and PSS totals."""
    print(f"  {'process':<26}{'pid':>8}{'CPU s':>9}{'% core':>8}{'RSS MB':>9}{'PSS MB':>9}")
    cpu_total = 0.0
    for pid, now in sorted(after.items(), key=lambda item: (item[1].name, item[0])):
        then = before.get(pid)
        used = now.cpu - (then.cpu if then is not None else 0.0)
        reaped = now.reaped_cpu - (then.reaped_cpu if then is not None else 0.0)
        cpu_total += used + reaped
        note = "" if then is not None else "  (started in the window)"
        if reaped > 0:
            note += f"  (+{reaped:.2f} s of exited children)"
        print(
            f"  {now.name:<26}{pid:>8}{used:>9.2f}{100 * used / seconds:>8.2f}"
            f"{now.rss_mb:>9.0f}{now.pss_mb:>9.0f}{note}"
        )
    for pid in sorted(set(before) - set(after)):
        print(f"  {before[pid].name:<26}{pid:>8}  exited in the window")
    rss = sum(r.rss_mb for r in after.values())
    pss = sum(r.pss_mb for r in after.values())
    return 100 * cpu_total / seconds, rss, pss


async def run_variant(variant: str, args: argparse.Namespace) -> Outcome:
    """Start the stack on `variant`'s database, wait for rest, measure, print, stop."""
    print(f"\n== {variant}")
    with tempfile.TemporaryDirectory(prefix="tapedeck-idle-") as tmp:
        async with contextlib.AsyncExitStack() as stack_context:
            database_url = None
            watch = None
            if variant == "postgres":
                name, database_url = await stack_context.enter_async_context(
                    database.postgres_database()
                )
                watch = database.PostgresWatch(name)
            stack = await stack_context.enter_async_context(
                demo_stack(Path(tmp), database_url=database_url)
            )
            started = time.monotonic()
            await wait_until_idle(stack, within=args.ready_timeout)
            print(f"  seeded, runs ended, all SERVING after {time.monotonic() - started:.0f} s")
            await asyncio.sleep(args.settle)
            files = asyncio.create_task(database.file_changes(stack.data_dir, args.seconds))
            watching = None if watch is None else asyncio.create_task(watch.watch(args.seconds))
            before = processes.snapshot(stack.pid)
            await asyncio.sleep(args.seconds)
            after = processes.snapshot(stack.pid)
            changes = await files
            if watching is not None:
                await watching
            locks: collections.Counter[str] | None = None
            if variant == "sqlite":
                users = database.sqlite_users(list(after))
                try:
                    locks = await database.sqlite_transactions(
                        users, args.seconds, Path(tmp) / "strace.out"
                    )
                except RuntimeError as error:
                    print(f"  (no SQLite transaction count: {error})")
    print(f"  over {args.seconds:g} s at rest:")
    cpu, rss, pss = report_processes(before, after, args.seconds)
    if watch is not None:
        rate = watch.transactions / args.seconds
        print(f"  PostgreSQL transactions (pg_stat_database): {watch.transactions}")
        by_app = dict(watch.state_changes) or "none"
        print(f"  connection state changes seen in pg_stat_activity, by application: {by_app}")
        others = collections.Counter(watch.others.values())
        print(f"  PostgreSQL's own backends seen in the database: {dict(others) or 'none'}")
        print(f"  tables autovacuum vacuumed or analyzed in the window: {watch.autovacuumed}")
    elif locks is not None:
        rate = sum(locks.values()) / args.seconds
        print(
            f"  SQLite WAL-index locks (>= 1 per transaction) over a second {args.seconds:g} s:"
            f" {dict(locks) or 'none'}"
        )
    else:
        rate = float("nan")
    print(f"  database file changes (size or mtime): {dict(changes) or 'none'}")
    print(
        f"  CPU {cpu:.2f} % of one core (target < {TARGET_CPU_PERCENT:g} %): {_verdict(cpu < TARGET_CPU_PERCENT)}"
    )
    print(
        f"  memory RSS {rss:,.0f} MB, PSS {pss:,.0f} MB (target <= {TARGET_MEMORY_MB:,.0f} MB):"
        f" RSS {_verdict(rss <= TARGET_MEMORY_MB)}, PSS {_verdict(pss <= TARGET_MEMORY_MB)}"
    )
    print(
        f"  database transactions {rate:.2f}/s (target {TARGET_TRANSACTIONS_PER_SECOND:g}/s):"
        f" {_verdict(rate <= TARGET_TRANSACTIONS_PER_SECOND)}"
    )
    return Outcome(cpu, rss, pss, rate)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each window")
    parser.add_argument(
        "--settle",
        type=float,
        default=40.0,
        help="seconds of rest before measuring (past BACKTEST_WORKER_IDLE_ENGINE_SECONDS)",
    )
    parser.add_argument(
        "--variants",
        default="sqlite,postgres",
        help="comma-separated: sqlite (the make-run default), postgres",
    )
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    args = parser.parse_args()
    outcomes = {v: await run_variant(v, args) for v in args.variants.split(",") if v}
    print("\nsummary (targets: CPU < 1 % of one core, memory <= 1,200 MB, 0 transactions/s)")
    for variant, o in outcomes.items():
        print(
            f"  {variant:<9} CPU {o.cpu_percent:5.2f} %   RSS {o.rss_mb:6,.0f} MB   PSS {o.pss_mb:6,.0f} MB"
            f"   transactions {o.transactions_per_second:.2f}/s"
        )


if __name__ == "__main__":
    asyncio.run(main())
