// Live trading sessions (LiveService.ListSessions) and their drift from a backtest
// (BacktestService.CompareWithSession): the fills the bridge sent as a chart's points and markers,
// how a session's figures read, and the PnL gap as a waterfall.
import { Code, ConnectError } from "@connectrpc/connect";
import type { DriftSummary } from "../gen/tapedeck/backtest/v1/backtest_pb";
import type { Money } from "../gen/tapedeck/common/v1/common_pb";
import { EventType, type Event, type EventTypeCount } from "../gen/tapedeck/live/v1/live_pb";
import { describeError } from "../errors";
import { formatDecimal, formatMoney } from "./decimal";
import { eventTypeName } from "./live";
import { formatDuration, timestampSeconds, type TimestampLike } from "./time";

export interface Fill {
  readonly sequence: bigint;
  readonly time: number; // seconds
  readonly side: "buy" | "sell";
  readonly quantity: string;
  readonly price: string;
  readonly commission: string; // "" when the bridge sent none
  readonly currency: string;
  readonly positionId: string;
}

const text = (value: unknown): string =>
  typeof value === "string" ? value : typeof value === "number" ? String(value) : "";

// An order_filled event as the bridge sends it (payload: side, quantity, price, commission
// {amount, currency}, position_id); null for another event or a fill without a side or price.
export function fillOf(event: Event): Fill | null {
  const time = timestampSeconds(event.time);
  const payload = event.payload ?? {};
  const side = text(payload.side).toLowerCase();
  const price = text(payload.price);
  if (event.type !== EventType.ORDER_FILLED || time === null) return null;
  if ((side !== "buy" && side !== "sell") || !Number.isFinite(Number(price)) || price === "")
    return null;
  const commission = payload.commission;
  const fee = typeof commission === "object" && commission !== null && !Array.isArray(commission);
  return {
    sequence: event.sequence,
    time,
    side,
    quantity: text(payload.quantity),
    price,
    commission: fee ? text(commission.amount) : "",
    currency: fee ? text(commission.currency) : "",
    positionId: text(payload.position_id),
  };
}

// Fills oldest first (by time, then by the order they were stored in).
export function fillsOf(events: readonly Event[]): Fill[] {
  return events
    .map(fillOf)
    .filter((fill): fill is Fill => fill !== null)
    .sort((a, b) => a.time - b.time || (a.sequence < b.sequence ? -1 : 1));
}

// The price line through the fills: one point per second (the chart's resolution), at the last
// fill price of that second; `fills` oldest first.
export function priceLine(fills: readonly Fill[]): Array<{ time: number; value: number }> {
  const points: Array<{ time: number; value: number }> = [];
  for (const fill of fills) {
    const time = Math.floor(fill.time);
    const value = Number(fill.price);
    if (points.at(-1)?.time === time) points[points.length - 1] = { time, value };
    else points.push({ time, value });
  }
  return points;
}

// Decimals for the price axis: as many as the prices are quoted with, up to eight significant
// figures (averaged fill prices can carry a dozen decimals no one reads).
export function priceDigits(fills: readonly Fill[]): number {
  let digits = 0;
  let integer = 1;
  for (const fill of fills) {
    const [int = "", frac = ""] = fill.price.replace(/^[-+]/, "").split(".");
    digits = Math.max(digits, frac.replace(/0+$/, "").length);
    integer = Math.max(integer, int.replace(/^0+/, "").length);
  }
  return Math.min(digits, Math.max(2, 8 - integer));
}

export interface FillMark {
  readonly time: number; // the second of its point on the price line
  readonly side: "buy" | "sell";
  readonly text: string;
}

// One marker per fill ("B 0.5 @ 42,000.10"), in the line's order.
export function fillMarks(fills: readonly Fill[]): FillMark[] {
  return fills.map((fill) => ({
    time: Math.floor(fill.time),
    side: fill.side,
    text: `${fill.side === "buy" ? "B" : "S"} ${formatDecimal(fill.quantity)} @ ${formatDecimal(fill.price)}`,
  }));
}

