"""Wallet protos <-> domain objects; request fields are parsed here, naming their path."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import decimal_string, resource_id
from tapedeck_wallets.amounts import decimal_text
from tapedeck_wallets.exchange.domain import ErrorKind
from tapedeck_wallets.timestamps import stamp, stamp_micros
from tapedeck_wallets.wallets.domain import (
    Balance,
    ListedWallet,
    NewWallet,
    Wallet,
    each_asset_once,
)
from tapedeck_wallets.wallets.totals import BalanceTotals, PriceStatus

_MAX_TEXT = 200

ERROR_KINDS = EnumMapping(
    wallets_pb2.ExchangeErrorKind.DESCRIPTOR,
    {
        wallets_pb2.EXCHANGE_ERROR_KIND_TIMEOUT: ErrorKind.TIMEOUT,
        wallets_pb2.EXCHANGE_ERROR_KIND_RATE_LIMITED: ErrorKind.RATE_LIMITED,
        wallets_pb2.EXCHANGE_ERROR_KIND_UNAVAILABLE: ErrorKind.UNAVAILABLE,
        wallets_pb2.EXCHANGE_ERROR_KIND_BAD_RESPONSE: ErrorKind.BAD_RESPONSE,
        wallets_pb2.EXCHANGE_ERROR_KIND_AUTHENTICATION: ErrorKind.AUTHENTICATION,
    },
)
_PRICE_STATUSES = EnumMapping(
    wallets_pb2.PriceStatus.DESCRIPTOR,
    {
        wallets_pb2.PRICE_STATUS_PRICED: PriceStatus.PRICED,
        wallets_pb2.PRICE_STATUS_QUOTE: PriceStatus.QUOTE,
        wallets_pb2.PRICE_STATUS_NO_MARKET: PriceStatus.NO_MARKET,
        wallets_pb2.PRICE_STATUS_UNAVAILABLE: PriceStatus.UNAVAILABLE,
    },
)


def wallet_id(name: str, *, field: str = "name") -> str:
    """Return the id of a `wallets/{id}` name."""
    return resource_id(name, collection="wallets", field=field)


def _text(value: str, *, field: str) -> str:
    """Return a required short text: not blank, no surrounding whitespace, bounded."""
    if value.strip() == "":
        raise InvalidArgument([FieldViolation(field, "is required")])
    if value != value.strip():
        raise InvalidArgument([FieldViolation(field, "must not start or end with whitespace")])
    if len(value) > _MAX_TEXT:
        raise InvalidArgument([FieldViolation(field, f"must be at most {_MAX_TEXT} characters")])
    return value


def new_wallet(given: wallets_pb2.Wallet, *, field: str) -> NewWallet:
    """Return the wallet a CreateWallet request describes."""
    return NewWallet.stated(
        display_name=_text(given.display_name, field=f"{field}.display_name"),
        exchange=_text(given.exchange, field=f"{field}.exchange"),
        account_ref=_text(given.account_ref, field=f"{field}.account_ref"),
        credentials_ref=_text(given.credentials_ref, field=f"{field}.credentials_ref"),
        balances=balances(given.balances, field=f"{field}.balances"),
        field=field,
    )


def balances(given: Sequence[wallets_pb2.Balance], *, field: str) -> tuple[Balance, ...]:
    """Return the balances of a request: exact decimals, a hold of 0 and the total optional."""
    parsed = []
    for index, balance in enumerate(given):
        where = f"{field}[{index}]"
        parsed.append(
            Balance.stated(
                asset=balance.asset,
                available=decimal_string(balance.available, field=f"{where}.available"),
                hold=decimal_string(balance.hold, field=f"{where}.hold", default=Decimal(0)),
                total=(
                    None
                    if balance.total == ""
                    else decimal_string(balance.total, field=f"{where}.total")
                ),
                field=where,
            )
        )
    return each_asset_once(parsed, field=field)


def fill_wallet(message: wallets_pb2.Wallet, wallet: Wallet) -> None:
    """Write a wallet into a new, empty proto in place."""
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
            stamp(item.update_time, balance.update_time)
    stamp(message.create_time, wallet.create_time)
    stamp(message.update_time, wallet.update_time)


def fill_listed_wallet(message: wallets_pb2.Wallet, wallet: ListedWallet) -> None:
    """Write a listed wallet (amounts already text) into a new, empty proto in place."""
    message.name = f"wallets/{wallet.id}"
    message.display_name = wallet.display_name
    message.exchange = wallet.exchange
    message.account_ref = wallet.account_ref
    message.credentials_ref = wallet.credentials_ref
    add = message.balances.add
    for asset, total, available, hold, updated in wallet.balances:
        stamp_micros(
            add(asset=asset, total=total, available=available, hold=hold).update_time, updated
        )
    stamp_micros(message.create_time, wallet.create_micros)
    stamp_micros(message.update_time, wallet.update_micros)


def fill_balance_totals(
    message: wallets_pb2.GetBalanceTotalsResponse, totals: BalanceTotals
) -> None:
    """Write valued balance totals into a new, empty response in place."""
    message.quote_currency = totals.quote
    for asset in totals.assets:
        item = message.assets.add(
            asset=asset.total.asset,
            total=decimal_text(asset.total.total),
            wallet_count=asset.total.wallet_count,
            price_status=_PRICE_STATUSES.to_proto(asset.status),
        )
        value = asset.value
        if asset.price is not None and value is not None:
            item.price = decimal_text(asset.price)
            item.value = decimal_text(value)
    message.total_value = decimal_text(totals.total_value)
    message.unpriced_count = totals.unpriced_count
    if totals.failure is not None:
        message.price_error_kind = ERROR_KINDS.to_proto(totals.failure.kind)
        message.price_error_message = totals.failure.message
    if totals.price_time is not None:
        stamp(message.price_time, totals.price_time)
