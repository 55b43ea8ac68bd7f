"""The wallet service as deployed: `python -m tapedeck_wallets` in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def wallets_process(
    *, database_url: str, data_dir: Path, **settings: str
) -> AsyncIterator[int]:
    """Run the service with WALLETS_* `settings` (lower-case names), yield its port, stop it."""
    log = data_dir / "wallets.log"
    env = {
        # Nothing of the caller's configuration leaks in (a REDIS_URL, a tokens file).
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WALLETS_", "TAPEDECK_"))
            and k not in ("REDIS_URL", "DATABASE_URL")
        },
        "WALLETS_DATABASE_URL": database_url,
        "WALLETS_PORT": "0",
        "TAPEDECK_DATA_DIR": str(data_dir),
        "TAPEDECK_LOG_LEVEL": "INFO",  # for the server's "listening" line
        **{f"WALLETS_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tapedeck_wallets", env=env, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wallet service did not start:\n{log.read_text()}")
            for line in log.read_text().splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    entry = json.loads(line)
                    if entry.get("message") == "listening":
                        port = int(entry["address"].rsplit(":", 1)[1])
            await asyncio.sleep(0.05)
        yield port
    finally:
        process.terminate()
        await process.wait()
