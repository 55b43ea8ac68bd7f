"""WalletService: requests to domain calls and domain objects to protos; no SQL here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common import money
from tapedeck_common.auth import current_principal
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.pagination import decode_page_token, encode_page_token, page_size
from tapedeck_common.validation import decimal_string, resource_id, time_range_nanos
from tapedeck_wallets import repository
from tapedeck_wallets.credentials import CREDENTIALS_REF
from tapedeck_wallets.domain import (
    SUPPORTED_EXCHANGES,
    Balance,
    ErrorKind,
    ListedWallet,
    NewWallet,
    Reconciliation,
    ReconciliationRequest,
    ReconciliationState,
    Wallet,
    WalletResult,
    WalletStatus,
    decimal_text,
)
from tapedeck_wallets.reconcile import Reconciler

Context = grpc.aio.ServicerContext[Any, Any]

_ASSET = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,31}")
_MAX_TEXT = 200
_MAX_WALLETS_PER_RECONCILIATION = 10_000
_MAX_RESULTS_PER_MESSAGE = 1000
_MAX_RESULTS_IN_RESPONSE = 1000

_STATE = {
    ReconciliationState.QUEUED: wallets_pb2.RECONCILIATION_STATE_QUEUED,
    ReconciliationState.RUNNING: wallets_pb2.RECONCILIATION_STATE_RUNNING,
    ReconciliationState.SUCCEEDED: wallets_pb2.RECONCILIATION_STATE_SUCCEEDED,
    ReconciliationState.FAILED: wallets_pb2.RECONCILIATION_STATE_FAILED,
}
_STATUS = {
    WalletStatus.MATCHED: wallets_pb2.WALLET_STATUS_MATCHED,
    WalletStatus.MISMATCHED: wallets_pb2.WALLET_STATUS_MISMATCHED,
    WalletStatus.EXCHANGE_ERROR: wallets_pb2.WALLET_STATUS_EXCHANGE_ERROR,
}
_ERROR_KIND = {
    ErrorKind.TIMEOUT: wallets_pb2.EXCHANGE_ERROR_KIND_TIMEOUT,
    ErrorKind.RATE_LIMITED: wallets_pb2.EXCHANGE_ERROR_KIND_RATE_LIMITED,
    ErrorKind.UNAVAILABLE: wallets_pb2.EXCHANGE_ERROR_KIND_UNAVAILABLE,
    ErrorKind.BAD_RESPONSE: wallets_pb2.EXCHANGE_ERROR_KIND_BAD_RESPONSE,
    ErrorKind.AUTHENTICATION: wallets_pb2.EXCHANGE_ERROR_KIND_AUTHENTICATION,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stamp(target: Timestamp, value: datetime) -> None:
    # Exact integer arithmetic, written in place: several times cheaper than building a
    # Timestamp (or calling FromDatetime) and copying it into the parent message.
    delta = value - _EPOCH
    target.seconds = delta.days * 86_400 + delta.seconds
    target.nanos = delta.microseconds * 1000


def _stamp_micros(target: Timestamp, micros: int) -> None:
    seconds, remainder = divmod(micros, 1_000_000)
    target.seconds = seconds
    target.nanos = remainder * 1000


def _now() -> datetime:
    return datetime.now(UTC)


def fill_wallet(message: wallets_pb2.Wallet, wallet: Wallet) -> wallets_pb2.Wallet:
    """Write a wallet into a (new, empty) proto in place and return it."""
    message.name = f"wallets/{wallet.id}"
    message.display_name = wallet.display_name
    message.exchange = wallet.exchange
    message.account_ref = wallet.account_ref
    message.credentials_ref = wallet.credentials_ref
    # add() builds each balance inside its parent; a list of messages would be copied in.
    for balance in wallet.balances:
        item = message.balances.add(
            asset=balance.asset,
            total=decimal_text(balance.total),
            available=decimal_text(balance.available),
            hold=decimal_text(balance.hold),
        )
        if balance.update_time is not None:
            _stamp(item.update_time, balance.update_time)
    _stamp(message.create_time, wallet.create_time)
    _stamp(message.update_time, wallet.update_time)
    return message


def fill_listed_wallet(message: wallets_pb2.Wallet, wallet: ListedWallet) -> None:
    """Write a listed wallet (amounts already text) into a new, empty proto in place."""
    message.name = f"wallets/{wallet.id}"
    message.display_name = wallet.display_name
    message.exchange = wallet.exchange
    message.account_ref = wallet.account_ref
    message.credentials_ref = wallet.credentials_ref
    add = message.balances.add
    for asset, total, available, hold, updated in wallet.balances:
        _stamp_micros(
            add(asset=asset, total=total, available=available, hold=hold).update_time, updated
        )
    _stamp_micros(message.create_time, wallet.create_micros)
    _stamp_micros(message.update_time, wallet.update_micros)


def wallet_to_proto(wallet: Wallet) -> wallets_pb2.Wallet:
    """Return a wallet as its proto."""
    return fill_wallet(wallets_pb2.Wallet(), wallet)


def fill_result(message: wallets_pb2.WalletReconciliation, result: WalletResult) -> None:
    """Write one wallet's result into a new, empty proto in place."""
    message.wallet = f"wallets/{result.wallet_id}"
    message.display_name = result.display_name
    message.status = _STATUS[result.status]
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
        message.error_kind = _ERROR_KIND[result.error_kind]
    message.error_message = result.error_message
    message.adopted = result.adopted
    if result.fetch_time is not None:
        _stamp(message.fetch_time, result.fetch_time)
    message.from_cache = result.from_cache


