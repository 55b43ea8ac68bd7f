"""All SQL of the wallet service: sessions in, domain objects out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from tapedeck_common.errors import AlreadyExists, NotFound
from tapedeck_common.validation import new_id
from tapedeck_wallets.domain import (
    Balance,
    BalanceDiff,
    ErrorKind,
    ListedBalance,
    ListedWallet,
    NewWallet,
    Reconciliation,
    ReconciliationRequest,
    ReconciliationState,
    Wallet,
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


_WALLET_COLUMNS = (
    WalletRow.id,
    WalletRow.display_name,
    WalletRow.exchange,
    WalletRow.account_ref,
    WalletRow.credentials_ref,
    WalletRow.create_time,
    WalletRow.update_time,
)
_BALANCE_COLUMNS = (
    BalanceRow.wallet_id,
    BalanceRow.asset,
    BalanceRow.total,
    BalanceRow.available,
    BalanceRow.hold,
    BalanceRow.update_time,
)


def _listed_balance_columns(dialect: str) -> tuple[Any, ...]:
    # Amounts as text, since the proto carries strings: PostgreSQL trims the scale and prints
    # them (no Decimal is decoded, built or formatted in Python); SQLite stores them as text.
    def amount(column: Any) -> Any:
        return cast(func.trim_scale(column) if dialect == "postgresql" else column, Text)

    # PostgreSQL hands the update time over as exact epoch microseconds (EXTRACT is numeric).
    updated = (
        cast(func.extract("epoch", BalanceRow.update_time) * 1_000_000, BigInteger)
        if dialect == "postgresql"
        else BalanceRow.update_time
    )
    return (
        BalanceRow.wallet_id,
        BalanceRow.asset,
        amount(BalanceRow.total),
        amount(BalanceRow.available),
        amount(BalanceRow.hold),
        updated,
    )


async def list_wallets(
    *,
    session: AsyncSession,
    exchange: str | None,
    after: WalletPosition | None,
    limit: int,
) -> tuple[list[ListedWallet], bool]:
    """Return a page of wallets by display name and whether more follow, in two statements."""
    # Column rows, not ORM entities: a 1,000-wallet page has 6,000 rows and identity-mapped
    # instances cost several times the query itself.
    query = select(*_WALLET_COLUMNS).order_by(WalletRow.display_name, WalletRow.id).limit(limit + 1)
    if exchange is not None:
        query = query.where(WalletRow.exchange == exchange)
    if after is not None:
        name, wallet_id = after
        query = query.where(
            or_(
                WalletRow.display_name > name,
                and_(WalletRow.display_name == name, WalletRow.id > wallet_id),
            )
        )
    # Core rows through the session's connection: no ORM result machinery per row.
    connection = await session.connection()
    rows = (await connection.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return [], False
    dialect = connection.dialect.name
    # One statement for the whole page's balances, bounded by the page's first and last
    # (display_name, id): four parameters whatever the page size, where an IN list of 1,000 ids
    # costs more to render than the query takes (and `= ANY($1)` plans worse). Both are
    # immutable, so every wallet on the page is in the range; a wallet created in the range
    # since the first statement is not on the page and its balances are skipped below.
    first, last = rows[0], rows[-1]
    balance_query = (
        select(*_listed_balance_columns(dialect))
        .join(WalletRow, WalletRow.id == BalanceRow.wallet_id)
        .where(
            tuple_(WalletRow.display_name, WalletRow.id) >= tuple_(first[1], first[0]),
            tuple_(WalletRow.display_name, WalletRow.id) <= tuple_(last[1], last[0]),
        )
        .order_by(BalanceRow.wallet_id, BalanceRow.asset)
    )
    if exchange is not None:
        balance_query = balance_query.where(WalletRow.exchange == exchange)
    # all() fetches in one call; iterating the result would fetch row by row.
    balance_rows = (await connection.execute(balance_query)).all()
    by_wallet: dict[str, list[ListedBalance]] = defaultdict(list)
    if dialect == "postgresql":
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
            create_time=created,
            update_time=updated,
        )
        for wallet_id, display_name, exchange_name, account_ref, credentials_ref, created, updated in rows
    ]
    return listed, more


async def _load_wallets(
    session: AsyncSession, wallet_ids: Sequence[str], *, lock: bool
) -> dict[str, Wallet]:
    connection = await session.connection()
    query = select(*_WALLET_COLUMNS).where(WalletRow.id.in_(list(wallet_ids)))
    if lock:
        # A fixed lock order, so concurrent jobs cannot deadlock on each other's wallets.
        query = query.order_by(WalletRow.id).with_for_update()
    rows = (await connection.execute(query)).all()
    if not rows:
        return {}
    balance_rows = await connection.execute(
        select(*_BALANCE_COLUMNS)
        .where(BalanceRow.wallet_id.in_([r[0] for r in rows]))
        .order_by(BalanceRow.wallet_id, BalanceRow.asset)
    )
    return {w.id: w for w in _assemble(rows, balance_rows.all())}


def _assemble(rows: Sequence[Any], balance_rows: Iterable[Any]) -> list[Wallet]:
    by_wallet: dict[str, list[Balance]] = defaultdict(list)
    for wallet_id, asset, total, available, hold, updated in balance_rows:
        by_wallet[wallet_id].append(
            Balance(asset=asset, total=total, available=available, hold=hold, update_time=updated)
        )
    return [
        Wallet(
            id=wallet_id,
            display_name=display_name,
            exchange=exchange_name,
            account_ref=account_ref,
            credentials_ref=credentials_ref,
            balances=tuple(by_wallet.get(wallet_id, ())),
            create_time=created,
            update_time=updated,
        )
        for wallet_id, display_name, exchange_name, account_ref, credentials_ref, created, updated in rows
    ]


async def get_wallets(*, session: AsyncSession, wallet_ids: Sequence[str]) -> dict[str, Wallet]:
    """Return the named wallets that exist, by id (two statements)."""
    return await _load_wallets(session, wallet_ids, lock=False)


async def lock_wallets(*, session: AsyncSession, wallet_ids: Sequence[str]) -> dict[str, Wallet]:
    """Return the wallets that still exist, locked for update in this transaction, by id."""
    return await _load_wallets(session, wallet_ids, lock=True)


async def all_wallet_ids(*, session: AsyncSession) -> list[str]:
    """Return every wallet's id, by display name."""
    return list(
        (await session.scalars(select(WalletRow.id).order_by(WalletRow.display_name))).all()
    )


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


