"""Backtest vs live drift (pure rules): a live session's round trips matched to a run's, trade by
trade, and the PnL gap between them split into its causes.

Matching: a live trade and a backtest trade may pair when they are on the same side and their
entries are at most `max_entry_gap_ns` apart; of all such pairs, the closest entries pair first
(greedy on |entry difference|, ties by time), each trade at most once. What stays unpaired is a
trade only in live or only in the backtest.

Per matched pair, with d = +1 for a long and -1 for a short, and prices averaged:
- entry delay = live entry time - backtest entry time (exit delay likewise);
- entry slippage = d x (live entry price - backtest entry price), exit slippage =
  d x (backtest exit price - live exit price): positive when live got the worse price;
- slippage cost = (entry slippage + exit slippage) x live quantity;
- fee difference = live fees - backtest fees; PnL difference = live PnL - backtest PnL.
Since a trade's PnL is d x quantity x (exit - entry) - fees, a matched pair's PnL difference is
-slippage cost - fee difference + d x (live quantity - backtest quantity) x (backtest exit -
backtest entry), the last term (and any rounding in the engines' own PnL) being "other".

Summary, as contributions to the gap (live total PnL - backtest total PnL), summing to it exactly:
missing trades (PnL of live-only trades - PnL of backtest-only trades), slippage (-sum of
slippage costs), fees (-sum of fee differences), and other (the rest).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from decimal import Decimal

from tapedeck_backtest.runs.trades import Trade

ZERO = Decimal(0)
DEFAULT_MAX_ENTRY_GAP_NS = 3_600 * 10**9
MAX_ENTRY_GAP_SECONDS = 30 * 86_400
MAX_DRIFT_TRADES = 5_000  # per side: the reply stays well under the 4 MiB message limit


@dataclass(frozen=True)
class RoundTrip:
    """One side's trade as the comparison sees it; money in the quote currency."""

    trade_id: str
    long: bool
    quantity: Decimal
    entry_ns: int
    exit_ns: int
    entry_price: Decimal
    exit_price: Decimal
    realized_pnl: Decimal  # net of fees
    fees: Decimal


def of_trade(trade: Trade) -> RoundTrip:
    """Return a backtest trade as the comparison sees it."""
    return RoundTrip(
        trade_id=trade.trade_id,
        long=trade.side == "LONG",
        quantity=trade.quantity,
        entry_ns=trade.entry_time,
        exit_ns=trade.exit_time,
        entry_price=trade.average_entry_price,
        exit_price=trade.average_exit_price,
        realized_pnl=trade.realized_pnl,
        fees=trade.fees,
    )


@dataclass(frozen=True)
class MatchedTrade:
    """A live trade and the backtest trade it was matched to, and how they differ."""

    live: RoundTrip
    backtest: RoundTrip

    @property
    def direction(self) -> int:
        """Return +1 for a long, -1 for a short."""
        return 1 if self.live.long else -1

    @property
    def entry_delay_ns(self) -> int:
        """Return how much later live entered (negative: earlier)."""
        return self.live.entry_ns - self.backtest.entry_ns

    @property
    def exit_delay_ns(self) -> int:
        """Return how much later live exited (negative: earlier)."""
        return self.live.exit_ns - self.backtest.exit_ns

    @property
    def entry_slippage(self) -> Decimal:
        """Return how much worse live's entry price was, per unit (negative: better)."""
        return self.direction * (self.live.entry_price - self.backtest.entry_price)

    @property
    def exit_slippage(self) -> Decimal:
        """Return how much worse live's exit price was, per unit (negative: better)."""
        return self.direction * (self.backtest.exit_price - self.live.exit_price)

    @property
    def slippage_cost(self) -> Decimal:
        """Return what the worse prices cost live on its quantity."""
        return (self.entry_slippage + self.exit_slippage) * self.live.quantity

    @property
    def fee_difference(self) -> Decimal:
        """Return how much more live paid in fees."""
        return self.live.fees - self.backtest.fees

    @property
    def pnl_difference(self) -> Decimal:
        """Return live's PnL less the backtest's."""
        return self.live.realized_pnl - self.backtest.realized_pnl


@dataclass(frozen=True)
class DriftSummary:
    """The PnL gap between live and the backtest, split into its causes (they sum to the gap)."""

    live_pnl: Decimal
    backtest_pnl: Decimal
    missing_trades: Decimal
    slippage: Decimal
    fees: Decimal
    other: Decimal

    @property
    def gap(self) -> Decimal:
        """Return live's total PnL less the backtest's."""
        return self.live_pnl - self.backtest_pnl


@dataclass(frozen=True)
class Drift:
    """A comparison: matched pairs by backtest entry, the unmatched trades, the summary."""

    matched: list[MatchedTrade]
    live_only: list[RoundTrip]
    backtest_only: list[RoundTrip]
    summary: DriftSummary


def compare(live: list[RoundTrip], backtest: list[RoundTrip], *, max_entry_gap_ns: int) -> Drift:
    """Return the drift between a session's trades and a run's (see the module's rules)."""
    by_entry = sorted(range(len(backtest)), key=lambda j: backtest[j].entry_ns)
    entries = [backtest[j].entry_ns for j in by_entry]
    candidates = []
    for i, trade in enumerate(live):
        lo = bisect_left(entries, trade.entry_ns - max_entry_gap_ns)
        hi = bisect_right(entries, trade.entry_ns + max_entry_gap_ns)
        for j in by_entry[lo:hi]:
            near = backtest[j]
            if near.long == trade.long:
                gap = abs(trade.entry_ns - near.entry_ns)
                candidates.append((gap, near.entry_ns, trade.entry_ns, i, j))
    candidates.sort()
    live_taken: set[int] = set()
    backtest_taken: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for *_, i, j in candidates:
        if i not in live_taken and j not in backtest_taken:
            live_taken.add(i)
            backtest_taken.add(j)
            pairs.append((i, j))
    matched = sorted(
        (MatchedTrade(live=live[i], backtest=backtest[j]) for i, j in pairs),
        key=lambda m: (m.backtest.entry_ns, m.backtest.trade_id),
    )
    live_only = [t for i, t in enumerate(live) if i not in live_taken]
    backtest_only = [t for j, t in enumerate(backtest) if j not in backtest_taken]
    live_pnl = sum((t.realized_pnl for t in live), ZERO)
    backtest_pnl = sum((t.realized_pnl for t in backtest), ZERO)
    missing = sum((t.realized_pnl for t in live_only), ZERO) - sum(
        (t.realized_pnl for t in backtest_only), ZERO
    )
    slippage = -sum((m.slippage_cost for m in matched), ZERO)
    fees = -sum((m.fee_difference for m in matched), ZERO)
    other = (live_pnl - backtest_pnl) - missing - slippage - fees
    return Drift(
        matched=matched,
        live_only=live_only,
        backtest_only=backtest_only,
        summary=DriftSummary(
            live_pnl=live_pnl,
            backtest_pnl=backtest_pnl,
            missing_trades=missing,
            slippage=slippage,
            fees=fees,
            other=other,
        ),
    )


@dataclass(frozen=True)
class DriftQuery:
    """CompareWithSession: a run, a live session, its instrument if named otherwise, the gap."""

    run_id: str
    session: str
    instrument_id: str | None
    max_entry_gap_ns: int


@dataclass(frozen=True)
class SessionDrift:
    """A comparison, with the window compared and the amounts' currency."""

    drift: Drift
    start_ns: int
    end_ns: int
    currency: str
