"""Reconciliation reports as plain data, and the rules that compare and classify each wallet."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from tapedeck_common import money
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_wallets.exchange.domain import (
    ErrorKind,
    ExchangeBalance,
    ExchangeFailure,
    ExchangeSnapshot,
)
from tapedeck_wallets.wallets.domain import Balance, WalletAccount

DELETED = "the wallet was deleted before it was reconciled"
_ZERO = Decimal(0)


class ReconciliationState(enum.Enum):
    """Where a reconciliation job is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Tell whether the job will not change any more."""
        return self in (ReconciliationState.SUCCEEDED, ReconciliationState.FAILED)


UNFINISHED = tuple(state for state in ReconciliationState if not state.finished)


class WalletStatus(enum.Enum):
    """The outcome of reconciling one wallet."""

    MATCHED = "matched"
    MISMATCHED = "mismatched"
    EXCHANGE_ERROR = "exchange_error"


@dataclass(frozen=True, slots=True)
class BalanceDiff:
    """One asset's stored and exchange totals."""

    asset: str
    stored_total: Decimal
    exchange_total: Decimal
    difference: Decimal
    beyond_threshold: bool


@dataclass(frozen=True, slots=True)
class WalletResult:
    """The result for one wallet in a reconciliation."""

    wallet_id: str
    display_name: str
    status: WalletStatus
    diffs: tuple[BalanceDiff, ...] = ()
    error_kind: ErrorKind | None = None
    error_message: str = ""
    adopted: bool = False
    fetch_time: datetime | None = None
    from_cache: bool = False
    seq: int = 0


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """How many wallets of some results matched, mismatched, or could not be read."""

    matched: int
    mismatched: int
    errors: int

    @classmethod
    def of(cls, results: Sequence[WalletResult]) -> StatusCounts:
        """Count results by status."""
        statuses = [r.status for r in results]
        return cls(
            matched=statuses.count(WalletStatus.MATCHED),
            mismatched=statuses.count(WalletStatus.MISMATCHED),
            errors=statuses.count(WalletStatus.EXCHANGE_ERROR),
        )


@dataclass(frozen=True, slots=True)
class ReconciliationRequest:
    """What a caller asked to reconcile: no wallets means every wallet."""

    wallet_ids: tuple[str, ...]
    threshold: Decimal
    max_cache_age: float | None
    adopt_exchange_balances: bool

    @classmethod
    def stated(
        cls,
        *,
        wallet_ids: Sequence[str],
        threshold: Decimal,
        max_cache_age: float | None,
        adopt_exchange_balances: bool,
        field: str,
    ) -> ReconciliationRequest:
        """Return a request as a caller states it: each wallet named once, in the given order."""
        seen: set[str] = set()
        for index, wallet_id in enumerate(wallet_ids):
            if wallet_id in seen:
                raise InvalidArgument([FieldViolation(f"{field}[{index}]", "is listed twice")])
            seen.add(wallet_id)
        return cls(
            wallet_ids=tuple(wallet_ids),
            threshold=threshold,
            max_cache_age=max_cache_age,
            adopt_exchange_balances=adopt_exchange_balances,
        )


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """A reconciliation report."""

    id: str
    state: ReconciliationState
    wallet_ids: tuple[str, ...]
    threshold: Decimal
    adopt_exchange_balances: bool
    max_cache_age: float | None
    matched_count: int
    mismatched_count: int
    error_count: int
    create_time: datetime
    end_time: datetime | None
    error_message: str
    requested_by: str = ""
    results: tuple[WalletResult, ...] = ()

    def succeeded(self, results: Sequence[WalletResult], end_time: datetime) -> Reconciliation:
        """Return the report once every wallet has its result: counted, ended, SUCCEEDED."""
        counts = StatusCounts.of(results)
        return replace(
            self,
            state=ReconciliationState.SUCCEEDED,
            matched_count=counts.matched,
            mismatched_count=counts.mismatched,
            error_count=counts.errors,
            end_time=end_time,
            results=tuple(results),
        )