async def create_reconciliation(
    *,
    session: AsyncSession,
    request: ReconciliationRequest,
    requested_by: str,
    owner: str,
    now: datetime,
) -> Reconciliation:
    """Store a QUEUED reconciliation owned by this process."""
    row = ReconciliationRow(
        id=new_id(),
        state=ReconciliationState.QUEUED.value,
        wallet_ids=list(request.wallet_ids),
        threshold=request.threshold,
        adopt_exchange_balances=request.adopt_exchange_balances,
        max_cache_age_seconds=request.max_cache_age,
        matched_count=0,
        mismatched_count=0,
        error_count=0,
        requested_by=requested_by,
        owner=owner,
        heartbeat_time=now,
        create_time=now,
        end_time=None,
        error_message="",
    )
    session.add(row)
    await session.flush()
    return _reconciliation(row)


async def mark_running(*, session: AsyncSession, reconciliation_id: str, now: datetime) -> None:
    """Move a queued reconciliation to RUNNING."""
    await session.execute(
        update(ReconciliationRow)
        .where(
            ReconciliationRow.id == reconciliation_id,
            ReconciliationRow.state == ReconciliationState.QUEUED.value,
        )
        .values(state=ReconciliationState.RUNNING.value, heartbeat_time=now)
    )


async def add_results(
    *,
    session: AsyncSession,
    reconciliation_id: str,
    results: Sequence[tuple[WalletResult, Sequence[Balance] | None]],
    now: datetime,
) -> list[WalletResult]:
    """Store wallets' results in bulk, adopting given balances in the same transaction."""
    stored: list[WalletResult] = []
    for result, adopt in results:
        adopted = False
        if adopt is not None:
            wallet = await _locked_wallet(session, result.wallet_id)
            if wallet is not None:
                _apply_balances(wallet, adopt, replace=True, now=now)
                adopted = True
        stored.append(replace(result, adopted=adopted))
    await session.flush()
    connection = await session.connection()
    # Plain inserts: (report, seq) is known up front, so no ids come back.
    await _insert_many(
        connection,
        ReconciliationResultRow,
        [
            {
                "reconciliation_id": reconciliation_id,
                "seq": r.seq,
                "wallet_id": r.wallet_id,
                "display_name": r.display_name,
                "status": r.status.value,
                "error_kind": r.error_kind.value if r.error_kind is not None else None,
                "error_message": r.error_message,
                "adopted": r.adopted,
                "fetch_time": r.fetch_time,
                "from_cache": r.from_cache,
            }
            for r in stored
        ],
    )
    items = [
        {
            "reconciliation_id": reconciliation_id,
            "seq": r.seq,
            "asset": d.asset,
            "stored_total": d.stored_total,
            "exchange_total": d.exchange_total,
            "difference": d.difference,
            "beyond_threshold": d.beyond_threshold,
        }
        for r in stored
        for d in r.diffs
    ]
    if items:
        await _insert_many(connection, ReconciliationItemRow, items)
    counts = {status: sum(r.status is status for r in stored) for status in WalletStatus}
    await connection.execute(
        update(ReconciliationRow)
        .where(ReconciliationRow.id == reconciliation_id)
        .values(
            matched_count=ReconciliationRow.matched_count + counts[WalletStatus.MATCHED],
            mismatched_count=ReconciliationRow.mismatched_count + counts[WalletStatus.MISMATCHED],
            error_count=ReconciliationRow.error_count + counts[WalletStatus.EXCHANGE_ERROR],
        )
    )
    return stored