def fill_reconciliation(message: wallets_pb2.Reconciliation, report: Reconciliation) -> None:
    """Write a report into a new, empty proto in place."""
    message.name = f"reconciliations/{report.id}"
    message.state = _STATE[report.state]
    message.wallets.extend([f"wallets/{w}" for w in report.wallet_ids])
    message.threshold = decimal_text(report.threshold)
    message.adopt_exchange_balances = report.adopt_exchange_balances
    add = message.results.add
    for result in report.results:
        fill_result(add(), result)
    message.matched_count = report.matched_count
    message.mismatched_count = report.mismatched_count
    message.error_count = report.error_count
    _stamp(message.create_time, report.create_time)
    if report.end_time is not None:
        _stamp(message.end_time, report.end_time)
    message.error_message = report.error_message
    message.requested_by = report.requested_by


def reconciliation_to_proto(report: Reconciliation) -> wallets_pb2.Reconciliation:
    """Return a report as its proto."""
    message = wallets_pb2.Reconciliation()
    fill_reconciliation(message, report)
    return message


def _text(value: str, *, field: str) -> str:
    if value.strip() == "":
        raise InvalidArgument([FieldViolation(field, "is required")])
    if value != value.strip():
        raise InvalidArgument([FieldViolation(field, "must not start or end with whitespace")])
    if len(value) > _MAX_TEXT:
        raise InvalidArgument([FieldViolation(field, f"must be at most {_MAX_TEXT} characters")])
    return value


def _amount(value: str, *, field: str) -> Decimal:
    number = decimal_string(value, field=field)
    assert number is not None  # required by default
    return number


def balances_from_proto(
    balances: Sequence[wallets_pb2.Balance], *, field: str
) -> tuple[Balance, ...]:
    """Validate balances: known asset codes once each, decimals, total = available + hold."""
    parsed: list[Balance] = []
    seen: set[str] = set()
    for index, balance in enumerate(balances):
        where = f"{field}[{index}]"
        if not _ASSET.fullmatch(balance.asset):
            raise InvalidArgument(
                [FieldViolation(f"{where}.asset", "must be an upper-case asset code such as BTC")]
            )
        if balance.asset in seen:
            raise InvalidArgument([FieldViolation(f"{where}.asset", "is listed twice")])
        seen.add(balance.asset)
        available = _amount(balance.available, field=f"{where}.available")
        hold = _amount(balance.hold, field=f"{where}.hold") if balance.hold != "" else Decimal(0)
        total = money.add(available, hold)
        if balance.total != "" and _amount(balance.total, field=f"{where}.total") != total:
            raise InvalidArgument(
                [FieldViolation(f"{where}.total", "must equal available + hold (or be omitted)")]
            )
        parsed.append(Balance(asset=balance.asset, total=total, available=available, hold=hold))
    return tuple(parsed)


def _wallet_id(name: str, *, field: str = "name") -> str:
    return resource_id(name, collection="wallets", field=field)


def _reconciliation_id(name: str) -> str:
    return resource_id(name, collection="reconciliations", field="name")


def _position(token: str, *, query: str, keys: tuple[str, str]) -> tuple[str, str] | None:
    position = decode_page_token(token, query=query)
    if position is None:
        return None
    values = tuple(position.get(k) for k in keys)
    if not all(isinstance(v, str) for v in values):
        raise InvalidArgument([FieldViolation("page_token", "is not a token this service issued")])
    return values[0], values[1]  # type: ignore[return-value]


