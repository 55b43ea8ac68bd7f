"""The pre-trade gate: ask the wallet service, apply the rules, record a refusal."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_live import repository
from tapedeck_live.domain import (
    Decision,
    EventType,
    GateLimits,
    NewEvent,
    Order,
    StoredEvent,
    check_notional,
    decide,
)
from tapedeck_live.notifier import Notifier
from tapedeck_live.wallets_client import WalletDirectory


@dataclass(frozen=True)
class Verdict:
    """The gate's decision and, for a refusal, the trade_blocked event recorded."""

    decision: Decision
    event: StoredEvent | None


class Gate:
    """Checks orders against the wallet's available balance and the configured limits."""

    def __init__(
        self,
        *,
        wallets: WalletDirectory,
        sessions: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        limits: GateLimits,
    ) -> None:
        self._wallets = wallets
        self._sessions = sessions
        self._notifier = notifier
        self._limits = limits

    async def check(self, order: Order, *, time_remaining: float | None) -> Verdict:
        """Decide on an order; a refusal is stored as a trade_blocked event before answering."""
        # The notional limit needs no wallet: refuse without spending a call on it.
        decision = check_notional(order, self._limits)
        if decision is None:
            balances = await self._wallets.balances(order.wallet_id, time_remaining=time_remaining)
            decision = decide(order, balances, limits=self._limits, now=datetime.now(UTC))
        if decision.allowed:
            return Verdict(decision=decision, event=None)
        return Verdict(decision=decision, event=await self._record(order, decision))

    async def _record(self, order: Order, decision: Decision) -> StoredEvent:
        assert decision.reason is not None
        payload = {
            "wallet": f"wallets/{order.wallet_id}",
            "side": order.side.value,
            "base_asset": order.base_asset,
            "quote_asset": order.quote_asset,
            "quantity": str(order.quantity),
            "price": str(order.price),
            "notional": str(order.notional),
            "client_order_id": order.client_order_id,
            "message": decision.message,
        }
        if decision.available is not None:
            payload["available"] = str(decision.available)
        if decision.required is not None:
            payload["required"] = str(decision.required)
        event = NewEvent(
            # A retried check of the same client order records one block, not one per attempt.
            event_id=order.block_event_id()
            if order.client_order_id
            else f"gate-{uuid.uuid4().hex}",
            type=EventType.TRADE_BLOCKED,
            run_id=order.run_id,
            symbol=order.symbol,
            reason=decision.reason.value,
            ts_ns=time.time_ns(),
            payload_json=json.dumps(payload, separators=(",", ":")),
        )
        async with self._sessions.begin() as session:
            result = await repository.append_events(session=session, events=[event])
            stored = await repository.get_event(session=session, sequence=result.sequences[0])
        if result.appended:
            self._notifier.wake()
        return stored