# PostgreSQL array types of the columns bulk-inserted through unnest().
_ARRAY_TYPES = {
    ReconciliationResultRow: {
        "reconciliation_id": "varchar[]",
        "seq": "integer[]",
        "wallet_id": "varchar[]",
        "display_name": "varchar[]",
        "status": "varchar[]",
        "error_kind": "varchar[]",
        "error_message": "text[]",
        "adopted": "boolean[]",
        "fetch_time": "timestamptz[]",
        "from_cache": "boolean[]",
    },
    ReconciliationItemRow: {
        "reconciliation_id": "varchar[]",
        "seq": "integer[]",
        "asset": "varchar[]",
        "stored_total": "numeric[]",
        "exchange_total": "numeric[]",
        "difference": "numeric[]",
        "beyond_threshold": "boolean[]",
    },
}


async def _insert_many(connection: AsyncConnection, model: Any, rows: list[dict[str, Any]]) -> None:
    # On PostgreSQL one INSERT ... SELECT FROM unnest(arrays): one round trip and one
    # parameter per column whatever the row count (executemany costs ~20 us a row here).
    types = _ARRAY_TYPES[model]
    if connection.dialect.name != "postgresql":
        await connection.execute(insert(model), rows)
        return
    names = list(types)
    statement = text(
        f"INSERT INTO {model.__tablename__} ({', '.join(names)}) SELECT * FROM unnest("
        + ", ".join(f"CAST(:{n} AS {types[n]})" for n in names)
        + ")"
    )
    await connection.execute(statement, {n: [row[n] for row in rows] for n in names})


async def finish_reconciliation(
    *,
    session: AsyncSession,
    reconciliation_id: str,
    state: ReconciliationState,
    error_message: str,
    now: datetime,
) -> None:
    """Mark a reconciliation finished unless it already is."""
    await session.execute(
        update(ReconciliationRow)
        .where(
            ReconciliationRow.id == reconciliation_id,
            ReconciliationRow.state.in_(
                [ReconciliationState.QUEUED.value, ReconciliationState.RUNNING.value]
            ),
        )
        .values(state=state.value, error_message=error_message, end_time=now)
    )


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
                    ReconciliationRow.state.in_(
                        [ReconciliationState.QUEUED.value, ReconciliationState.RUNNING.value]
                    ),
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
                ReconciliationRow.state.in_(
                    [ReconciliationState.QUEUED.value, ReconciliationState.RUNNING.value]
                ),
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