class WalletServicer(wallets_pb2_grpc.WalletServiceServicer):
    """The wallet service's RPCs."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], reconciler: Reconciler) -> None:
        self._sessions = sessions
        self.reconciler = reconciler

    async def CreateWallet(
        self, request: wallets_pb2.CreateWalletRequest, context: Context
    ) -> wallets_pb2.CreateWalletResponse:
        """Create a wallet with optional balances."""
        given = request.wallet
        exchange = _text(given.exchange, field="wallet.exchange")
        if exchange not in SUPPORTED_EXCHANGES:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "wallet.exchange", f"must be one of {', '.join(SUPPORTED_EXCHANGES)}"
                    )
                ]
            )
        credentials_ref = _text(given.credentials_ref, field="wallet.credentials_ref")
        if not CREDENTIALS_REF.fullmatch(credentials_ref):
            raise InvalidArgument(
                [
                    FieldViolation(
                        "wallet.credentials_ref",
                        "must name an environment variable or secrets-file key "
                        "(letters, digits, underscore)",
                    )
                ]
            )
        wallet = NewWallet(
            display_name=_text(given.display_name, field="wallet.display_name"),
            exchange=exchange,
            account_ref=_text(given.account_ref, field="wallet.account_ref"),
            credentials_ref=credentials_ref,
            balances=balances_from_proto(given.balances, field="wallet.balances"),
        )
        async with self._sessions.begin() as session:
            created = await repository.create_wallet(session=session, wallet=wallet, now=_now())
        return wallets_pb2.CreateWalletResponse(wallet=wallet_to_proto(created))

    async def GetWallet(
        self, request: wallets_pb2.GetWalletRequest, context: Context
    ) -> wallets_pb2.GetWalletResponse:
        """Return one wallet."""
        wallet_id = _wallet_id(request.name)
        async with self._sessions() as session:
            wallet = await repository.get_wallet(session=session, wallet_id=wallet_id)
        return wallets_pb2.GetWalletResponse(wallet=wallet_to_proto(wallet))

    async def ListWallets(
        self, request: wallets_pb2.ListWalletsRequest, context: Context
    ) -> wallets_pb2.ListWalletsResponse:
        """Return a page of wallets with balances, in two SQL statements."""
        limit = page_size(request.page_size, default=50, maximum=1000)
        query = f"exchange={request.exchange}"
        after = _position(request.page_token, query=query, keys=("n", "i"))
        async with self._sessions() as session:
            wallets, more = await repository.list_wallets(
                session=session, exchange=request.exchange or None, after=after, limit=limit
            )
        token = (
            encode_page_token({"n": wallets[-1].display_name, "i": wallets[-1].id}, query=query)
            if more
            else ""
        )
        response = wallets_pb2.ListWalletsResponse(next_page_token=token)
        add = response.wallets.add
        for wallet in wallets:
            fill_listed_wallet(add(), wallet)
        return response

    async def DeleteWallet(
        self, request: wallets_pb2.DeleteWalletRequest, context: Context
    ) -> wallets_pb2.DeleteWalletResponse:
        """Delete a wallet and its balances."""
        wallet_id = _wallet_id(request.name)
        async with self._sessions.begin() as session:
            await repository.delete_wallet(session=session, wallet_id=wallet_id)
        return wallets_pb2.DeleteWalletResponse()

    async def SetBalances(
        self, request: wallets_pb2.SetBalancesRequest, context: Context
    ) -> wallets_pb2.SetBalancesResponse:
        """Upsert a wallet's stored balances."""
        wallet_id = _wallet_id(request.name)
        balances = balances_from_proto(request.balances, field="balances")
        async with self._sessions.begin() as session:
            wallet = await repository.set_balances(
                session=session,
                wallet_id=wallet_id,
                balances=balances,
                replace=request.replace,
                now=_now(),
            )
        return wallets_pb2.SetBalancesResponse(wallet=wallet_to_proto(wallet))

    async def ReconcileWallets(
        self, request: wallets_pb2.ReconcileWalletsRequest, context: Context
    ) -> wallets_pb2.ReconcileWalletsResponse:
        """Start a reconciliation and return it at once."""
        if len(request.wallets) > _MAX_WALLETS_PER_RECONCILIATION:
            raise InvalidArgument(
                [FieldViolation("wallets", f"at most {_MAX_WALLETS_PER_RECONCILIATION} wallets")]
            )
        ids: dict[str, None] = {}  # insertion-ordered, so the request's order is kept
        for index, name in enumerate(request.wallets):
            wallet_id = _wallet_id(name, field=f"wallets[{index}]")
            if wallet_id in ids:
                raise InvalidArgument([FieldViolation(f"wallets[{index}]", "is listed twice")])
            ids[wallet_id] = None
        threshold = (
            _amount(request.threshold, field="threshold") if request.threshold != "" else Decimal(0)
        )
        max_age: float | None = None
        if request.HasField("max_cache_age"):
            duration = request.max_cache_age
            if duration.seconds < 0 or duration.nanos < 0:
                raise InvalidArgument([FieldViolation("max_cache_age", "must not be negative")])
            max_age = duration.ToTimedelta().total_seconds()
        report = await self.reconciler.submit(
            ReconciliationRequest(
                wallet_ids=tuple(ids),
                threshold=threshold,
                max_cache_age=max_age,
                adopt_exchange_balances=request.adopt_exchange_balances,
            ),
            requested_by=current_principal.get().name,
        )
        # A job already done carries its results, so the caller needs no second call; a large
        # one leaves them to WatchReconciliation, as a running job does.
        if len(report.results) > _MAX_RESULTS_IN_RESPONSE:
            report = replace(report, results=())
        return wallets_pb2.ReconcileWalletsResponse(reconciliation=reconciliation_to_proto(report))

    async def GetReconciliation(
        self, request: wallets_pb2.GetReconciliationRequest, context: Context
    ) -> wallets_pb2.GetReconciliationResponse:
        """Return one report with its results."""
        reconciliation_id = _reconciliation_id(request.name)
        async with self._sessions() as session:
            report = await repository.get_reconciliation(
                session=session, reconciliation_id=reconciliation_id
            )
        return wallets_pb2.GetReconciliationResponse(reconciliation=reconciliation_to_proto(report))

    async def ListReconciliations(
        self, request: wallets_pb2.ListReconciliationsRequest, context: Context
    ) -> wallets_pb2.ListReconciliationsResponse:
        """Return a page of reports, newest first, without per-wallet results."""
        limit = page_size(request.page_size, default=50, maximum=1000)
        start, end = time_range_nanos(request.time_range)
        query = f"start={start}&end={end}"
        position = _position(request.page_token, query=query, keys=("t", "i"))
        after = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(position[0]), position[1])
            except ValueError:
                raise InvalidArgument(
                    [FieldViolation("page_token", "is not a token this service issued")]
                ) from None
        async with self._sessions() as session:
            reports, more = await repository.list_reconciliations(
                session=session,
                start=None if start is None else datetime.fromtimestamp(start / 1e9, UTC),
                end=None if end is None else datetime.fromtimestamp(end / 1e9, UTC),
                after=after,
                limit=limit,
            )
        token = (
            encode_page_token(
                {"t": reports[-1].create_time.isoformat(), "i": reports[-1].id}, query=query
            )
            if more
            else ""
        )
        return wallets_pb2.ListReconciliationsResponse(
            reconciliations=[reconciliation_to_proto(r) for r in reports], next_page_token=token
        )

    async def WatchReconciliation(
        self, request: wallets_pb2.WatchReconciliationRequest, context: Context
    ) -> AsyncIterator[wallets_pb2.WatchReconciliationResponse]:
        """Stream stored and new per-wallet results, then the finished report."""
        reconciliation_id = _reconciliation_id(request.name)
        per_message = page_size(
            request.max_results_per_message,
            default=1,
            maximum=_MAX_RESULTS_PER_MESSAGE,
            field="max_results_per_message",
        )
        # Each result as sent, so the final report (whose results are exactly those sent
        # before) copies them instead of building every result again.
        sent: list[wallets_pb2.WalletReconciliation] = []
        async for update in self.reconciler.watch(reconciliation_id):
            if isinstance(update, Reconciliation):
                message = wallets_pb2.WatchReconciliationResponse()
                fill_reconciliation(message.reconciliation, replace(update, results=()))
                message.reconciliation.results.extend(sent)
                yield message
            elif per_message == 1:
                for result in update:
                    message = wallets_pb2.WatchReconciliationResponse()
                    fill_result(message.result, result)
                    sent.append(message.result)
                    yield message
            else:
                # One message per run of results stored together: a message costs far more to
                # stream than a result adds to it (100 results: ~6.7 ms one by one, ~0.2 ms).
                for start in range(0, len(update), per_message):
                    message = wallets_pb2.WatchReconciliationResponse()
                    batch = message.results.results
                    for result in update[start : start + per_message]:
                        fill_result(batch.add(), result)
                    sent.extend(batch)
                    yield message
