"""A Tapedeck service as deployed, for benchmarks: `python -m <module>` in its own process."""

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
async def service_process(
    module: str, *, prefix: str, directory: Path, env: dict[str, str]
) -> AsyncIterator[tuple[int, int]]:
    """Run the service with `env` (nothing of ours with `prefix`), yield its port and pid."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before timing
    log = directory / f"{module}.log"
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((prefix, "TAPEDECK_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    full = {
        **inherited,
        "TAPEDECK_DATA_DIR": str(directory),
        "TAPEDECK_LOG_LEVEL": "INFO",  # for the server's "listening" line
        f"{prefix}PORT": "0",
        **env,
    }
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, env=full, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not start:\n{log.read_text()}")
            for line in log.read_text().splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    entry = json.loads(line)
                    if entry.get("message") == "listening":
                        port = int(entry["address"].rsplit(":", 1)[1])
            await asyncio.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        await process.wait()


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
