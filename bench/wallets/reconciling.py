"""Reconciliation: Tapedeck (pooled clients, bounded concurrency, cache) vs the old way.

The service runs in its own process, as deployed; the emulated exchange and the client here.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import grpc

from bench.services import cpu_seconds
from bench.wallets.process import wallets_process
from bench.wallets.timing import ms
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_dev.emulator import CoinbaseEmulator, Fault, FaultKind
from tapedeck_wallets.exchange.coinbase import CoinbaseClient
from tapedeck_wallets.exchange.domain import ExchangeAccount
from tapedeck_wallets.reconciliations.domain import compare

BATCH = 1000  # max_results_per_message for batched watching
WARM_RUNS = 31
BALANCES = {"BTC": ("1.5", "0.25"), "ETH": ("10.123456789012345678", "0"), "USD": ("1000", "0")}


async def naive_reconcile(
    emulator: CoinbaseEmulator, accounts: list[tuple[str, str, str]]
) -> float:
    """The replaced endpoint: a new exchange client per wallet, one after another, no cache.

    It is kinder than the original, which also loaded markets on every new client (1-3 s cold).
    """
    begun = time.perf_counter()
    for pid, key_name, pem in accounts:
        client = CoinbaseClient(
            account=ExchangeAccount("coinbase", pid, "K"),
            key_name=key_name,
            private_key=pem,
            api_url=emulator.base_url,
            timeout=30,
        )
        try:
            compare(stored={}, exchange=await client.fetch_balances(), threshold=Decimal(0))
        finally:
            await client.close()
    return time.perf_counter() - begun


async def _reconcile_once(
    stub: wallets_pb2_grpc.WalletServiceStub, names: list[str], per_message: int, *, watch: bool
) -> tuple[float, int]:
    """Reconcile as a client does, until it holds every result; return the time and matches.

    The report comes back done, with its results, when the cache held every balance; a client
    reads it there, or (`watch`) follows WatchReconciliation regardless, as for a running job.
    """
    begun = time.perf_counter()
    started = await stub.ReconcileWallets(wallets_pb2.ReconcileWalletsRequest(wallets=names))
    final = started.reconciliation
    if watch or len(final.results) < len(names):
        async for update in stub.WatchReconciliation(
            wallets_pb2.WatchReconciliationRequest(
                name=final.name, max_results_per_message=per_message
            )
        ):
            if update.WhichOneof("event") == "reconciliation":
                final = update.reconciliation
    elapsed = time.perf_counter() - begun
    assert final.state == wallets_pb2.RECONCILIATION_STATE_SUCCEEDED
    assert len(final.results) == len(names)
    assert final.error_count == 0, [r.error_message for r in final.results if r.error_message]
    return elapsed, final.matched_count


def _p50(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


async def run_reconciliation(
    database_url: str, data_dir: Path, counts: list[int], latency: float
) -> None:
    """Print naive, cold and warm times per wallet count, and the ratios."""
    emulator = await CoinbaseEmulator().start()
    try:
        emulator.inject(Fault(FaultKind.LATENCY, seconds=latency))
        for count in counts:
            secrets = {}
            accounts = []
            for i in range(count):
                pid, key = emulator.add_portfolio(BALANCES)
                secrets[f"KEY_{count}_{i}"] = key.as_secret()
                accounts.append((pid, key.name, key.private_key_pem))
            secrets_file = data_dir / f"secrets-{count}.json"
            secrets_file.write_text(json.dumps(secrets))
            naive = await naive_reconcile(emulator, accounts)
            url = (
                database_url
                if "sqlite" not in database_url
                else (f"sqlite+aiosqlite:///{data_dir / f'reconcile-{count}.db'}")
            )
            async with (
                wallets_process(
                    database_url=url,
                    data_dir=data_dir,
                    coinbase_api_url=emulator.base_url,
                    secrets_file=str(secrets_file),
                ) as (port, service_pid),
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            ):
                stub = wallets_pb2_grpc.WalletServiceStub(channel)
                names = []
                for i, (pid, _, _) in enumerate(accounts):
                    created = await stub.CreateWallet(
                        wallets_pb2.CreateWalletRequest(
                            wallet=wallets_pb2.Wallet(
                                display_name=f"desk-{count}-{i:04d}",
                                exchange="coinbase",
                                account_ref=pid,
                                credentials_ref=f"KEY_{count}_{i}",
                                balances=[
                                    wallets_pb2.Balance(asset=a, available=f, hold=h)
                                    for a, (f, h) in BALANCES.items()
                                ],
                            )
                        )
                    )
                    names.append(created.wallet.name)
                cold, matched = await _reconcile_once(stub, names, BATCH, watch=False)
                # Warm: every balance is in the cache, so the report comes back done. Read from
                # the response; or watched anyway, batched (as the browser asks) or one result a
                # message (the default).
                ways = {"read": (BATCH, False), "batched": (BATCH, True), "single": (1, True)}
                warm: dict[str, list[float]] = {way: [] for way in ways}
                # One way after the other, so the service's CPU for the reads is theirs alone
                # (a watch's stream is still being torn down when the next call starts).
                service_cpu = 0.0
                for way, (per_message, watch) in ways.items():
                    used = cpu_seconds(service_pid)
                    for _ in range(WARM_RUNS):
                        elapsed, _ = await _reconcile_once(stub, names, per_message, watch=watch)
                        warm[way].append(elapsed)
                    if way == "read":
                        service_cpu = cpu_seconds(service_pid) - used
            assert matched == count
            read = _p50(warm["read"])
            print(
                f"  {count:4d} wallets @ {latency * 1000:.0f} ms: naive {ms(naive)}"
                f" | tapedeck cold {ms(cold)} (x{naive / cold:.1f})"
                f" | warm p50 {ms(read)} (x{naive / read:.0f}), best {ms(min(warm['read']))}"
                f", service CPU {ms(service_cpu / WARM_RUNS)}"
                f" | warm, watched p50 {ms(_p50(warm['batched']))}"
                f", one result a message {ms(_p50(warm['single']))}"
            )
    finally:
        await emulator.stop()
