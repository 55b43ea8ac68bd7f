"""All SQL of the wallet service: sessions in, domain objects out."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

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
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import Executable, Select

from tapedeck_common.errors import AlreadyExists, NotFound
from tapedeck_common.validation import new_id
from tapedeck_wallets.domain import (
    Balance,
    BalanceDiff,
    ErrorKind,
    ExchangeAccount,
    ListedBalance,
    ListedWallet,
    NewWallet,
    Reconciliation,
    ReconciliationRequest,
    ReconciliationState,
    Wallet,
    WalletAccount,
    WalletResult,
    WalletStatus,
    epoch_micros,
    plain_decimal_text,
)
from tapedeck_wallets.models import (
    BalanceRow,
    ReconciliationItemRow,
    ReconciliationResultRow,
    ReconciliationRow,
    UtcDateTime,
    WalletRow,
)

WalletPosition = tuple[str, str]  # (display_name, id) of the last wallet on a page
ReconciliationPosition = tuple[datetime, str]  # (create_time, id) of the last report on a page


def _balance(row: BalanceRow) -> Balance:
    return Balance(
        asset=row.asset,
        total=row.total,
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


_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


# The reconciliation path runs the statements below on every job: they are built once, since
# building a statement costs more in Python than PostgreSQL takes to run it (a 100-id select:
# ~0.3 ms). Wallet ids arrive as one array parameter on PostgreSQL, `= ANY($1)`, where an IN
# list renders a parameter per id on every call (100 ids: 0.86 -> 0.54 ms); SQLite has no arrays.
def _by_ids(query: _Query) -> dict[bool, _Query]:
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
    return await session.scalar(
        select(WalletRow)
        .where(WalletRow.id == wallet_id)
        .options(selectinload(WalletRow.balances))
        .with_for_update()
    )


def _apply_balances(
    row: WalletRow, balances: Sequence[Balance], *, replace: bool, now: datetime
) -> None:
    existing = {b.asset: b for b in row.balances}
    for balance in balances:
        current = existing.get(balance.asset)
        if current is None:
            row.balances.append(
                BalanceRow(
                    asset=balance.asset,
                    total=balance.total,
                    available=balance.available,
                    hold=balance.hold,
                    update_time=now,
                )
            )
        else:
            current.total, current.available, current.hold = (
                balance.total,
                balance.available,
                balance.hold,
            )
            current.update_time = now
    if replace:
        keep = {b.asset for b in balances}
        row.balances = [b for b in row.balances if b.asset in keep]
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
    _apply_balances(row, balances, replace=replace, now=now)
    await session.flush()
    return _wallet(row, row.balances)


# --- reconciliations ---------------------------------------------------------------------


def _reconciliation(row: ReconciliationRow, results: Sequence[WalletResult] = ()) -> Reconciliation:
    return Reconciliation(
        id=row.id,
        state=ReconciliationState(row.state),
        wallet_ids=tuple(row.wallet_ids),
        threshold=row.threshold,
        adopt_exchange_balances=row.adopt_exchange_balances,
        max_cache_age=row.max_cache_age_seconds,
        matched_count=row.matched_count,
        mismatched_count=row.mismatched_count,
        error_count=row.error_count,
        create_time=row.create_time,
        end_time=row.end_time,
        error_message=row.error_message,
        requested_by=row.requested_by,
        results=tuple(results),
    )


_INSERT_RECONCILIATION = insert(ReconciliationRow)


def new_reconciliation(
    *, request: ReconciliationRequest, requested_by: str, now: datetime
) -> Reconciliation:
    """Return a new RUNNING report for a request, not yet stored."""
    return Reconciliation(
        id=new_id(),
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


def _report_row(report: Reconciliation, owner: str) -> dict[str, Any]:
    return {
        "id": report.id,
        "state": report.state.value,
        "wallet_ids": list(report.wallet_ids),
        "threshold": report.threshold,
        "adopt_exchange_balances": report.adopt_exchange_balances,
        "max_cache_age_seconds": report.max_cache_age,
        "matched_count": report.matched_count,
        "mismatched_count": report.mismatched_count,
        "error_count": report.error_count,
        "requested_by": report.requested_by,
        "owner": owner,
        "heartbeat_time": report.create_time,
        "create_time": report.create_time,
        "end_time": report.end_time,
        "error_message": report.error_message,
    }


async def create_reconciliation(
    *, session: AsyncSession, report: Reconciliation, owner: str
) -> None:
    """Store a report that this process runs (its lease held by `owner`)."""
    connection = await session.connection()
    await connection.execute(_INSERT_RECONCILIATION, _report_row(report, owner))


async def adopt_balances(
    *, session: AsyncSession, wallet_id: str, balances: Sequence[Balance], now: datetime
) -> bool:
    """Replace a wallet's stored balances with the exchange's; False if it no longer exists."""
    row = await _locked_wallet(session, wallet_id)
    if row is None:
        return False
    _apply_balances(row, balances, replace=True, now=now)
    await session.flush()
    return True


_UNFINISHED = [ReconciliationState.QUEUED.value, ReconciliationState.RUNNING.value]

# PostgreSQL types of the columns bulk-inserted through unnest(); amounts travel as text, which
# asyncpg encodes several times faster than Decimal, and PostgreSQL parses exactly.
_ARRAY_TYPES: dict[Any, dict[str, str]] = {
    ReconciliationResultRow: {
        "seq": "integer",
        "wallet_id": "varchar",
        "display_name": "varchar",
        "status": "varchar",
        "error_kind": "varchar",
        "error_message": "text",
        "adopted": "boolean",
        "fetch_time": "timestamptz",
        "from_cache": "boolean",
    },
    ReconciliationItemRow: {
        "seq": "integer",
        "asset": "varchar",
        "stored_total": "numeric",
        "exchange_total": "numeric",
        "difference": "numeric",
        "beyond_threshold": "boolean",
    },
}
_PREFIX = {ReconciliationResultRow: "r_", ReconciliationItemRow: "i_"}


def _unnest_insert(model: Any) -> str:
    # INSERT ... SELECT FROM unnest(arrays): one parameter per column whatever the row count
    # (executemany costs ~20 us a row here).
    types, prefix = _ARRAY_TYPES[model], _PREFIX[model]
    names = ", ".join(types)
    arrays = ", ".join(
        f"CAST(:{prefix}{n} AS {'text' if t == 'numeric' else t}[])" for n, t in types.items()
    )
    selected = ", ".join(f"CAST({n} AS numeric)" if t == "numeric" else n for n, t in types.items())
    return (
        f"INSERT INTO {model.__tablename__} (reconciliation_id, {names})"
        f" SELECT CAST(:reconciliation AS varchar), {selected}"
        f" FROM unnest({arrays}) AS given({names})"
    )


# A batch of results on PostgreSQL: results, items and the report's counts (and, for the last
# batch, its end) in one statement, so one round trip whatever the batch size.
_STORE_SQL = (
    f"WITH results AS ({_unnest_insert(ReconciliationResultRow)}),"
    f" items AS ({_unnest_insert(ReconciliationItemRow)})"
    " UPDATE reconciliations SET matched_count = matched_count + :add_matched,"
    " mismatched_count = mismatched_count + :add_mismatched,"
    " error_count = error_count + :add_errors"
)
_STORE = text(f"{_STORE_SQL} WHERE id = :reconciliation")
_STORE_AND_SUCCEED = text(
    f"{_STORE_SQL}, state = '{ReconciliationState.SUCCEEDED.value}',"
    " end_time = CAST(:succeeded_at AS timestamptz)"
    " WHERE id = :reconciliation AND state IN ("
    + ", ".join(f"'{state}'" for state in _UNFINISHED)
    + ")"
)
# The same on other databases, a statement each.
_COUNTS = {
    "matched_count": ReconciliationRow.matched_count + bindparam("add_matched"),
    "mismatched_count": ReconciliationRow.mismatched_count + bindparam("add_mismatched"),
    "error_count": ReconciliationRow.error_count + bindparam("add_errors"),
}
_ADD_COUNTS = (
    update(ReconciliationRow)
    .where(ReconciliationRow.id == bindparam("reconciliation"))
    .values(**_COUNTS)
)
_ADD_COUNTS_AND_SUCCEED = (
    update(ReconciliationRow)
    .where(
        ReconciliationRow.id == bindparam("reconciliation"),
        ReconciliationRow.state.in_(_UNFINISHED),
    )
    .values(
        state=ReconciliationState.SUCCEEDED.value,
        end_time=bindparam("succeeded_at", type_=UtcDateTime()),
        **_COUNTS,
    )
)


# A report finished when stored (every balance cached), on PostgreSQL: the report, its results
# and items in one statement. The results' foreign key is checked at the statement's end, when
# the report is there.
_REPORT_TYPES = {
    "state": "varchar",
    "wallet_ids": "json",
    "threshold": "numeric",
    "adopt_exchange_balances": "boolean",
    "max_cache_age_seconds": "double precision",
    "matched_count": "integer",
    "mismatched_count": "integer",
    "error_count": "integer",
    "requested_by": "varchar",
    "owner": "varchar",
    "heartbeat_time": "timestamptz",
    "create_time": "timestamptz",
    "end_time": "timestamptz",
    "error_message": "text",
}
_STORE_FINISHED = text(
    "WITH report AS (INSERT INTO reconciliations (id, "
    + ", ".join(_REPORT_TYPES)
    + ") VALUES (CAST(:reconciliation AS varchar), "
    + ", ".join(f"CAST(:{n} AS {t})" for n, t in _REPORT_TYPES.items())
    + f")), results AS ({_unnest_insert(ReconciliationResultRow)})"
    f" {_unnest_insert(ReconciliationItemRow)}"
)


def _columns(results: Sequence[WalletResult]) -> dict[Any, dict[str, list[Any]]]:
    items = [(r.seq, d) for r in results for d in r.diffs]
    return {
        ReconciliationResultRow: {
            "seq": [r.seq for r in results],
            "wallet_id": [r.wallet_id for r in results],
            "display_name": [r.display_name for r in results],
            "status": [r.status.value for r in results],
            "error_kind": [None if r.error_kind is None else r.error_kind.value for r in results],
            "error_message": [r.error_message for r in results],
            "adopted": [r.adopted for r in results],
            "fetch_time": [r.fetch_time for r in results],
            "from_cache": [r.from_cache for r in results],
        },
        ReconciliationItemRow: {
            "seq": [seq for seq, _ in items],
            "asset": [d.asset for _, d in items],
            "stored_total": [d.stored_total for _, d in items],
            "exchange_total": [d.exchange_total for _, d in items],
            "difference": [d.difference for _, d in items],
            "beyond_threshold": [d.beyond_threshold for _, d in items],
        },
    }


def _unnest_parameters(columns: dict[Any, dict[str, list[Any]]]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for model, values in columns.items():
        types, prefix = _ARRAY_TYPES[model], _PREFIX[model]
        for name, column in values.items():
            parameters[prefix + name] = (
                [format(v, "f") for v in column] if types[name] == "numeric" else column
            )
    return parameters


async def _insert_results(
    connection: AsyncConnection, reconciliation_id: str, columns: dict[Any, dict[str, list[Any]]]
) -> None:
    # Other databases: plain multi-row inserts, a statement per table.
    for model, values in columns.items():
        rows = [{"reconciliation_id": reconciliation_id} for _ in next(iter(values.values()))]
        for name, column in values.items():
            for row, value in zip(rows, column, strict=True):
                row[name] = value
        if rows:
            await connection.execute(insert(model), rows)


async def store_results(
    *,
    session: AsyncSession,
    reconciliation_id: str,
    results: Sequence[WalletResult],
    succeeded_at: datetime | None,
) -> bool:
    """Store results with their per-asset items and add them to the report's counts.

    With `succeeded_at`, the report is also marked SUCCEEDED; False is returned when it had
    already finished (a replica that saw its lease lapse failed it). One statement on
    PostgreSQL.
    """
    statuses = [r.status for r in results]
    counts: dict[str, Any] = {
        "reconciliation": reconciliation_id,
        "add_matched": statuses.count(WalletStatus.MATCHED),
        "add_mismatched": statuses.count(WalletStatus.MISMATCHED),
        "add_errors": statuses.count(WalletStatus.EXCHANGE_ERROR),
    }
    columns = _columns(results)
    connection = await session.connection()
    count: Executable
    count_and_succeed: Executable
    if _postgres(connection):
        parameters = {**counts, **_unnest_parameters(columns)}
        count, count_and_succeed = _STORE, _STORE_AND_SUCCEED
    else:
        await _insert_results(connection, reconciliation_id, columns)
        parameters, count, count_and_succeed = counts, _ADD_COUNTS, _ADD_COUNTS_AND_SUCCEED
    if succeeded_at is None:
        await connection.execute(count, parameters)
        return True
    ended = await connection.execute(
        count_and_succeed, {**parameters, "succeeded_at": succeeded_at}
    )
    if ended.rowcount == 1:
        return True
    # Already finished elsewhere: the results are stored, their counts still added.
    await connection.execute(_ADD_COUNTS, counts)
    return False


async def store_finished(
    *,
    session: AsyncSession,
    report: Reconciliation,
    owner: str,
    results: Sequence[WalletResult],
) -> None:
    """Store a report that is finished already, with its results (one statement on PostgreSQL)."""
    connection = await session.connection()
    if not _postgres(connection):
        await create_reconciliation(session=session, report=report, owner=owner)
        await _insert_results(connection, report.id, _columns(results))
        return
    row = _report_row(report, owner)
    parameters = _unnest_parameters(_columns(results))
    parameters["reconciliation"] = row.pop("id")
    row["wallet_ids"] = json.dumps(row["wallet_ids"])
    row["threshold"] = format(row["threshold"], "f")
    await connection.execute(_STORE_FINISHED, {**parameters, **row})


async def finish_reconciliation(
    *,
    session: AsyncSession,
    reconciliation_id: str,
    state: ReconciliationState,
    error_message: str,
    now: datetime,
) -> bool:
    """Mark a reconciliation finished unless it already is; return whether this call did."""
    result = await session.execute(
        update(ReconciliationRow)
        .where(
            ReconciliationRow.id == reconciliation_id,
            ReconciliationRow.state.in_(_UNFINISHED),
        )
        .values(state=state.value, error_message=error_message, end_time=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def renew_leases(
    *, session: AsyncSession, reconciliation_ids: Sequence[str], now: datetime
) -> None:
    """Extend the lease of reconciliations this process is running."""
    if reconciliation_ids:
        await session.execute(
            update(ReconciliationRow)
            .where(ReconciliationRow.id.in_(list(reconciliation_ids)))
            .values(heartbeat_time=now)
        )


async def fail_abandoned(
    *, session: AsyncSession, stale_before: datetime, reason: str, now: datetime
) -> list[str]:
    """Mark unfinished reconciliations whose lease lapsed as FAILED; return their ids."""
    ids = list(
        (
            await session.scalars(
                select(ReconciliationRow.id).where(
                    ReconciliationRow.state.in_(_UNFINISHED),
                    ReconciliationRow.heartbeat_time < stale_before,
                )
            )
        ).all()
    )
    if ids:
        await session.execute(
            update(ReconciliationRow)
            .where(
                ReconciliationRow.id.in_(ids),
                ReconciliationRow.state.in_(_UNFINISHED),
            )
            .values(state=ReconciliationState.FAILED.value, error_message=reason, end_time=now)
        )
    return ids


async def get_reconciliation(
    *, session: AsyncSession, reconciliation_id: str, with_results: bool = True
) -> Reconciliation:
    """Return a report, with its results in completion order when asked."""
    row = await session.get(ReconciliationRow, reconciliation_id, populate_existing=True)
    if row is None:
        raise NotFound(f"reconciliations/{reconciliation_id} does not exist")
    results = (
        await results_after(session=session, reconciliation_id=reconciliation_id, seq=0)
        if with_results
        else []
    )
    return _reconciliation(row, results)


async def results_after(
    *, session: AsyncSession, reconciliation_id: str, seq: int
) -> list[WalletResult]:
    """Return a report's results with seq above `seq`, in completion order (two statements)."""
    connection = await session.connection()
    rows = (
        await connection.execute(
            select(ReconciliationResultRow.__table__)
            .where(
                ReconciliationResultRow.reconciliation_id == reconciliation_id,
                ReconciliationResultRow.seq > seq,
            )
            .order_by(ReconciliationResultRow.seq)
        )
    ).all()
    if not rows:
        return []
    items = await connection.execute(
        select(ReconciliationItemRow.__table__)
        .where(
            ReconciliationItemRow.reconciliation_id == reconciliation_id,
            ReconciliationItemRow.seq > seq,
        )
        .order_by(ReconciliationItemRow.seq, ReconciliationItemRow.asset)
    )
    by_seq: dict[int, list[BalanceDiff]] = defaultdict(list)
    for item in items:
        by_seq[item.seq].append(
            BalanceDiff(
                asset=item.asset,
                stored_total=item.stored_total,
                exchange_total=item.exchange_total,
                difference=item.difference,
                beyond_threshold=item.beyond_threshold,
            )
        )
    return [
        WalletResult(
            wallet_id=r.wallet_id,
            display_name=r.display_name,
            status=WalletStatus(r.status),
            diffs=tuple(by_seq.get(r.seq, ())),
            error_kind=ErrorKind(r.error_kind) if r.error_kind is not None else None,
            error_message=r.error_message,
            adopted=r.adopted,
            fetch_time=r.fetch_time,
            from_cache=r.from_cache,
            seq=r.seq,
        )
        for r in rows
    ]


async def list_reconciliations(
    *,
    session: AsyncSession,
    start: datetime | None,
    end: datetime | None,
    after: ReconciliationPosition | None,
    limit: int,
) -> tuple[list[Reconciliation], bool]:
    """Return a page of reports, newest first, and whether more follow."""
    query = (
        select(ReconciliationRow)
        .order_by(ReconciliationRow.create_time.desc(), ReconciliationRow.id.desc())
        .limit(limit + 1)
    )
    if start is not None:
        query = query.where(ReconciliationRow.create_time >= start)
    if end is not None:
        query = query.where(ReconciliationRow.create_time < end)
    if after is not None:
        time, reconciliation_id = after
        query = query.where(
            or_(
                ReconciliationRow.create_time < time,
                and_(
                    ReconciliationRow.create_time == time,
                    ReconciliationRow.id < reconciliation_id,
                ),
            )
        )
    rows = list((await session.scalars(query)).all())
    return [_reconciliation(r) for r in rows[:limit]], len(rows) > limit
