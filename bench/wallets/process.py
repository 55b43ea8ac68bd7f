"""The wallet service as deployed: `python -m tapedeck_wallets` in its own process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bench.services import service_process


@contextlib.asynccontextmanager
async def wallets_process(
    *, database_url: str, data_dir: Path, **settings: str
) -> AsyncIterator[tuple[int, int]]:
    """Run the service with WALLETS_* `settings` (lower-case names), yield port and pid."""
    env = {
        "WALLETS_DATABASE_URL": database_url,
        "WALLETS_LIVE_ADDRESS": "",  # no live service: mismatch events stay in the outbox
        **{f"WALLETS_{name.upper()}": value for name, value in settings.items()},
    }
    async with service_process(
        "tapedeck_wallets", prefix="WALLETS_", directory=data_dir, env=env
    ) as (port, pid):
        yield port, pid
