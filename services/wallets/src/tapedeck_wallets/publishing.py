"""Reconciliation mismatches, published to the live service as `reconciliation_mismatch` events.

The events are written to the outbox (`wallets_live_outbox`) in the transaction that stores the
reconciliation's results, so an event exists exactly when its stored result does; the drainer
started by the server sends them to `LiveService/AppendEvents`. One event per mismatched wallet
and reconciliation, with a fixed id (`reconciliation:{id}:{wallet_id}:mismatch`), so a resend is
a no-op at the live service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck.live.v1 import live_pb2
from tapedeck_common.outbox import publish
from tapedeck_wallets.amounts import decimal_text
from tapedeck_wallets.models import live_outbox
from tapedeck_wallets.reconciliations.domain import WalletResult, WalletStatus

MISMATCH_REASON = "balance_mismatch"

# Counted as the events are enqueued: a batch whose transaction then fails is counted again
# when retried, which errs on the side of alerting.
RECONCILIATION_MISMATCHES = Counter(
    "tapedeck_reconciliation_mismatches",
    "Wallets found mismatched (stored vs exchange beyond threshold) by reconciliations.",
)


def mismatch_event(
    *, reconciliation_id: str, result: WalletResult, now: datetime
) -> live_pb2.Event:
    """Return the `reconciliation_mismatch` event of one mismatched wallet's result."""
    stamp = Timestamp()
    stamp.FromDatetime(now)
    message = live_pb2.Event(
        event_id=f"reconciliation:{reconciliation_id}:{result.wallet_id}:mismatch",
        type=live_pb2.EVENT_TYPE_RECONCILIATION_MISMATCH,
        reason=MISMATCH_REASON,
        time=stamp,
    )
    mismatched = [d for d in result.diffs if d.beyond_threshold]
    message.payload.update(
        {
            "reconciliation": f"reconciliations/{reconciliation_id}",
            "wallet": f"wallets/{result.wallet_id}",
            "display_name": result.display_name,
            "adopted_exchange_balances": result.adopted,
            "from_cache": result.from_cache,
            "fetch_time": result.fetch_time.isoformat() if result.fetch_time else None,
            # Decimal strings: a Struct number is a double and would round money.
            "assets": [
                {
                    "asset": d.asset,
                    "stored": decimal_text(d.stored_total),
                    "exchange": decimal_text(d.exchange_total),
                    "difference": decimal_text(d.difference),
                }
                for d in mismatched
            ],
        }
    )
    return message


async def publish_mismatches(
    *,
    session: AsyncSession,
    reconciliation_id: str,
    results: Sequence[WalletResult],
    now: datetime,
) -> None:
    """Enqueue an event for each mismatched wallet among results stored in this transaction."""
    events = [
        mismatch_event(reconciliation_id=reconciliation_id, result=result, now=now)
        for result in results
        if result.status is WalletStatus.MISMATCHED
    ]
    await publish(session=session, table=live_outbox, events=events)
    RECONCILIATION_MISMATCHES.inc(len(events))
