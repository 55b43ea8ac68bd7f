"""All SQL on wallets and their balances: sessions in, domain objects out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import Select

from tapedeck_common import money
from tapedeck_common.errors import AlreadyExists, NotFound
from tapedeck_common.validation import new_id
from tapedeck_wallets.amounts import plain_decimal_text
from tapedeck_wallets.exchange.domain import ExchangeAccount
from tapedeck_wallets.models import BalanceRow, WalletRow
from tapedeck_wallets.timestamps import epoch_micros
from tapedeck_wallets.wallets.domain import (
    Balance,
    ListedBalance,
    ListedWallet,
    NewWallet,
    Wallet,
    WalletAccount,
    balances_after,
)
from tapedeck_wallets.wallets.totals import AssetTotal

WalletPosition = tuple[str, str]  # (display_name, id) of the last wallet on a page


def _balance(row: BalanceRow) -> Balance:
    return Balance(
        asset=row.asset,
        available=row.available,
        hold=row.hold,
        update_time=row.update_time,
    )


def _wallet(row: WalletRow, balances: Sequence[BalanceRow]) -> Wallet:
    return Wallet(
        id=row.id,
        display_name=row.display_name,
        exchange=row.exchange,
        account_ref=row.account_ref,
        credentials_ref=row.credentials_ref,
        balances=tuple(_balance(b) for b in sorted(balances, key=lambda b: b.asset)),
        create_time=row.create_time,
        update_time=row.update_time,
    )


async def create_wallet(*, session: AsyncSession, wallet: NewWallet, now: datetime) -> Wallet:
    """Insert a wallet and its balances; a taken display name is ALREADY_EXISTS."""
    row = WalletRow(
        id=new_id(),
        display_name=wallet.display_name,
        exchange=wallet.exchange,
        account_ref=wallet.account_ref,
        credentials_ref=wallet.credentials_ref,
        create_time=now,
        update_time=now,
    )
    row.balances = [
        BalanceRow(
            asset=b.asset, total=b.total, available=b.available, hold=b.hold, update_time=now
        )
        for b in wallet.balances
    ]
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise AlreadyExists(f"a wallet named {wallet.display_name!r} already exists") from None
    return _wallet(row, row.balances)


async def get_wallet(*, session: AsyncSession, wallet_id: str) -> Wallet:
    """Return one wallet with its balances."""
    row = await session.scalar(
        select(WalletRow).where(WalletRow.id == wallet_id).options(selectinload(WalletRow.balances))
    )
    if row is None:
        raise NotFound(f"wallets/{wallet_id} does not exist")
    return _wallet(row, row.balances)


def _amount_text(column: Any, postgres: bool) -> Any:
    # Amounts as text, since the proto carries strings: PostgreSQL trims the scale and prints
    # them (no Decimal is decoded, built or formatted in Python); SQLite stores them as text.
    return cast(func.trim_scale(column) if postgres else column, Text)


def _micros(column: Any, postgres: bool) -> Any:
    # PostgreSQL hands times over as exact epoch microseconds (EXTRACT is numeric): decoding a
    # timestamptz builds a datetime and a timedelta, dearer than the query for 1,000 wallets.
    return cast(func.extract("epoch", column) * 1_000_000, BigInteger) if postgres else column


# What names a wallet and its exchange account, in this order.
_WALLET_IDENTITY = (
    WalletRow.id,
    WalletRow.display_name,
    WalletRow.exchange,
    WalletRow.account_ref,
    WalletRow.credentials_ref,
)


def _listed_wallets(postgres: bool, by_exchange: bool, after: bool) -> Select[Any]:
    query = (
        select(
            *_WALLET_IDENTITY,
            _micros(WalletRow.create_time, postgres),
            _micros(WalletRow.update_time, postgres),
        )
        .order_by(WalletRow.display_name, WalletRow.id)
        .limit(bindparam("limit"))
    )
    if by_exchange:
        query = query.where(WalletRow.exchange == bindparam("exchange"))
    if after:
        name = bindparam("after_name", type_=String())
        query = query.where(
            or_(
                WalletRow.display_name > name,
                and_(WalletRow.display_name == name, WalletRow.id > bindparam("after_id")),
            )
        )
    return query


def _listed_balances(postgres: bool, by_exchange: bool) -> Select[Any]:
    # The whole page's balances, bounded by the page's first and last (display_name, id): four
    # parameters whatever the page size, where an IN list of 1,000 ids costs more to render
    # than the query takes (and `= ANY($1)` plans worse). Both are immutable, so every wallet
    # on the page is in the range; a wallet created in the range since the first statement is
    # not on the page and its balances are skipped.
    position = tuple_(WalletRow.display_name, WalletRow.id)
    query = (
        select(
            BalanceRow.wallet_id,
            BalanceRow.asset,
            _amount_text(BalanceRow.total, postgres),
            _amount_text(BalanceRow.available, postgres),
            _amount_text(BalanceRow.hold, postgres),
            _micros(BalanceRow.update_time, postgres),
        )
        .join(WalletRow, WalletRow.id == BalanceRow.wallet_id)
        .where(
            position >= tuple_(bindparam("first_name"), bindparam("first_id")),
            position <= tuple_(bindparam("last_name"), bindparam("last_id")),
        )
        .order_by(BalanceRow.wallet_id, BalanceRow.asset)
    )
    if by_exchange:
        query = query.where(WalletRow.exchange == bindparam("exchange"))
    return query


# Built once: building these per call cost more than decoding the page (see _by_ids below).
_LISTED_WALLETS = {
    (postgres, by_exchange, after): _listed_wallets(postgres, by_exchange, after)
    for postgres in (True, False)
    for by_exchange in (True, False)
    for after in (True, False)
}
_LISTED_BALANCES = {
    (postgres, by_exchange): _listed_balances(postgres, by_exchange)
    for postgres in (True, False)
    for by_exchange in (True, False)
}


async def list_wallets(
    *,
    session: AsyncSession,
    exchange: str | None,
    after: WalletPosition | None,
    limit: int,
) -> tuple[list[ListedWallet], bool]:
    """Return a page of wallets by display name and whether more follow, in two statements."""
    # Column rows through the session's connection, not ORM entities: a 1,000-wallet page has
    # 6,000 rows and identity-mapped instances cost several times the query itself.
    connection = await session.connection()
    postgres = _postgres(connection)
    by_exchange = exchange is not None
    parameters: dict[str, Any] = {"limit": limit + 1, "exchange": exchange}
    if after is not None:
        parameters["after_name"], parameters["after_id"] = after
    query = _LISTED_WALLETS[postgres, by_exchange, after is not None]
    rows = (await connection.execute(query, parameters)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return [], False
    first, last = rows[0], rows[-1]
    bounds = {
        "first_name": first[1],
        "first_id": first[0],
        "last_name": last[1],
        "last_id": last[0],
        "exchange": exchange,
    }
    # all() fetches in one call; iterating the result would fetch row by row.
    balance_rows = (await connection.execute(_LISTED_BALANCES[postgres, by_exchange], bounds)).all()
    by_wallet: dict[str, list[ListedBalance]] = defaultdict(list)
    if postgres:
        for wallet_id, asset, total, available, hold, updated in balance_rows:
            by_wallet[wallet_id].append((asset, total, available, hold, updated))
    else:
        for wallet_id, asset, total, available, hold, updated in balance_rows:
            by_wallet[wallet_id].append(
                (
                    asset,
                    plain_decimal_text(total),
                    plain_decimal_text(available),
                    plain_decimal_text(hold),
                    epoch_micros(updated),
                )
            )
    listed = [
        ListedWallet(
            id=wallet_id,
            display_name=display_name,
            exchange=exchange_name,
            account_ref=account_ref,
            credentials_ref=credentials_ref,
            balances=tuple(by_wallet.get(wallet_id, ())),
            create_micros=created if postgres else epoch_micros(created),
            update_micros=updated if postgres else epoch_micros(updated),
        )
        for wallet_id, display_name, exchange_name, account_ref, credentials_ref, created, updated in rows
    ]
    return listed, more


# The reconciliation path runs the statements below on every job: they are built once, since
# building a statement costs more in Python than PostgreSQL takes to run it (a 100-id select:
# ~0.3 ms). Wallet ids arrive as one array parameter on PostgreSQL, `= ANY($1)`, where an IN
# list renders a parameter per id on every call (100 ids: 0.86 -> 0.54 ms); SQLite has no arrays.
def _by_ids[Query: Select[*tuple[Any, ...]]](query: Query) -> dict[bool, Query]:
    return {
        True: query.where(WalletRow.id == any_(bindparam("ids", type_=ARRAY(String)))),
        False: query.where(WalletRow.id.in_(bindparam("ids", expanding=True))),
    }


_TARGETS = (
    select(*_WALLET_IDENTITY, BalanceRow.asset, BalanceRow.total)
    .select_from(WalletRow)
    .outerjoin(BalanceRow, BalanceRow.wallet_id == WalletRow.id)
    # By id: a fixed lock order, so concurrent jobs cannot deadlock on each other's wallets.
    .order_by(WalletRow.id)
)
_ALL_TARGETS = {False: _TARGETS, True: _TARGETS.with_for_update(of=WalletRow)}
_TARGETS_BY_ID = {lock: _by_ids(query) for lock, query in _ALL_TARGETS.items()}
_TOTALS = _by_ids(
    select(WalletRow.id, BalanceRow.asset, BalanceRow.total)
    .select_from(WalletRow)
    .outerjoin(BalanceRow, BalanceRow.wallet_id == WalletRow.id)
)
_LOCKED_TOTALS = {
    postgres: query.order_by(WalletRow.id).with_for_update(of=WalletRow)
    for postgres, query in _TOTALS.items()
}


def _postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


async def reconciliation_targets(
    *, session: AsyncSession, wallet_ids: Sequence[str] | None, lock: bool
) -> list[tuple[WalletAccount, dict[str, Decimal]]]:
    """Return the named wallets that exist with each asset's stored total, in one statement.

    None names every wallet, returned by display name. With `lock`, the wallets' rows stay
    locked for update until the transaction ends.
    """
    connection = await session.connection()
    if wallet_ids is None:
        rows = await connection.execute(_ALL_TARGETS[lock])
    else:
        query = _TARGETS_BY_ID[lock][_postgres(connection)]
        rows = await connection.execute(query, {"ids": list(wallet_ids)})
    targets: dict[str, tuple[WalletAccount, dict[str, Decimal]]] = {}
    for wallet_id, name, exchange, account_ref, credentials_ref, asset, total in rows.all():
        target = targets.get(wallet_id)
        if target is None:
            account = ExchangeAccount(
                exchange=exchange, account_ref=account_ref, credentials_ref=credentials_ref
            )
            target = targets[wallet_id] = (WalletAccount(wallet_id, name, account), {})
        if asset is not None:  # a wallet without balances joins one row of NULLs
            target[1][asset] = total
    found = list(targets.values())
    if wallet_ids is None:
        found.sort(key=lambda target: target[0].display_name)
    return found


async def stored_totals(
    *, session: AsyncSession, wallet_ids: Sequence[str], lock: bool
) -> dict[str, dict[str, Decimal]]:
    """Return the stored total of each asset of the wallets that still exist, in one statement.

    With `lock`, the wallets' rows stay locked for update until the transaction ends.
    """
    if not wallet_ids:
        return {}
    connection = await session.connection()
    query = (_LOCKED_TOTALS if lock else _TOTALS)[_postgres(connection)]
    totals: dict[str, dict[str, Decimal]] = {}
    for wallet_id, asset, total in (
        await connection.execute(query, {"ids": list(wallet_ids)})
    ).all():
        assets = totals.get(wallet_id)
        if assets is None:
            assets = totals[wallet_id] = {}
        if asset is not None:  # a wallet without balances joins one row of NULLs
            assets[asset] = total
    return totals


async def delete_wallet(*, session: AsyncSession, wallet_id: str) -> None:
    """Delete a wallet; its balances go with it."""
    result = await session.execute(delete(WalletRow).where(WalletRow.id == wallet_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"wallets/{wallet_id} does not exist")


async def _locked_wallet(session: AsyncSession, wallet_id: str) -> WalletRow | None:
    # The first statement of its transaction. SQLite ignores FOR UPDATE and its driver begins a
    # transaction only at the first write, so two writers would both read the balances before
    # either wrote (one then breaking the unique asset key): take the write lock first instead,
    # waiting for it as PostgreSQL waits for the row lock.
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("BEGIN IMMEDIATE"))
    return await session.scalar(
        select(WalletRow)
        .where(WalletRow.id == wallet_id)
        .options(selectinload(WalletRow.balances))
        .with_for_update()
    )


def _store_balances(
    row: WalletRow, given: Sequence[Balance], *, replace: bool, now: datetime
) -> None:
    # Rows of assets still held are updated in place (an unchanged one is not written); the
    # relationship's delete-orphan removes the rows of assets no longer held.
    existing = {b.asset: b for b in row.balances}
    kept = []
    current = [_balance(b) for b in row.balances]
    for balance in balances_after(current, given, replace=replace, now=now):
        stored = existing.get(balance.asset) or BalanceRow(asset=balance.asset)
        stored.total, stored.available, stored.hold = balance.total, balance.available, balance.hold
        stored.update_time = balance.update_time or now
        kept.append(stored)
    row.balances = kept
    row.update_time = now


async def set_balances(
    *,
    session: AsyncSession,
    wallet_id: str,
    balances: Sequence[Balance],
    replace: bool,
    now: datetime,
) -> Wallet:
    """Upsert a wallet's balances, removing unlisted assets when `replace`."""
    row = await _locked_wallet(session, wallet_id)
    if row is None:
        raise NotFound(f"wallets/{wallet_id} does not exist")
    _store_balances(row, balances, replace=replace, now=now)
    await session.flush()
    return _wallet(row, row.balances)


