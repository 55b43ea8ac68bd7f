"""Reconciliation protos <-> domain objects; request fields are parsed here, naming their path."""

from __future__ import annotations

from decimal import Decimal

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import decimal_string, duration_seconds, resource_id
from tapedeck_wallets.amounts import decimal_text
from tapedeck_wallets.reconciliations.domain import (
    Reconciliation,
    ReconciliationRequest,
    ReconciliationState,
    WalletResult,
    WalletStatus,
)
from tapedeck_wallets.timestamps import stamp
from tapedeck_wallets.wallets.messages import ERROR_KINDS, wallet_id

_MAX_WALLETS_PER_RECONCILIATION = 10_000
# Any age past the cache TTL means the TTL; the bound only keeps the arithmetic finite.
_MAX_CACHE_AGE_SECONDS = 365 * 86_400

_STATES = EnumMapping(
    wallets_pb2.ReconciliationState.DESCRIPTOR,
    {
        wallets_pb2.RECONCILIATION_STATE_QUEUED: ReconciliationState.QUEUED,
        wallets_pb2.RECONCILIATION_STATE_RUNNING: ReconciliationState.RUNNING,
        wallets_pb2.RECONCILIATION_STATE_SUCCEEDED: ReconciliationState.SUCCEEDED,
        wallets_pb2.RECONCILIATION_STATE_FAILED: ReconciliationState.FAILED,
    },
)
_STATUSES = EnumMapping(
    wallets_pb2.WalletStatus.DESCRIPTOR,
    {
        wallets_pb2.WALLET_STATUS_MATCHED: WalletStatus.MATCHED,
        wallets_pb2.WALLET_STATUS_MISMATCHED: WalletStatus.MISMATCHED,
        wallets_pb2.WALLET_STATUS_EXCHANGE_ERROR: WalletStatus.EXCHANGE_ERROR,
    },
)


def reconciliation_id(name: str) -> str:
    """Return the id of a `reconciliations/{id}` name."""
    return resource_id(name, collection="reconciliations", field="name")


def reconciliation_request(request: wallets_pb2.ReconcileWalletsRequest) -> ReconciliationRequest:
    """Return what a ReconcileWallets request asks for."""
    if len(request.wallets) > _MAX_WALLETS_PER_RECONCILIATION:
        raise InvalidArgument(
            [FieldViolation("wallets", f"at most {_MAX_WALLETS_PER_RECONCILIATION} wallets")]
        )
    wallet_ids = [
        wallet_id(name, field=f"wallets[{index}]") for index, name in enumerate(request.wallets)
    ]
    threshold = decimal_string(request.threshold, field="threshold", default=Decimal(0))
    max_age: float | None = None
    if request.HasField("max_cache_age"):
        max_age = duration_seconds(
            request.max_cache_age, field="max_cache_age", maximum=_MAX_CACHE_AGE_SECONDS
        )
    return ReconciliationRequest.stated(
        wallet_ids=wallet_ids,
        threshold=threshold,
        max_cache_age=max_age,
        adopt_exchange_balances=request.adopt_exchange_balances,
        field="wallets",
    )


def fill_result(message: wallets_pb2.WalletReconciliation, result: WalletResult) -> None:
    """Write one wallet's result into a new, empty proto in place."""
    message.wallet = f"wallets/{result.wallet_id}"
    message.display_name = result.display_name
    message.status = _STATUSES.to_proto(result.status)
    add = message.diffs.add
    for diff in result.diffs:
        add(
            asset=diff.asset,
            stored_total=decimal_text(diff.stored_total),
            exchange_total=decimal_text(diff.exchange_total),
            difference=decimal_text(diff.difference),
            beyond_threshold=diff.beyond_threshold,
        )
    if result.error_kind is not None:
        message.error_kind = ERROR_KINDS.to_proto(result.error_kind)
    message.error_message = result.error_message
    message.adopted = result.adopted
    if result.fetch_time is not None:
        stamp(message.fetch_time, result.fetch_time)
    message.from_cache = result.from_cache


def fill_reconciliation(message: wallets_pb2.Reconciliation, report: Reconciliation) -> None:
    """Write a report into a new, empty proto in place."""
    message.name = f"reconciliations/{report.id}"
    message.state = _STATES.to_proto(report.state)
    message.wallets.extend([f"wallets/{w}" for w in report.wallet_ids])
    message.threshold = decimal_text(report.threshold)
    message.adopt_exchange_balances = report.adopt_exchange_balances
    add = message.results.add
    for result in report.results:
        fill_result(add(), result)
    message.matched_count = report.matched_count
    message.mismatched_count = report.mismatched_count
    message.error_count = report.error_count
    stamp(message.create_time, report.create_time)
    if report.end_time is not None:
        stamp(message.end_time, report.end_time)
    message.error_message = report.error_message
    message.requested_by = report.requested_by
