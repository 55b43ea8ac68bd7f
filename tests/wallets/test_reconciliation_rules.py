"""The reconciliation domain's rules on their own: no server, no database, no exchange."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tapedeck_common.errors import InvalidArgument
from tapedeck_wallets.exchange.domain import (
    ErrorKind,
    ExchangeAccount,
    ExchangeBalance,
    ExchangeFailure,
    ExchangeSnapshot,
)
from tapedeck_wallets.reconciliations.domain import (
    DELETED,
    UNFINISHED,
    BalanceDiff,
    ReconciliationRequest,
    ReconciliationState,
    WalletResult,
    WalletStatus,
    balances_to_adopt,
    compare,
    new_reconciliation,
    wallet_result,
)
from tapedeck_wallets.wallets.domain import Balance, WalletAccount

FETCHED = datetime(2026, 6, 1, 12, tzinfo=UTC)
ENDED = datetime(2026, 6, 1, 12, 1, tzinfo=UTC)
WALLET = WalletAccount("w1", "desk", ExchangeAccount("coinbase", "portfolio", "KEY"))


def exchange(**balances: tuple[str, str]) -> dict[str, ExchangeBalance]:
    return {
        asset: ExchangeBalance(asset=asset, available=Decimal(free), hold=Decimal(held))
        for asset, (free, held) in balances.items()
    }


def snapshot(**balances: tuple[str, str]) -> ExchangeSnapshot:
    return ExchangeSnapshot(balances=exchange(**balances), fetch_time=FETCHED, from_cache=True)


def request(*, adopt: bool = False, threshold: str = "0") -> ReconciliationRequest:
    return ReconciliationRequest(
        wallet_ids=("w1",),
        threshold=Decimal(threshold),
        max_cache_age=None,
        adopt_exchange_balances=adopt,
    )


def test_compare_lists_every_stored_asset_and_every_non_zero_exchange_asset():
    diffs = compare(
        stored={"BTC": Decimal("1.5"), "USD": Decimal(10)},
        exchange=exchange(BTC=("1.25", "0.25"), SOL=("3", "0"), DOGE=("0", "0")),
        threshold=Decimal("0.0001"),
    )
    assert diffs == (
        BalanceDiff("BTC", Decimal("1.5"), Decimal("1.5"), Decimal(0), False),
        BalanceDiff("SOL", Decimal(0), Decimal(3), Decimal(3), True),
        BalanceDiff("USD", Decimal(10), Decimal(0), Decimal(-10), True),
    )


def test_a_difference_within_the_threshold_matches():
    [diff] = compare(
        stored={"BTC": Decimal(1)}, exchange=exchange(BTC=("1.00000001", "0")), threshold=Decimal(0)
    )
    assert diff.beyond_threshold
    [diff] = compare(
        stored={"BTC": Decimal(1)},
        exchange=exchange(BTC=("1.00000001", "0")),
        threshold=Decimal("0.00000001"),
    )
    assert not diff.beyond_threshold  # beyond means strictly more than the threshold


def test_each_wallet_is_classified_by_what_the_exchange_and_the_store_gave():
    def classify(outcome, stored):
        return wallet_result(
            wallet=WALLET, outcome=outcome, stored=stored, threshold=Decimal(0), seq=7
        )

    failed = classify(ExchangeFailure(ErrorKind.TIMEOUT, "no answer within 5s"), {})
    assert (failed.status, failed.error_kind, failed.error_message, failed.seq) == (
        WalletStatus.EXCHANGE_ERROR,
        ErrorKind.TIMEOUT,
        "no answer within 5s",
        7,
    )
    deleted = classify(snapshot(BTC=("1", "0")), None)
    assert (deleted.status, deleted.error_kind, deleted.error_message) == (
        WalletStatus.EXCHANGE_ERROR,
        None,
        DELETED,
    )
    matched = classify(snapshot(BTC=("1", "0")), {"BTC": Decimal(1)})
    assert (matched.status, matched.fetch_time, matched.from_cache) == (
        WalletStatus.MATCHED,
        FETCHED,
        True,
    )
    mismatched = classify(snapshot(BTC=("1", "0")), {"BTC": Decimal(2)})
    assert mismatched.status is WalletStatus.MISMATCHED
    assert not mismatched.adopted


def test_only_a_mismatched_wallet_adopts_and_only_when_asked():
    outcome = snapshot(ETH=("0", "0"), BTC=("0.75", "0.5"))
    mismatched = wallet_result(
        wallet=WALLET, outcome=outcome, stored={"BTC": Decimal(1)}, threshold=Decimal(0), seq=1
    )
    matched = wallet_result(
        wallet=WALLET, outcome=outcome, stored={"BTC": Decimal("1.25")}, threshold=Decimal(0), seq=1
    )
    assert balances_to_adopt(mismatched, outcome, request(adopt=True)) == (
        Balance(asset="BTC", available=Decimal("0.75"), hold=Decimal("0.5")),
    )
    assert balances_to_adopt(mismatched, outcome, request(adopt=False)) is None
    assert balances_to_adopt(matched, outcome, request(adopt=True)) is None
    failure = ExchangeFailure(ErrorKind.UNAVAILABLE, "503")
    errored = wallet_result(wallet=WALLET, outcome=failure, stored={}, threshold=Decimal(0), seq=1)
    assert balances_to_adopt(errored, failure, request(adopt=True)) is None


def test_a_request_names_each_wallet_once():
    stated = ReconciliationRequest.stated(
        wallet_ids=["b", "a"],
        threshold=Decimal(0),
        max_cache_age=None,
        adopt_exchange_balances=False,
        field="wallets",
    )
    assert stated.wallet_ids == ("b", "a")
    with pytest.raises(InvalidArgument) as caught:
        ReconciliationRequest.stated(
            wallet_ids=["a", "b", "a"],
            threshold=Decimal(0),
            max_cache_age=None,
            adopt_exchange_balances=False,
            field="wallets",
        )
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("wallets[2]", "is listed twice")
    ]


def test_a_new_report_runs_and_succeeds_with_the_counts_of_its_results():
    report = new_reconciliation(
        reconciliation_id="r1", request=request(threshold="0.5"), requested_by="ops", now=FETCHED
    )
    assert report.state is ReconciliationState.RUNNING
    assert (report.matched_count, report.mismatched_count, report.error_count) == (0, 0, 0)
    assert (report.threshold, report.requested_by, report.end_time) == (Decimal("0.5"), "ops", None)
    results = [
        WalletResult("w1", "a", WalletStatus.MATCHED, seq=1),
        WalletResult("w2", "b", WalletStatus.MISMATCHED, seq=2),
        WalletResult("w3", "c", WalletStatus.MATCHED, seq=3),
        WalletResult("w4", "d", WalletStatus.EXCHANGE_ERROR, seq=4),
    ]
    done = report.succeeded(results, ENDED)
    assert done.state is ReconciliationState.SUCCEEDED
    assert (done.matched_count, done.mismatched_count, done.error_count) == (2, 1, 1)
    assert (done.end_time, done.results) == (ENDED, tuple(results))
    assert report.state is ReconciliationState.RUNNING  # the running report is unchanged


def test_a_job_is_unfinished_until_it_succeeds_or_fails():
    assert UNFINISHED == (ReconciliationState.QUEUED, ReconciliationState.RUNNING)
    assert all(state.finished for state in ReconciliationState if state not in UNFINISHED)
