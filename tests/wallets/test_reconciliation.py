"""Reconciliation as a background job against the emulated exchange."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_common.database import session_factory
from tapedeck_common.notify_repository import announce
from tapedeck_dev.emulator import Fault, FaultKind
from tapedeck_wallets.models import ReconciliationRow
from tapedeck_wallets.reconciliations import servicer as servicer_module
from tapedeck_wallets.reconciliations.repository import JOB_STARTED_CHANNEL
from tapedeck_wallets.reconciliations.service import ABANDONED, STOPPED
from tests.support import eventually, field_violations
from tests.wallets.harness import running_service
from tests.wallets.test_list_statements import counted_statements

SUCCEEDED = wallets_pb2.RECONCILIATION_STATE_SUCCEEDED
FAILED = wallets_pb2.RECONCILIATION_STATE_FAILED
MATCHED = wallets_pb2.WALLET_STATUS_MATCHED
MISMATCHED = wallets_pb2.WALLET_STATUS_MISMATCHED
EXCHANGE_ERROR = wallets_pb2.WALLET_STATUS_EXCHANGE_ERROR


def _diffs(result: wallets_pb2.WalletReconciliation) -> dict[str, tuple[str, str, str, bool]]:
    return {
        d.asset: (d.stored_total, d.exchange_total, d.difference, d.beyond_threshold)
        for d in result.diffs
    }


async def _matched_wallets(svc, count: int) -> list[str]:
    """Create `count` wallets holding on the exchange exactly what is stored; return names."""
    return [
        (
            await svc.create_wallet(
                f"w{i}", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("1", "0")}
            )
        ).name
        for i in range(count)
    ]


def _stored(wallet: wallets_pb2.Wallet) -> dict[str, tuple[str, str]]:
    return {b.asset: (b.available, b.hold) for b in wallet.balances}


async def test_reconciliation_reports_matched_and_mismatched_wallets(service):
    async with service() as svc:
        same = await svc.create_wallet(
            "same",
            balances={"ETH": ("10.123456789012345678", "0")},
            exchange_balances={"ETH": ("10.123456789012345678", "0"), "DOGE": ("0", "0")},
        )
        close = await svc.create_wallet(
            "close", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("1.00000001", "0")}
        )
        off = await svc.create_wallet(
            "off",
            balances={"BTC": ("1.5", "0"), "USD": ("10", "0")},
            exchange_balances={"BTC": ("1.25", "0.25"), "SOL": ("3", "0")},
        )
        started = await svc.reconcile(threshold="0.0001")
        assert started.state in (
            wallets_pb2.RECONCILIATION_STATE_QUEUED,
            wallets_pb2.RECONCILIATION_STATE_RUNNING,
        )
        assert started.threshold == "0.0001"
        report = await svc.finished(started.name)
        after = {
            w.display_name: _stored(w)
            for w in (await svc.stub.ListWallets(wallets_pb2.ListWalletsRequest())).wallets
        }
    assert report.state == SUCCEEDED
    assert report.requested_by == "development"  # no tokens file: the development principal
    assert sorted(report.wallets) == sorted([same.name, close.name, off.name])
    assert (report.matched_count, report.mismatched_count, report.error_count) == (2, 1, 0)
    results = {r.display_name: r for r in report.results}
    assert results["same"].status == MATCHED
    assert _diffs(results["same"]) == {
        "ETH": ("10.123456789012345678", "10.123456789012345678", "0", False)
    }
    assert results["close"].status == MATCHED
    assert _diffs(results["close"]) == {"BTC": ("1", "1.00000001", "0.00000001", False)}
    assert results["off"].status == MISMATCHED
    assert _diffs(results["off"]) == {
        "BTC": ("1.5", "1.5", "0", False),
        "SOL": ("0", "3", "3", True),
        "USD": ("10", "0", "-10", True),
    }
    assert not any(r.adopted for r in report.results)
    assert all(r.fetch_time.seconds > 0 for r in report.results)
    assert report.end_time.ToNanoseconds() >= report.create_time.ToNanoseconds()
    # Reconciliation alone never writes balances.
    assert after["off"] == {"BTC": ("1.5", "0"), "USD": ("10", "0")}


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault(FaultKind.SERVER_ERROR, status=503), wallets_pb2.EXCHANGE_ERROR_KIND_UNAVAILABLE),
        (Fault(FaultKind.SERVER_ERROR, status=500), wallets_pb2.EXCHANGE_ERROR_KIND_UNAVAILABLE),
        (Fault(FaultKind.RATE_LIMIT, seconds=30), wallets_pb2.EXCHANGE_ERROR_KIND_RATE_LIMITED),
        (Fault(FaultKind.MALFORMED), wallets_pb2.EXCHANGE_ERROR_KIND_BAD_RESPONSE),
        (Fault(FaultKind.EMPTY), wallets_pb2.EXCHANGE_ERROR_KIND_BAD_RESPONSE),
        (Fault(FaultKind.DROP), wallets_pb2.EXCHANGE_ERROR_KIND_UNAVAILABLE),
        (Fault(FaultKind.HANG), wallets_pb2.EXCHANGE_ERROR_KIND_TIMEOUT),
    ],
    ids=lambda v: v.kind.value + str(v.status) if isinstance(v, Fault) else str(v),
)
async def test_each_exchange_fault_gives_its_kind_and_leaves_balances_untouched(
    service, exchange, fault, kind
):
    # Short only where the timeout is the point, so a loaded machine cannot turn a 503 into one.
    timeout = 0.5 if fault.kind is FaultKind.HANG else 5
    async with service(exchange_timeout_seconds=timeout) as svc:
        healthy = await svc.create_wallet(
            "healthy", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("2", "0")}
        )
        broken = await svc.create_wallet(
            "broken", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("2", "0")}
        )
        exchange.emulator.inject(fault, portfolio=broken.account_ref)
        report = await svc.finished((await svc.reconcile(adopt=True)).name)
        stored = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=broken.name))).wallet
    results = {r.wallet: r for r in report.results}
    assert results[broken.name].status == EXCHANGE_ERROR
    assert results[broken.name].error_kind == kind
    assert results[broken.name].error_message != ""
    assert not results[broken.name].adopted
    assert list(results[broken.name].diffs) == []
    assert _stored(stored) == {"BTC": ("1", "0")}
    # The other wallet is unaffected by its neighbour's fault.
    assert results[healthy.name].status == MISMATCHED
    assert results[healthy.name].adopted
    assert report.error_count == 1


async def test_refused_or_missing_credentials_are_authentication_errors(service, exchange):
    async with service() as svc:
        stranger = await svc.create_wallet("stranger")
        # The key is still in our secrets, but the exchange no longer knows it.
        secrets = json.loads(exchange.secrets_file.read_text())
        exchange.emulator.revoke_key(secrets[stranger.credentials_ref]["name"])
        missing_pid, _ = exchange.portfolio({})
        missing = (
            await svc.stub.CreateWallet(
                wallets_pb2.CreateWalletRequest(
                    wallet=wallets_pb2.Wallet(
                        display_name="missing",
                        exchange="coinbase",
                        account_ref=missing_pid,
                        credentials_ref="NOT_CONFIGURED_ANYWHERE",
                    )
                )
            )
        ).wallet
        report = await svc.finished((await svc.reconcile()).name)
    results = {r.wallet: r for r in report.results}
    for wallet in (stranger, missing):
        assert results[wallet.name].error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_AUTHENTICATION
    assert "NOT_CONFIGURED_ANYWHERE" in results[missing.name].error_message
    assert "PRIVATE KEY" not in str(report)


async def test_a_hung_exchange_ends_in_a_timeout_and_releases_the_request(service, exchange):
    async with service(exchange_timeout_seconds=0.3) as svc:
        wallet = await svc.create_wallet("hung")
        # The exchange never answers: only the service's own timeout can end the job.
        exchange.emulator.inject(Fault(FaultKind.HANG), portfolio=wallet.account_ref)
        report = await svc.finished((await svc.reconcile()).name)

        async def released() -> bool:
            return exchange.emulator.hanging == 0

        await eventually(released, timeout=5, message="the hung request was abandoned")
    assert report.state == SUCCEEDED
    assert report.results[0].error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_TIMEOUT
    assert report.results[0].error_message == "exchange did not answer within 0.3s"


async def test_adopting_replaces_only_mismatched_wallets_and_is_recorded(service):
    async with service() as svc:
        off = await svc.create_wallet(
            "off",
            balances={"BTC": ("1", "0"), "USD": ("5", "0")},
            exchange_balances={"BTC": ("0.75", "0.5"), "ETH": ("10.123456789012345678", "0")},
        )
        fine = await svc.create_wallet(
            "fine", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("1", "0")}
        )
        started = await svc.reconcile(adopt=True)
        assert started.adopt_exchange_balances
        report = await svc.finished(started.name)
        adopted = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=off.name))).wallet
        kept = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=fine.name))).wallet
    results = {r.wallet: r for r in report.results}
    assert report.adopt_exchange_balances
    assert results[off.name].adopted
    assert not results[fine.name].adopted
    assert _stored(adopted) == {"BTC": ("0.75", "0.5"), "ETH": ("10.123456789012345678", "0")}
    assert _stored(kept) == {"BTC": ("1", "0")}
    # The report keeps what was compared, before adoption.
    assert _diffs(results[off.name])["USD"] == ("5", "0", "-5", True)


async def test_watch_streams_each_result_then_the_final_report(service, exchange):
    async with service() as svc:
        fast = await svc.create_wallet("fast", exchange_balances={"BTC": ("1", "0")})
        slow = await svc.create_wallet("slow", exchange_balances={"BTC": ("1", "0")})
        exchange.emulator.inject(Fault(FaultKind.LATENCY, seconds=0.4), portfolio=slow.account_ref)
        started = await svc.reconcile()
        updates = [
            u
            async for u in svc.stub.WatchReconciliation(
                wallets_pb2.WatchReconciliationRequest(name=started.name)
            )
        ]
        # Watching a finished job replays the stored results, then the report.
        replay = [
            u
            async for u in svc.stub.WatchReconciliation(
                wallets_pb2.WatchReconciliationRequest(name=started.name)
            )
        ]
        stored = (
            await svc.stub.GetReconciliation(
                wallets_pb2.GetReconciliationRequest(name=started.name)
            )
        ).reconciliation
    kinds = [u.WhichOneof("event") for u in updates]
    assert kinds == ["result", "result", "reconciliation"]
    assert [u.result.wallet for u in updates[:2]] == [fast.name, slow.name]
    final = updates[-1].reconciliation
    assert final.state == SUCCEEDED
    assert [r.wallet for r in final.results] == [fast.name, slow.name]
    assert [u.WhichOneof("event") for u in replay] == kinds
    # The streamed report (built from the streamed results) is the stored one.
    assert final == stored
    assert replay[-1].reconciliation == stored
    assert [u.result for u in updates[:2]] == list(stored.results)


async def test_watch_deadline_ends_the_call_and_leaves_no_watcher(service, exchange):
    async with service(exchange_timeout_seconds=60) as svc:
        wallet = await svc.create_wallet("slow")
        # The exchange holds the fetch until released: the job cannot end while the watch runs.
        exchange.emulator.inject(Fault(FaultKind.HANG), portfolio=wallet.account_ref)
        started = await svc.reconcile()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in svc.stub.WatchReconciliation(
                wallets_pb2.WatchReconciliationRequest(name=started.name), timeout=0.3
            ):
                pass
        running = (
            await svc.stub.GetReconciliation(
                wallets_pb2.GetReconciliationRequest(name=started.name)
            )
        ).reconciliation
        reconciler = svc.reconciler

        async def no_watchers() -> bool:
            return reconciler.watcher_count(started.name.split("/")[1]) == 0

        await eventually(no_watchers, timeout=5, message="the watch handler ended")
        # The job itself carries on and finishes on its own once the exchange answers.
        exchange.emulator.clear_faults()
        report = await svc.finished(started.name)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The call ended by its deadline, not because the job did.
    assert running.state == wallets_pb2.RECONCILIATION_STATE_RUNNING
    assert report.state == SUCCEEDED
    assert report.results[0].error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_UNAVAILABLE


async def test_reconcile_validates_its_request(service):
    async with service() as svc:
        wallet = await svc.create_wallet("w")
        cases = [
            (wallets_pb2.ReconcileWalletsRequest(wallets=["nope"]), "wallets[0]"),
            (wallets_pb2.ReconcileWalletsRequest(wallets=[wallet.name, wallet.name]), "wallets[1]"),
            (wallets_pb2.ReconcileWalletsRequest(threshold="abc"), "threshold"),
            (wallets_pb2.ReconcileWalletsRequest(threshold="-1"), "threshold"),
        ]
        for request, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await svc.stub.ReconcileWallets(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in field_violations(caught.value)
        negative = wallets_pb2.ReconcileWalletsRequest()
        negative.max_cache_age.seconds = -1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.ReconcileWallets(negative)
        assert "max_cache_age" in field_violations(caught.value)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.ReconcileWallets(
                wallets_pb2.ReconcileWalletsRequest(wallets=["wallets/absent"])
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        for call, request in [
            (
                svc.stub.GetReconciliation,
                wallets_pb2.GetReconciliationRequest(name="reconciliations/x"),
            ),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in svc.stub.WatchReconciliation(
                wallets_pb2.WatchReconciliationRequest(name="reconciliations/x")
            ):
                pass
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_reconciliations_pages_newest_first(service):
    async with service() as svc:
        await svc.create_wallet("w")
        names = []
        for _ in range(5):
            names.append((await svc.finished((await svc.reconcile()).name)).name)
        seen, token = [], ""
        while True:
            page = await svc.stub.ListReconciliations(
                wallets_pb2.ListReconciliationsRequest(page_size=2, page_token=token)
            )
            assert all(len(r.results) == 0 for r in page.reconciliations)
            seen += [r.name for r in page.reconciliations]
            token = page.next_page_token
            if not token:
                break
        future = wallets_pb2.ListReconciliationsRequest()
        future.time_range.start_time.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
        none = await svc.stub.ListReconciliations(future)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.ListReconciliations(
                wallets_pb2.ListReconciliationsRequest(page_token="garbage")
            )
    assert seen == list(reversed(names))
    assert list(none.reconciliations) == []
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _leave_running(engine: AsyncEngine, reconciliation_id: str) -> None:
    # What a replica that started a job and died left: its row, and its start's notification.
    now = datetime.now(UTC)
    async with session_factory(engine).begin() as session:
        await announce(session, JOB_STARTED_CHANNEL)
        await session.execute(
            insert(ReconciliationRow),
            [
                {
                    "id": reconciliation_id,
                    "state": "running",
                    "wallet_ids": [],
                    "threshold": Decimal(0),
                    "adopt_exchange_balances": False,
                    "max_cache_age_seconds": None,
                    "matched_count": 0,
                    "mismatched_count": 0,
                    "error_count": 0,
                    "requested_by": "test",
                    "owner": "a-process-that-died",
                    "heartbeat_time": now - timedelta(minutes=5),
                    "create_time": now - timedelta(minutes=5),
                    "end_time": None,
                    "error_message": "",
                }
            ],
        )


async def test_a_job_left_running_by_a_dead_process_is_marked_failed(service, database_url):
    async with service(reconciliation_lease_seconds=0.3) as svc:
        await _leave_running(svc.app.engine, "orphan")
        if database_url.startswith("postgresql"):
            # Another replica: its start woke this one's look, which fails the job.
            report = await svc.finished("reconciliations/orphan", within=5)
        else:
            # The file belongs to this process: the dead one was its last run, and the job is
            # failed at the next start.
            with counted_statements(svc.app.engine) as statements:
                await asyncio.sleep(1.0)  # three looks' worth
            assert statements == []
    if not database_url.startswith("postgresql"):
        async with service(reconciliation_lease_seconds=0.3) as svc:
            report = await svc.finished("reconciliations/orphan", within=5)
    assert report.state == FAILED
    assert report.error_message == ABANDONED


async def test_an_idle_service_looks_for_abandoned_jobs_only_while_a_job_runs_elsewhere(
    service, database_url
):
    async with service(reconciliation_lease_seconds=0.3) as svc:
        await asyncio.sleep(0.6)  # past the look at start (and a connected LISTEN's)
        with counted_statements(svc.app.engine) as statements:
            await asyncio.sleep(1.0)  # ten lease renewals' worth
        assert statements == []
        if database_url.startswith("postgresql"):
            # Another replica starts a job and dies: its start's NOTIFY wakes the look.
            await _leave_running(svc.app.engine, "orphan")
            report = await svc.finished("reconciliations/orphan", within=5)
            assert report.error_message == ABANDONED
            with counted_statements(svc.app.engine) as statements:
                await asyncio.sleep(1.0)
            assert statements == [], "once no job runs elsewhere, the look sleeps again"


async def test_stopping_the_service_fails_its_running_jobs(service, exchange):
    async with service(exchange_timeout_seconds=30) as svc:
        wallet = await svc.create_wallet("hung")
        exchange.emulator.inject(Fault(FaultKind.HANG), portfolio=wallet.account_ref)
        name = (await svc.reconcile()).name
    async with service() as svc:
        report = (
            await svc.stub.GetReconciliation(wallets_pb2.GetReconciliationRequest(name=name))
        ).reconciliation
    assert report.state == FAILED
    assert report.error_message == STOPPED


async def test_a_wallet_deleted_mid_job_is_reported_not_compared(service, exchange):
    async with service() as svc:
        wallet = await svc.create_wallet("leaving", exchange_balances={"BTC": ("1", "0")})
        exchange.emulator.inject(
            Fault(FaultKind.LATENCY, seconds=0.5), portfolio=wallet.account_ref
        )
        started = await svc.reconcile(adopt=True)
        await svc.stub.DeleteWallet(wallets_pb2.DeleteWalletRequest(name=wallet.name))
        report = await svc.finished(started.name)
    assert report.state == SUCCEEDED
    assert report.results[0].status == EXCHANGE_ERROR
    assert "deleted" in report.results[0].error_message
    assert not report.results[0].adopted


async def test_reconciling_no_wallets_succeeds_empty(service):
    async with service() as svc:
        report = await svc.finished((await svc.reconcile()).name)
    assert report.state == SUCCEEDED
    assert list(report.results) == []


async def test_retry_after_is_honoured_before_calling_the_exchange_again(service, exchange):
    async with service() as svc:
        wallet = await svc.create_wallet("limited", exchange_balances={"BTC": ("1", "0")})
        exchange.emulator.inject(
            Fault(FaultKind.RATE_LIMIT, seconds=30, times=1), portfolio=wallet.account_ref
        )
        first = await svc.finished((await svc.reconcile()).name)
        calls = exchange.emulator.requests[wallet.account_ref]
        second = await svc.finished((await svc.reconcile(max_cache_age=0)).name)
    assert first.results[0].error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_RATE_LIMITED
    assert "30" in first.results[0].error_message
    assert second.results[0].error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_RATE_LIMITED
    assert exchange.emulator.requests[wallet.account_ref] == calls == 1


async def _watch(
    stub, name: str, per_message: int = 0
) -> list[wallets_pb2.WatchReconciliationResponse]:
    return [
        u
        async for u in stub.WatchReconciliation(
            wallets_pb2.WatchReconciliationRequest(name=name, max_results_per_message=per_message)
        )
    ]


async def test_watch_sends_results_stored_together_in_one_message(service, exchange):
    async with service() as svc:
        wallets = [
            await svc.create_wallet(
                f"w{i}", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("1", "0")}
            )
            for i in range(7)
        ]
        late = await svc.create_wallet("late", exchange_balances={"BTC": ("2", "0")})
        exchange.emulator.inject(Fault(FaultKind.LATENCY, seconds=0.4), portfolio=late.account_ref)
        # Warm the cache for the seven, so their results are stored together; `late` follows.
        await svc.finished((await svc.reconcile([w.name for w in wallets])).name)
        started = await svc.reconcile([*(w.name for w in wallets), late.name])
        live = await _watch(svc.stub, started.name, per_message=3)
        replay = await _watch(svc.stub, started.name, per_message=1000)
        stored = (
            await svc.stub.GetReconciliation(
                wallets_pb2.GetReconciliationRequest(name=started.name)
            )
        ).reconciliation
    kinds = [u.WhichOneof("event") for u in live]
    # Seven results stored together, at most three a message, then late's, then the report.
    assert kinds == ["results", "results", "results", "results", "reconciliation"]
    assert [len(u.results.results) for u in live[:4]] == [3, 3, 1, 1]
    streamed = [r for u in live[:4] for r in u.results.results]
    assert streamed == list(stored.results)
    assert streamed[-1].wallet == late.name
    assert all(r.from_cache for r in streamed[:7])
    assert not streamed[7].from_cache
    assert live[-1].reconciliation == stored
    # Watching the finished job sends everything stored at once, in the same order.
    assert [len(u.results.results) for u in replay[:-1]] == [8]
    assert list(replay[0].results.results) == streamed
    assert replay[-1].reconciliation == stored


async def test_watch_refuses_a_bad_batch_size(service):
    async with service() as svc:
        started = await svc.reconcile()
        for size in (-1, 1001):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _watch(svc.stub, started.name, per_message=size)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "max_results_per_message" in field_violations(caught.value)


async def test_a_job_run_by_another_replica_is_watched_from_the_database(
    database_url, data_dir, tmp_path, exchange
):
    async with (
        running_service(database_url=database_url, data_dir=data_dir, exchange=exchange) as one,
        running_service(database_url=database_url, data_dir=tmp_path, exchange=exchange) as two,
    ):
        fast = await one.create_wallet("fast", exchange_balances={"BTC": ("1", "0")})
        slow = await one.create_wallet(
            "slow", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("3", "0")}
        )
        exchange.emulator.inject(Fault(FaultKind.LATENCY, seconds=1.5), portfolio=slow.account_ref)
        started = await one.reconcile()
        # `two` does not run the job: it polls the stored results.
        updates = await _watch(two.stub, started.name)
        stored = (
            await two.stub.GetReconciliation(
                wallets_pb2.GetReconciliationRequest(name=started.name)
            )
        ).reconciliation
    assert [u.WhichOneof("event") for u in updates] == ["result", "result", "reconciliation"]
    assert [u.result.wallet for u in updates[:2]] == [fast.name, slow.name]
    assert updates[1].result.status == MISMATCHED
    assert updates[-1].reconciliation == stored
    assert stored.state == SUCCEEDED


async def test_a_warm_job_stores_every_result_in_one_transaction(service):
    async with service() as svc:
        names = await _matched_wallets(svc, 20)
        await svc.finished((await svc.reconcile(names)).name)
        with counted_statements(svc.app.engine) as statements:
            report = await svc.finished((await svc.reconcile(names)).name)
    assert all(r.from_cache for r in report.results)
    writes = [s for s in statements if "INSERT INTO reconciliation_results" in s]
    assert len(writes) == 1  # 20 results, one batch
    assert report.matched_count == 20


async def test_a_reconciliation_the_cache_holds_entirely_is_done_when_returned(service, exchange):
    async with service() as svc:
        same = await svc.create_wallet(
            "same", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("1", "0")}
        )
        off = await svc.create_wallet(
            "off", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("2", "0")}
        )
        cold = await svc.reconcile()
        await svc.finished(cold.name)
        warm = await svc.reconcile(threshold="0.5")
        stored = (
            await svc.stub.GetReconciliation(wallets_pb2.GetReconciliationRequest(name=warm.name))
        ).reconciliation
        updates = await _watch(svc.stub, warm.name, per_message=10)
        # A new fetch is needed when the cache may not answer: the job runs in the background.
        fresh = await svc.reconcile(max_cache_age=0)
        await svc.finished(fresh.name)
    assert cold.state == wallets_pb2.RECONCILIATION_STATE_RUNNING
    assert fresh.state == wallets_pb2.RECONCILIATION_STATE_RUNNING
    # Answered from the cache: stored finished before the call returned, results streamed after.
    assert warm.state == SUCCEEDED
    assert (warm.matched_count, warm.mismatched_count, warm.error_count) == (1, 1, 0)
    assert warm == stored  # done when returned, results and all
    assert stored.state == SUCCEEDED
    assert {r.wallet: r.status for r in stored.results} == {
        same.name: MATCHED,
        off.name: MISMATCHED,
    }
    assert all(r.from_cache for r in stored.results)
    assert list(updates[0].results.results) == list(stored.results)
    assert updates[-1].reconciliation == stored


async def test_adopting_from_the_cache_replaces_balances_in_the_same_call(service):
    async with service() as svc:
        off = await svc.create_wallet(
            "off", balances={"BTC": ("1", "0")}, exchange_balances={"BTC": ("0.75", "0.5")}
        )
        await svc.finished((await svc.reconcile()).name)
        # Someone corrects the stored balance in between; the adoption compares against it.
        await svc.stub.SetBalances(
            wallets_pb2.SetBalancesRequest(
                name=off.name, balances=[wallets_pb2.Balance(asset="BTC", available="1.1")]
            )
        )
        adopting = await svc.reconcile(adopt=True)
        after = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=off.name))).wallet
        report = await svc.finished(adopting.name)
    assert adopting.state == SUCCEEDED
    assert report.results[0].adopted
    assert _diffs(report.results[0])["BTC"] == ("1.1", "1.25", "0.15", True)
    assert _stored(after) == {"BTC": ("0.75", "0.5")}


async def test_a_large_report_done_when_returned_leaves_its_results_to_the_watch(
    service, monkeypatch
):
    monkeypatch.setattr(servicer_module, "_MAX_RESULTS_IN_RESPONSE", 2)
    async with service() as svc:
        names = await _matched_wallets(svc, 3)
        await svc.finished((await svc.reconcile(names)).name)
        three = await svc.reconcile(names)
        two = await svc.reconcile(names[:2])
        watched = await _watch(svc.stub, three.name, per_message=1000)
    assert three.state == SUCCEEDED
    assert three.matched_count == 3
    assert list(three.results) == []
    assert [r.wallet for r in watched[0].results.results] == names
    assert [r.wallet for r in two.results] == names[:2]
