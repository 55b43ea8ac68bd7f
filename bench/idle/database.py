"""Database work seen from outside the services.

PostgreSQL: the database's own counters (`pg_stat_database` commits + rollbacks) and, to name
who did the work, `pg_stat_activity` sampled for changes of each connection's state. Both are read
over a connection to the `postgres` database, so the bench's own queries are not counted.

SQLite: every transaction, read or write, takes a lock on the database's `-shm` file (WAL mode)
with fcntl, so `strace` attached to the services counts them exactly; changes of the database
files' size and mtime show the writes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.live.__main__ import ADMIN_DSN

# A backend holds its counters up to 10 s (PGSTAT_IDLE_INTERVAL) before pg_stat_database shows them.
STATS_FLUSH_SECONDS = 11.0
SAMPLE_SECONDS = 0.1


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[tuple[str, str]]:
    """Create a database for one run and yield its name and URL; drop it after."""
    name = f"tapedeck_bench_idle_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield name, f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class PostgresWatch:
    """Transactions of one database over a window, and which connections were active."""

    database: str
    transactions: int = 0
    state_changes: collections.Counter[str] = field(default_factory=collections.Counter)
    others: dict[int, str] = field(default_factory=dict)
    """Backends of PostgreSQL itself seen in the database (autovacuum), by pid: their
    transactions count in pg_stat_database too."""
    autovacuumed: int = 0
    """Tables autovacuum vacuumed or analyzed during the window (a transaction each, at least)."""

    async def transactions_now(self, connection: asyncpg.Connection) -> int:
        """Return the database's commits + rollbacks as pg_stat_database shows them now."""
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        value = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            self.database,
        )
        return int(value)

    async def watch(self, seconds: float) -> None:
        """Count the window's transactions and each application's connection state changes."""
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            before = await self.transactions_now(connection)
            seen: dict[int, object] = {}
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                rows = await connection.fetch(
                    "SELECT pid, application_name, state_change, backend_type"
                    " FROM pg_stat_activity WHERE datname = $1",
                    self.database,
                )
                for row in rows:
                    if row["backend_type"] != "client backend":
                        self.others[row["pid"]] = row["backend_type"]
                        continue
                    if row["pid"] in seen and seen[row["pid"]] != row["state_change"]:
                        self.state_changes[row["application_name"] or "?"] += 1
                    seen[row["pid"]] = row["state_change"]
                await asyncio.sleep(SAMPLE_SECONDS)
            await asyncio.sleep(STATS_FLUSH_SECONDS)
            self.transactions = await self.transactions_now(connection) - before
        finally:
            await connection.close()
        # Read last, from inside the database: this connection's own queries come after.
        inside = await asyncpg.connect(f"{ADMIN_DSN.rsplit('/', 1)[0]}/{self.database}")
        try:
            self.autovacuumed = await inside.fetchval(
                "SELECT count(*) FROM pg_stat_all_tables WHERE"
                " greatest(last_autovacuum, last_autoanalyze) > now() - make_interval(secs => $1)",
                seconds + STATS_FLUSH_SECONDS,
            )
        finally:
            await inside.close()


def database_files(data_dir: Path) -> list[Path]:
    """Return the stack's SQLite files (databases, WAL and shared-memory files)."""
    return sorted(p for p in data_dir.rglob("*.db*") if p.is_file())


async def file_changes(data_dir: Path, seconds: float) -> collections.Counter[str]:
    """Count how often each SQLite file's size or mtime changed over the window."""
    changes: collections.Counter[str] = collections.Counter()
    last: dict[Path, tuple[int, int]] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        for path in await asyncio.to_thread(database_files, data_dir):
            with contextlib.suppress(OSError):
                stat = path.stat()
                now = (stat.st_size, stat.st_mtime_ns)
                if path in last and last[path] != now:
                    changes[path.name] += 1
                last[path] = now
        await asyncio.sleep(SAMPLE_SECONDS)
    return changes


_LOCK = re.compile(r"fcntl\(\d+<[^>]*?([^/>]+\.db)-shm>, F_SETLKW?, \{l_type=F_(RD|WR)LCK")


def sqlite_users(pids: list[int]) -> list[int]:
    """Return the processes that have a SQLite database open."""
    users = []
    for pid in pids:
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{pid}/fd")
            if any(str(fd.readlink()).endswith(".db") for fd in fds.iterdir()):
                users.append(pid)
    return users


async def sqlite_transactions(
    pids: list[int], seconds: float, log: Path
) -> collections.Counter[str]:
    """Count shared-memory lock acquisitions (one or more per transaction) per database file."""
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("strace is not installed")
    arguments = [strace, "-f", "-qq", "-y", "-e", "trace=fcntl", "-o", str(log)]
    for pid in pids:
        arguments += ["-p", str(pid)]
    process = await asyncio.create_subprocess_exec(
        *arguments, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    await asyncio.sleep(seconds)
    process.send_signal(signal.SIGINT)
    _, error = await process.communicate()
    counts = await asyncio.to_thread(_count_locks, log)
    if counts is None:
        raise RuntimeError(f"strace could not attach: {error.decode(errors='replace').strip()}")
    return counts


def _count_locks(log: Path) -> collections.Counter[str] | None:
    if not log.exists():
        return None
    counts: collections.Counter[str] = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        found = _LOCK.search(line)
        if found is not None:
            counts[found.group(1)] += 1
    return counts