def new_reconciliation(
    *, reconciliation_id: str, request: ReconciliationRequest, requested_by: str, now: datetime
) -> Reconciliation:
    """Return the report of a request just accepted: RUNNING, nothing counted yet."""
    return Reconciliation(
        id=reconciliation_id,
        state=ReconciliationState.RUNNING,
        wallet_ids=request.wallet_ids,
        threshold=request.threshold,
        adopt_exchange_balances=request.adopt_exchange_balances,
        max_cache_age=request.max_cache_age,
        matched_count=0,
        mismatched_count=0,
        error_count=0,
        create_time=now,
        end_time=None,
        error_message="",
        requested_by=requested_by,
    )


def compare(
    *,
    stored: Mapping[str, Decimal],
    exchange: Mapping[str, ExchangeBalance],
    threshold: Decimal,
) -> tuple[BalanceDiff, ...]:
    """Compare totals asset by asset: every stored asset and every non-zero exchange asset."""
    exchange_totals = {}
    for asset, balance in exchange.items():
        total = balance.total
        if total != 0:
            exchange_totals[asset] = total
    diffs = []
    for asset in sorted(stored.keys() | exchange_totals.keys()):
        ours = stored.get(asset, _ZERO)
        theirs = exchange_totals.get(asset, _ZERO)
        difference = money.subtract(theirs, ours)
        diffs.append(
            BalanceDiff(
                asset=asset,
                stored_total=ours,
                exchange_total=theirs,
                difference=difference,
                beyond_threshold=abs(difference) > threshold,
            )
        )
    return tuple(diffs)


def wallet_result(
    *,
    wallet: WalletAccount,
    outcome: ExchangeSnapshot | ExchangeFailure,
    stored: Mapping[str, Decimal] | None,
    threshold: Decimal,
    seq: int,
) -> WalletResult:
    """Classify one wallet: the exchange failed, the wallet is gone, or its totals (mis)match.

    `stored` is the wallet's stored total per asset as the result is recorded, None when the
    wallet was deleted since the job began.
    """
    if isinstance(outcome, ExchangeFailure):
        return WalletResult(
            wallet_id=wallet.id,
            display_name=wallet.display_name,
            status=WalletStatus.EXCHANGE_ERROR,
            error_kind=outcome.kind,
            error_message=outcome.message,
            seq=seq,
        )
    if stored is None:
        return WalletResult(
            wallet_id=wallet.id,
            display_name=wallet.display_name,
            status=WalletStatus.EXCHANGE_ERROR,
            error_message=DELETED,
            seq=seq,
        )
    diffs = compare(stored=stored, exchange=outcome.balances, threshold=threshold)
    mismatched = any(d.beyond_threshold for d in diffs)
    return WalletResult(
        wallet_id=wallet.id,
        display_name=wallet.display_name,
        status=WalletStatus.MISMATCHED if mismatched else WalletStatus.MATCHED,
        diffs=diffs,
        fetch_time=outcome.fetch_time,
        from_cache=outcome.from_cache,
        seq=seq,
    )


def balances_to_adopt(
    result: WalletResult,
    outcome: ExchangeSnapshot | ExchangeFailure,
    request: ReconciliationRequest,
) -> tuple[Balance, ...] | None:
    """Return the balances to store in place of a wallet's, or None to keep its own.

    Only a mismatched wallet adopts, only when the request asks to, and only the exchange's
    non-zero balances.
    """
    if (
        not request.adopt_exchange_balances
        or result.status is not WalletStatus.MISMATCHED
        or not isinstance(outcome, ExchangeSnapshot)
    ):
        return None
    return tuple(
        Balance(asset=b.asset, available=b.available, hold=b.hold)
        for b in sorted(outcome.balances.values(), key=lambda b: b.asset)
        if b.total != 0
    )
