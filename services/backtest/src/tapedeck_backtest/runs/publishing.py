"""Run lifecycle events and NautilusTrader's order denials, published to the live service.

Every event is written to the outbox (`backtest_live_outbox`) in the transaction that changes the
run's state (claim, finish, fail: `queue.RunQueue`), so an event exists exactly when its state
change does; the `OutboxPublisher` started by the server drains the outbox to
`LiveService/AppendEvents`. Event ids are fixed per fact (`backtest:{run_id}:finished`, ...), so
a resend is a no-op at the live service.

Denials happen inside the worker process: `order_denials` reads them from the engine's cache
after a run and the worker sends them to the supervisor, which publishes them with the run's end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.events import OrderDenied
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck.live.v1 import live_pb2
from tapedeck_backtest.models import live_outbox
from tapedeck_backtest.runs.domain import RunFacts, RunState, Stats
from tapedeck_common.outbox import publish

logger = logging.getLogger(__name__)

_REASON_LENGTH = 128  # the live store's limit on `reason`


@dataclass(frozen=True)
class Denial:
    """One order NautilusTrader's risk engine denied during a run (picklable: crosses the pipe)."""

    client_order_id: str
    instrument_id: str
    strategy_id: str
    reason: str
    side: str
    order_type: str
    quantity: str
    simulated_ns: int


def order_denials(engine: Any) -> tuple[Denial, ...]:
    """Return the orders the engine denied in its last run, in the order they were denied."""
    found: list[Denial] = []
    for order in engine.cache.orders():
        if order.status != OrderStatus.DENIED:
            continue
        denied = next((e for e in reversed(order.events) if isinstance(e, OrderDenied)), None)
        if denied is None:
            continue
        found.append(
            Denial(
                client_order_id=str(order.client_order_id),
                instrument_id=str(order.instrument_id),
                strategy_id=str(order.strategy_id),
                reason=str(denied.reason),
                side=order.side_string(),
                order_type=order.type_string(),
                quantity=str(order.quantity),
                simulated_ns=int(denied.ts_event),
            )
        )
    found.sort(key=lambda d: (d.simulated_ns, d.client_order_id))
    return tuple(found)


def denials_after_run(loaded: Any) -> tuple[Denial, ...]:
    """Return the denials of the run a worker's engine just ran; never raise (none on error)."""
    if loaded is None:
        return ()
    try:
        return order_denials(loaded.engine)
    except Exception:  # a half-run engine must not turn a result into a lost one
        logger.exception("could not read order denials from the engine")
        return ()


def _timestamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _event(
    event_id: str,
    kind: live_pb2.EventType.ValueType,
    *,
    run_id: str,
    symbol: str,
    now: datetime,
    reason: str = "",
    payload: dict[str, Any],
) -> live_pb2.Event:
    message = live_pb2.Event(
        event_id=event_id,
        type=kind,
        run_id=run_id,
        symbol=symbol,
        reason=reason[:_REASON_LENGTH],
        time=_timestamp(now),
    )
    message.payload.update(payload)
    return message


def _spec_summary(run_id: str, facts: RunFacts) -> dict[str, Any]:
    spec = facts.spec
    summary: dict[str, Any] = {
        "backtest": f"backtests/{run_id}",
        "dataset": f"datasets/{spec.dataset_id}",
        "strategy": f"strategies/{spec.strategy_id}",
        "parameters": dict(spec.parameters),
        "account_type": spec.account_type.value,
        "starting_balances": {c: str(a) for c, a in spec.starting_balances},
    }
    if facts.sweep_id is not None:
        summary["sweep"] = f"sweeps/{facts.sweep_id}"
    return summary


async def run_started(
    *, session: AsyncSession, run_id: str, facts: RunFacts, attempt: int, owner: str, now: datetime
) -> None:
    """Enqueue `run_started` for a run a worker pool just claimed (one event per claim).

    The id names the attempt and the pool that claimed it: a run given back by a stopping
    service keeps its attempt number, and its next start must not be dropped as a duplicate.
    """
    await publish(
        session=session,
        table=live_outbox,
        events=[
            _event(
                f"backtest:{run_id}:started:{attempt}:{owner}",
                live_pb2.EVENT_TYPE_RUN_STARTED,
                run_id=run_id,
                symbol=facts.symbol,
                now=now,
                payload=_spec_summary(run_id, facts) | {"attempt": attempt},
            )
        ],
    )


async def run_ended(
    *,
    session: AsyncSession,
    run_id: str,
    facts: RunFacts,
    state: RunState,
    now: datetime,
    stats: Stats | None = None,
    error_message: str = "",
    denials: Sequence[Denial] = (),
) -> None:
    """Enqueue the end of a run (`run_finished` or `run_failed`) and its order denials."""
    base = _spec_summary(run_id, facts)
    events = [
        _event(
            f"backtest:{run_id}:denied:{denial.client_order_id}",
            live_pb2.EVENT_TYPE_TRADE_BLOCKED,
            run_id=run_id,
            symbol=denial.instrument_id or facts.symbol,
            now=now,
            reason=denial.reason.split(":", 1)[0].strip() or denial.reason,
            payload={
                "backtest": f"backtests/{run_id}",
                "message": denial.reason,
                "client_order_id": denial.client_order_id,
                "strategy_id": denial.strategy_id,
                "side": denial.side,
                "order_type": denial.order_type,
                "quantity": denial.quantity,
                "simulated_time_ns": str(denial.simulated_ns),
                "source": "nautilus_trader",
            },
        )
        for denial in denials
    ]
    if state is RunState.SUCCEEDED:
        payload = base | {"denied_orders": len(denials)}
        if stats is not None:
            # Struct numbers are doubles: undefined (NaN) ratios become null, not invalid JSON.
            payload["stats"] = stats.to_dict()
        events.append(
            _event(
                f"backtest:{run_id}:finished",
                live_pb2.EVENT_TYPE_RUN_FINISHED,
                run_id=run_id,
                symbol=facts.symbol,
                now=now,
                payload=payload,
            )
        )
    elif state is RunState.FAILED:
        events.append(
            _event(
                f"backtest:{run_id}:failed",
                live_pb2.EVENT_TYPE_RUN_FAILED,
                run_id=run_id,
                symbol=facts.symbol,
                now=now,
                reason=error_message,
                payload=base | {"error_message": error_message, "denied_orders": len(denials)},
            )
        )
    await publish(session=session, table=live_outbox, events=events)
