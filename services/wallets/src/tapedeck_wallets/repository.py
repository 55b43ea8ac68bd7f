"""All SQL of the wallet service: sessions in, domain objects out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tapedeck_common.errors import AlreadyExists, NotFound
from tapedeck_common.validation import new_id
from tapedeck_wallets.domain import (
    Balance,
    BalanceDiff,
    ErrorKind,
    NewWallet,
    Reconciliation,
    ReconciliationRequest,
    ReconciliationState,
    Wallet,
    WalletResult,
    WalletStatus,
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


async def list_wallets(
    *,
    session: AsyncSession,
    exchange: str | None,
    after: WalletPosition | None,
    limit: int,
) -> tuple[list[Wallet], bool]:
    """Return a page of wallets by display name and whether more follow, in two statements."""
    query = select(WalletRow).order_by(WalletRow.display_name, WalletRow.id).limit(limit + 1)
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
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return [], False
    # One IN statement for the whole page; the ORM's selectin loader would split it at 500 ids.
    balance_rows = await session.scalars(
        select(BalanceRow)
        .where(BalanceRow.wallet_id.in_([r.id for r in rows]))
        .order_by(BalanceRow.wallet_id, BalanceRow.asset)
    )
    by_wallet: dict[str, list[BalanceRow]] = defaultdict(list)
    for balance in balance_rows:
        by_wallet[balance.wallet_id].append(balance)
    return [_wallet(r, by_wallet.get(r.id, [])) for r in rows], more


async def get_wallets(*, session: AsyncSession, wallet_ids: Sequence[str]) -> dict[str, Wallet]:
    """Return the named wallets that exist, by id."""
    rows = await session.scalars(
        select(WalletRow)
        .where(WalletRow.id.in_(list(wallet_ids)))
        .options(selectinload(WalletRow.balances))
    )
    return {r.id: _wallet(r, r.balances) for r in rows}


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


async def lock_wallet(*, session: AsyncSession, wallet_id: str) -> Wallet | None:
    """Return a wallet locked for update in this transaction, or None if it is gone."""
    row = await _locked_wallet(session, wallet_id)
    return None if row is None else _wallet(row, row.balances)


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


def _result(row: ReconciliationResultRow, items: Sequence[ReconciliationItemRow]) -> WalletResult:
    return WalletResult(
        wallet_id=row.wallet_id,
        display_name=row.display_name,
        status=WalletStatus(row.status),
        diffs=tuple(
            BalanceDiff(
                asset=i.asset,
                stored_total=i.stored_total,
                exchange_total=i.exchange_total,
                difference=i.difference,
                beyond_threshold=i.beyond_threshold,
            )
            for i in sorted(items, key=lambda i: i.asset)
        ),
        error_kind=ErrorKind(row.error_kind) if row.error_kind is not None else None,
        error_message=row.error_message,
        adopted=row.adopted,
        fetch_time=row.fetch_time,
        from_cache=row.from_cache,
        seq=row.seq,
    )


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


async def add_result(
    *,
    session: AsyncSession,
    reconciliation_id: str,
    result: WalletResult,
    adopt: Sequence[Balance] | None,
    now: datetime,
) -> WalletResult:
    """Store one wallet's result, adopting the exchange's balances in the same transaction."""
    adopted = False
    if adopt is not None:
        wallet = await _locked_wallet(session, result.wallet_id)
        if wallet is not None:
            _apply_balances(wallet, adopt, replace=True, now=now)
            adopted = True
    row = ReconciliationResultRow(
        reconciliation_id=reconciliation_id,
        seq=result.seq,
        wallet_id=result.wallet_id,
        display_name=result.display_name,
        status=result.status.value,
        error_kind=result.error_kind.value if result.error_kind is not None else None,
        error_message=result.error_message,
        adopted=adopted,
        fetch_time=result.fetch_time,
        from_cache=result.from_cache,
    )
    session.add(row)
    await session.flush()
    session.add_all(
        ReconciliationItemRow(
            result_id=row.id,
            reconciliation_id=reconciliation_id,
            asset=d.asset,
            stored_total=d.stored_total,
            exchange_total=d.exchange_total,
            difference=d.difference,
            beyond_threshold=d.beyond_threshold,
        )
        for d in result.diffs
    )
    counter = {
        WalletStatus.MATCHED: ReconciliationRow.matched_count,
        WalletStatus.MISMATCHED: ReconciliationRow.mismatched_count,
        WalletStatus.EXCHANGE_ERROR: ReconciliationRow.error_count,
    }[result.status]
    await session.execute(
        update(ReconciliationRow)
        .where(ReconciliationRow.id == reconciliation_id)
        .values({counter.key: counter + 1})
    )
    await session.flush()
    return replace(result, adopted=adopted)


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
    rows = list(
        (
            await session.scalars(
                select(ReconciliationResultRow)
                .where(
                    ReconciliationResultRow.reconciliation_id == reconciliation_id,
                    ReconciliationResultRow.seq > seq,
                )
                .order_by(ReconciliationResultRow.seq)
            )
        ).all()
    )
    if not rows:
        return []
    items = await session.scalars(
        select(ReconciliationItemRow).where(
            ReconciliationItemRow.reconciliation_id == reconciliation_id,
            ReconciliationItemRow.result_id.in_([r.id for r in rows]),
        )
    )
    by_result: dict[int, list[ReconciliationItemRow]] = defaultdict(list)
    for item in items:
        by_result[item.result_id].append(item)
    return [_result(r, by_result.get(r.id, [])) for r in rows]


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
