"""Wallet benchmarks: `.venv/bin/python -m bench.wallets [--quick]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from bench.wallets.listing import run_listing
from bench.wallets.reconciling import run_reconciliation

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@asynccontextmanager
async def postgres() -> AsyncIterator[str | None]:
    """Yield a fresh PostgreSQL database URL (dropped after), or None when there is no server."""
    name = f"tapedeck_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(POSTGRES, timeout=3)
    except (OSError, asyncpg.PostgresError):
        yield None
        return
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES, timeout=3)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(quick: bool) -> None:
    """Run both benchmarks on SQLite and, when reachable, PostgreSQL."""
    logging.basicConfig(level=logging.ERROR)
    sizes = [1, 5, 20, 1000]
    counts = [5, 50] if quick else [5, 50, 100]
    # Shared 2-core machine: the load average says how much of each number is other people's work.
    print(
        f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("ListWallets, 5 balances per wallet (one page of N wallets):")
        await run_listing(f"sqlite+aiosqlite:///{root / 'list.db'}", root, sizes, "sqlite")
        async with postgres() as url:
            if url is None:
                print("  postgresql: not reachable, skipped")
            else:
                await run_listing(url, root, sizes, "postgresql")
        print("Reconciliation (naive: new client per wallet, sequential, no cache):")
        async with postgres() as url:
            await run_reconciliation(
                url or f"sqlite+aiosqlite:///{root / 'r.db'}", root, counts, latency=0.2
            )
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 100-wallet reconciliation")
    asyncio.run(main(parser.parse_args().quick))
