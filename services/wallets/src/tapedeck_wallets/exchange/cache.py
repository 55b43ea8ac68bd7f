"""Exchange balances cached per account for a TTL, with single-flight fetches; Redis when shared."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from tapedeck_wallets.exchange.domain import ExchangeAccount, ExchangeBalance, ExchangeSnapshot
from tapedeck_wallets.exchange.metrics import CACHE_HIT, CACHE_MISS

logger = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[Mapping[str, ExchangeBalance]]]

# Delete the lock only if it is still ours (it may have expired and been taken by another replica).
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _age(snapshot: ExchangeSnapshot) -> float:
    return time.time() - snapshot.fetch_time.timestamp()


def _now() -> datetime:
    return datetime.now(UTC)


class SnapshotStore(Protocol):
    """Where snapshots live and how one fetch is elected among concurrent callers."""

    async def read(self, key: str) -> ExchangeSnapshot | None:
        """Return the stored snapshot, if any."""

    async def read_many(self, keys: Sequence[str]) -> list[ExchangeSnapshot | None]:
        """Return the stored snapshots of several keys, in order, in one read."""

    async def load(self, key: str, fetch: Fetch, max_age: float) -> ExchangeSnapshot:
        """Fetch (or wait for another fetcher) and store a fresh snapshot."""

    async def close(self) -> None:
        """Release connections."""


class MemoryStore:
    """Snapshots in this process."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, ExchangeSnapshot] = {}

    async def read(self, key: str) -> ExchangeSnapshot | None:
        """Return the stored snapshot unless it outlived the TTL."""
        snapshot = self._entries.get(key)
        if snapshot is not None and _age(snapshot) > self._ttl:
            del self._entries[key]
            return None
        return snapshot

    async def read_many(self, keys: Sequence[str]) -> list[ExchangeSnapshot | None]:
        """Return each key's snapshot unless it outlived the TTL."""
        return [await self.read(key) for key in keys]

    async def load(self, key: str, fetch: Fetch, max_age: float) -> ExchangeSnapshot:
        """Fetch and store."""
        snapshot = ExchangeSnapshot(balances=dict(await fetch()), fetch_time=_now())
        if self._ttl > 0:
            self._entries[key] = snapshot
        return snapshot

    async def close(self) -> None:
        """Forget every snapshot."""
        self._entries.clear()


def _encode(snapshot: ExchangeSnapshot) -> str:
    return json.dumps(
        {
            "t": snapshot.fetch_time.timestamp(),
            "b": {a: [str(b.available), str(b.hold)] for a, b in snapshot.balances.items()},
        }
    )


def _decode(raw: bytes | str) -> ExchangeSnapshot:
    body = json.loads(raw)
    return ExchangeSnapshot(
        balances={
            asset: ExchangeBalance(asset=asset, available=Decimal(free), hold=Decimal(held))
            for asset, (free, held) in body["b"].items()
        },
        fetch_time=datetime.fromtimestamp(body["t"], UTC),
    )


