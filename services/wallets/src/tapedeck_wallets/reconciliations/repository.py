"""All SQL on reconciliation reports, their results and their leases."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable

from tapedeck_common.errors import NotFound
from tapedeck_common.notify_repository import announce
from tapedeck_wallets.exchange.domain import ErrorKind
from tapedeck_wallets.models import (
    ReconciliationItemRow,
    ReconciliationResultRow,
    ReconciliationRow,
    UtcDateTime,
)
from tapedeck_wallets.reconciliations.domain import (
    UNFINISHED,
    BalanceDiff,
    Reconciliation,
    ReconciliationState,
    StatusCounts,
    WalletResult,
    WalletStatus,
)

ReconciliationPosition = tuple[datetime, str]  # (create_time, id) of the last report on a page


def _postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


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


# Every replica's look for abandoned jobs LISTENs here (PostgreSQL): a job started anywhere may
# be left by a replica that dies, so the others look while it runs.
JOB_STARTED_CHANNEL = "tapedeck_wallets_job_started"


async def create_reconciliation(
    *, session: AsyncSession, report: Reconciliation, owner: str
) -> None:
    """Store a report that this process runs (its lease held by `owner`), telling the replicas."""
    connection = await session.connection()
    await connection.execute(_INSERT_RECONCILIATION, _report_row(report, owner))
    await announce(session, JOB_STARTED_CHANNEL)


_UNFINISHED = [state.value for state in UNFINISHED]

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
    added = StatusCounts.of(results)
    counts: dict[str, Any] = {
        "reconciliation": reconciliation_id,
        "add_matched": added.matched,
        "add_mismatched": added.mismatched,
        "add_errors": added.errors,
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
) -> tuple[list[str], list[str]]:
    """Mark unfinished reconciliations whose lease lapsed as FAILED; return them and the rest."""
    rows = (
        await session.execute(
            select(ReconciliationRow.id, ReconciliationRow.heartbeat_time < stale_before).where(
                ReconciliationRow.state.in_(_UNFINISHED)
            )
        )
    ).all()
    ids = [job_id for job_id, stale in rows if stale]
    if ids:
        await session.execute(
            update(ReconciliationRow)
            .where(
                ReconciliationRow.id.in_(ids),
                ReconciliationRow.state.in_(_UNFINISHED),
            )
            .values(state=ReconciliationState.FAILED.value, error_message=reason, end_time=now)
        )
    return ids, [job_id for job_id, stale in rows if not stale]


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