// Realized PnL per currency: "12.34 USDT · -0.50 BTC"; "—" without any.
export function moneyText(amounts: readonly Money[]): string {
  if (amounts.length === 0) return "—";
  return amounts.map((m) => `${formatMoney(m.amount)} ${m.currency}`).join(" · ");
}

// Event counts per type, largest first as the service sends them: "order_filled 12 · position_closed 6".
export function typeCountsText(counts: readonly EventTypeCount[]): string {
  return counts.map((c) => `${eventTypeName(c.type)} ${c.count}`).join(" · ");
}

// A signed duration ("+12 s", "-3 min 4 s", "0 s"): live later than the backtest is positive.
export function signedDuration(duration: TimestampLike | undefined): string {
  const seconds = timestampSeconds(duration);
  if (seconds === null) return "—";
  if (seconds === 0) return "0 s";
  return `${seconds < 0 ? "-" : "+"}${formatDuration(Math.abs(seconds))}`;
}

// The max entry gap field: seconds, empty for the service's default; an error to show otherwise.
export function parseGap(input: string): { seconds: number | null } | { error: string } {
  const trimmed = input.trim();
  if (trimmed === "") return { seconds: null };
  const seconds = Number(trimmed);
  if (!Number.isFinite(seconds) || seconds <= 0 || !Number.isInteger(seconds))
    return { error: "The max entry gap is a whole number of seconds above 0." };
  if (seconds > 30 * 86400) return { error: "The max entry gap is at most 30 days." };
  return { seconds };
}

export interface WaterfallStep {
  readonly key: "backtest" | "missing" | "slippage" | "fees" | "other" | "live";
  readonly label: string;
  readonly amount: string; // decimal string, as the service sent it
  readonly from: number; // where its bar starts and ends on the PnL axis
  readonly to: number;
  readonly total: boolean; // a level (backtest, live) rather than a change
}

// The PnL gap as a waterfall: the backtest's PnL, then each cause of the gap (missing trades,
// slippage, fees, other), ending at live's PnL; `min`/`max` bound every bar and zero.
export function waterfall(summary: DriftSummary): {
  steps: WaterfallStep[];
  min: number;
  max: number;
} {
  const steps: WaterfallStep[] = [];
  const start = Number(summary.backtestPnl);
  steps.push({
    key: "backtest",
    label: "Backtest PnL",
    amount: summary.backtestPnl,
    from: 0,
    to: start,
    total: true,
  });
  let level = start;
  const causes = [
    ["missing", "Missing trades", summary.missingTrades],
    ["slippage", "Slippage", summary.slippage],
    ["fees", "Fees", summary.fees],
    ["other", "Other", summary.other],
  ] as const;
  for (const [key, label, amount] of causes) {
    const next = level + Number(amount);
    steps.push({ key, label, amount, from: level, to: next, total: false });
    level = next;
  }
  const live = Number(summary.livePnl);
  steps.push({
    key: "live",
    label: "Live PnL",
    amount: summary.livePnl,
    from: 0,
    to: live,
    total: true,
  });
  const ends = steps.flatMap((s) => [s.from, s.to]);
  return { steps, min: Math.min(0, ...ends), max: Math.max(0, ...ends) };
}

// Why a comparison could not be made, in words: the service's own reason for the refusals a
// person can act on (a run still running, too many trades, an unknown session or run).
export function driftProblem(error: unknown): string {
  if (error instanceof ConnectError) {
    if (error.code === Code.FailedPrecondition) return `Cannot compare: ${error.rawMessage}`;
    if (error.code === Code.NotFound) return `Not found: ${error.rawMessage}`;
    if (error.code === Code.InvalidArgument) return `Invalid request: ${error.rawMessage}`;
  }
  return describeError(error);
}