class RedisStore:
    """Snapshots in Redis, shared by replicas; a short lock elects one fetcher across them."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str, ttl: float, lock_seconds: float
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl
        self._lock_seconds = lock_seconds
        self._token = uuid.uuid4().hex

    @classmethod
    async def connect(cls, url: str, *, prefix: str, ttl: float, lock_seconds: float) -> RedisStore:
        """Connect and check the server answers."""
        client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            await client.ping()
        except (RedisError, OSError):
            await client.aclose()
            raise
        return cls(client, prefix=prefix, ttl=ttl, lock_seconds=lock_seconds)

    def _key(self, key: str, kind: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    async def read(self, key: str) -> ExchangeSnapshot | None:
        """Return the shared snapshot, if any (Redis expires it after the TTL)."""
        raw = await self._redis.get(self._key(key, "balances"))
        return None if raw is None else _decode(raw)

    async def read_many(self, keys: Sequence[str]) -> list[ExchangeSnapshot | None]:
        """Return the shared snapshots of several keys in one MGET."""
        if not keys:
            return []
        raws = await self._redis.mget([self._key(key, "balances") for key in keys])
        return [None if raw is None else _decode(raw) for raw in raws]

    async def load(self, key: str, fetch: Fetch, max_age: float) -> ExchangeSnapshot:
        """Fetch under the shared lock, or wait for the replica holding it to store its result."""
        lock = self._key(key, "lock")
        token = f"{self._token}:{uuid.uuid4().hex}"
        started = time.time()
        while True:
            if await self._redis.set(lock, token, nx=True, px=int(self._lock_seconds * 1000)):
                try:
                    # A replica may have stored a fetch and released the lock since we read
                    # the cache: that answer is as fresh as ours would be.
                    shared = await self.read(key)
                    if shared is not None and shared.fetch_time.timestamp() >= started - max_age:
                        return replace(shared, from_cache=True)
                    snapshot = ExchangeSnapshot(balances=dict(await fetch()), fetch_time=_now())
                    if self._ttl > 0:
                        await self._redis.set(
                            self._key(key, "balances"),
                            _encode(snapshot),
                            px=max(1, int(self._ttl * 1000)),
                        )
                    return snapshot
                finally:
                    await self._redis.eval(_RELEASE, 1, lock, token)
            await asyncio.sleep(0.02)
            shared = await self.read(key)
            # Another replica's fetch that began after we asked is as fresh as our own would be.
            if shared is not None and shared.fetch_time.timestamp() >= started - max_age:
                return replace(shared, from_cache=True)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


class BalanceCache:
    """Per-account snapshots with a TTL; concurrent callers in this process share one fetch."""

    def __init__(self, store: SnapshotStore, *, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._inflight: dict[str, asyncio.Task[ExchangeSnapshot]] = {}

    async def get(
        self, account: ExchangeAccount, *, max_age: float | None, fetch: Fetch
    ) -> ExchangeSnapshot:
        """Return balances no older than `max_age` (default and cap: the TTL)."""
        limit = self._ttl if max_age is None else min(max_age, self._ttl)
        key = account.cache_key()
        try:
            cached = await self._store.read(key)
        except (RedisError, OSError) as error:
            logger.warning("balance cache unreadable, fetching directly: %s", type(error).__name__)
            cached = None
        if cached is not None and _age(cached) <= limit:
            CACHE_HIT.inc()
            return replace(cached, from_cache=True)
        CACHE_MISS.inc()
        # A fetch already in flight is joined even with max_age zero: it was sent at most one
        # exchange round trip ago, and a second call would only add load to the same answer.
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, fetch, limit), name=f"balances {key}")
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one caller giving up must not cancel the fetch the others are waiting on.
        return await asyncio.shield(task)

    async def cached(
        self, accounts: Sequence[ExchangeAccount], *, max_age: float | None
    ) -> dict[ExchangeAccount, ExchangeSnapshot]:
        """Return the accounts whose cached balances are fresh enough, read in one go."""
        limit = self._ttl if max_age is None else min(max_age, self._ttl)
        if limit <= 0 or not accounts:
            return {}
        try:
            snapshots = await self._store.read_many([a.cache_key() for a in accounts])
        except (RedisError, OSError) as error:
            logger.warning("balance cache unreadable, fetching directly: %s", type(error).__name__)
            return {}
        fresh = {}
        for account, snapshot in zip(accounts, snapshots, strict=True):
            if snapshot is not None and _age(snapshot) <= limit:
                fresh[account] = ExchangeSnapshot(
                    balances=snapshot.balances, fetch_time=snapshot.fetch_time, from_cache=True
                )
        # The accounts not here go on to `get`, which counts them once, as a hit or a miss.
        CACHE_HIT.inc(len(fresh))
        return fresh

    def _forget(self, key: str, task: asyncio.Task[ExchangeSnapshot]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not reported as lost

    async def _load(self, key: str, fetch: Fetch, max_age: float) -> ExchangeSnapshot:
        try:
            return await self._store.load(key, fetch, max_age)
        except (RedisError, OSError) as error:
            logger.warning("balance cache unusable, fetching directly: %s", type(error).__name__)
            return ExchangeSnapshot(balances=dict(await fetch()), fetch_time=_now())

    async def close(self) -> None:
        """Cancel fetches in flight and release the store."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._store.close()