async def adopt_balances(
    *, session: AsyncSession, wallet_id: str, balances: Sequence[Balance], now: datetime
) -> bool:
    """Replace a wallet's stored balances with the exchange's; False if it no longer exists."""
    row = await _locked_wallet(session, wallet_id)
    if row is None:
        return False
    _store_balances(row, balances, replace=True, now=now)
    await session.flush()
    return True


# PostgreSQL sums NUMERIC exactly. SQLite keeps amounts as text and its SUM goes through a
# 64-bit float, so there each group's amounts come back joined and are added as Decimals.
_BALANCE_TOTALS = {
    True: select(BalanceRow.asset, func.sum(BalanceRow.total), func.count())
    .group_by(BalanceRow.asset)
    .order_by(BalanceRow.asset),
    False: select(
        BalanceRow.asset, func.group_concat(BalanceRow.total, " ", type_=Text), func.count()
    )
    .group_by(BalanceRow.asset)
    .order_by(BalanceRow.asset),
}


async def balance_totals(*, session: AsyncSession) -> list[AssetTotal]:
    """Return each asset's stored total summed over every wallet, by asset, in one statement."""
    connection = await session.connection()
    postgres = _postgres(connection)
    rows: list[tuple[str, Any, int]] = [
        (row[0], row[1], row[2])
        for row in (await connection.execute(_BALANCE_TOTALS[postgres])).all()
    ]
    if postgres:
        return [AssetTotal(asset, total, count) for asset, total, count in rows]
    totals = []
    for asset, joined, count in rows:
        total = Decimal(0)
        for amount in joined.split(" "):
            total = money.add(total, Decimal(amount))
        totals.append(AssetTotal(asset, total, count))
    return totals
