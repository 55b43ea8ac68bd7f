"""Pooled exchange clients, the balance cache's TTL, max_cache_age and single-flight fetches."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_dev.emulator import Fault, FaultKind
from tests.support import eventually, missing_dependency
from tests.wallets.harness import running_service

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _redis_or_skip() -> None:
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except OSError as error:
        missing_dependency(f"Redis at {REDIS_URL} ({error})")
    finally:
        await client.aclose()


async def test_concurrent_reconciliations_share_one_fetch_per_wallet(service, exchange):
    # A generous timeout: on a loaded machine 100 jobs must not turn into timeouts.
    async with service(exchange_timeout_seconds=15) as svc:
        wallets = [
            await svc.create_wallet(
                f"w{i}", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("1", "0")}
            )
            for i in range(3)
        ]
        exchange.emulator.inject(Fault(FaultKind.LATENCY, seconds=0.3))
        started = await asyncio.gather(*(svc.reconcile() for _ in range(100)))
        reports = [await svc.finished(r.name, within=60) for r in started]
    assert all(r.state == wallets_pb2.RECONCILIATION_STATE_SUCCEEDED for r in reports)
    assert all(r.matched_count == 3 for r in reports)
    for wallet in wallets:
        assert exchange.emulator.first_pages[wallet.account_ref] == 1


async def test_cached_balances_are_reused_until_the_ttl_or_max_cache_age(service, exchange):
    async with service(balance_cache_ttl_seconds=0.5) as svc:
        wallet = await svc.create_wallet("w", exchange_balances={"BTC": ("1", "0")})
        pid = wallet.account_ref
        first = (await svc.finished((await svc.reconcile()).name)).results[0]
        second = (await svc.finished((await svc.reconcile()).name)).results[0]
        assert (first.from_cache, second.from_cache) == (False, True)
        assert second.fetch_time == first.fetch_time
        assert exchange.emulator.first_pages[pid] == 1
        # max_cache_age zero always asks the exchange.
        fresh = (await svc.finished((await svc.reconcile(max_cache_age=0)).name)).results[0]
        assert not fresh.from_cache
        assert exchange.emulator.first_pages[pid] == 2

        async def refetched_after_ttl() -> bool:
            result = (await svc.finished((await svc.reconcile()).name)).results[0]
            return not result.from_cache

        await eventually(refetched_after_ttl, timeout=5, interval=0.1, message="TTL expiry")


async def test_max_cache_age_above_the_ttl_never_serves_older_data(service, exchange):
    async with service(balance_cache_ttl_seconds=60) as svc:
        wallet = await svc.create_wallet("w", exchange_balances={"BTC": ("1", "0")})
        await svc.finished((await svc.reconcile()).name)
        exchange.emulator.set_balances(wallet.account_ref, {"BTC": ("2", "0")})
        cached = (await svc.finished((await svc.reconcile(max_cache_age=3600)).name)).results[0]
        fresh = (await svc.finished((await svc.reconcile(max_cache_age=0)).name)).results[0]
    assert cached.from_cache
    assert cached.diffs[0].exchange_total == "1"
    assert fresh.diffs[0].exchange_total == "2"


async def test_the_pool_keeps_one_client_per_account_and_closes_them(service, exchange):
    async with service(balance_cache_ttl_seconds=0) as svc:
        shared = exchange.portfolio({"BTC": ("1", "0")})
        for name in ("a", "b"):
            await svc.create_wallet(name, portfolio=shared)
        await svc.create_wallet("c", exchange_balances={"ETH": ("1", "0")})
        for _ in range(3):
            await svc.finished((await svc.reconcile()).name)
        gateway = svc.reconciler.gateway
        clients = gateway.clients
        assert gateway.stats.clients_created == 2
        # Without a cache, each job still fetches a shared account once for both its wallets.
        assert gateway.stats.fetches == 6
        assert exchange.emulator.requests[shared[0]] == 3
    assert gateway.client_count == 0
    assert all(not c.is_open for c in clients)


async def test_redis_cache_is_shared_by_two_service_instances(
    database_url, data_dir, tmp_path, exchange
):
    await _redis_or_skip()
    settings = {
        "exchange_timeout_seconds": 15,
        "redis_url": REDIS_URL,
        "redis_key_prefix": f"tapedeck-test:{uuid.uuid4().hex}:",
    }
    async with (
        running_service(
            database_url=database_url, data_dir=data_dir, exchange=exchange, **settings
        ) as one,
        running_service(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'two.db'}",
            data_dir=tmp_path,
            exchange=exchange,
            **settings,
        ) as two,
    ):
        portfolios = [exchange.portfolio({"BTC": ("1", "0")}) for _ in range(3)]
        for i, portfolio in enumerate(portfolios):
            for svc in (one, two):
                await svc.create_wallet(f"w{i}", portfolio=portfolio, balances={"BTC": ("1", "0")})
        exchange.emulator.inject(Fault(FaultKind.LATENCY, seconds=0.3))
        started = await asyncio.gather(*(svc.reconcile() for _ in range(50) for svc in (one, two)))
        reports = [
            await (one if i % 2 == 0 else two).finished(r.name, within=60)
            for i, r in enumerate(started)
        ]
    errors = [res.error_message for r in reports for res in r.results if res.error_message]
    assert errors == []
    assert all(r.matched_count == 3 for r in reports)
    for pid, _ in portfolios:
        assert exchange.emulator.first_pages[pid] == 1
    assert any(res.from_cache for r in reports for res in r.results)


async def test_cache_hits_misses_and_exchange_calls_are_counted(service, exchange):
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def counts() -> tuple[float, float, float]:
        return (
            sample("tapedeck_balance_cache_lookups_total", result="hit"),
            sample("tapedeck_balance_cache_lookups_total", result="miss"),
            sample("tapedeck_exchange_call_duration_seconds_count", outcome="ok"),
        )

    async with service(balance_cache_ttl_seconds=60) as svc:
        await svc.create_wallet("w", exchange_balances={"BTC": ("1", "0")})
        before = counts()
        await svc.finished((await svc.reconcile()).name)
        await svc.finished((await svc.reconcile()).name)
        after = counts()

    hits, misses, calls = (a - b for a, b in zip(after, before, strict=True))
    assert (hits, misses, calls) == (1, 1, 1)
