// A run's round trips (ListTrades) as the rows of the trades table: the trade's own figures in
// the app's formats, and the entry time a click moves the replay cursor to.
import { TradeSide, type Trade } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatDecimal, formatMoney } from "./decimal";
import type { Precision } from "./indicators";
import { formatDuration, formatNumber, formatPercent, formatTime, timestampSeconds } from "./time";

export interface TradeRow {
  readonly id: string;
  readonly entry: number; // seconds: where a click puts the cursor
  readonly pnlSign: -1 | 0 | 1;
  readonly cells: readonly string[]; // in TRADE_COLUMNS order
}

// Column titles; numeric columns are right-aligned.
export const TRADE_COLUMNS: ReadonlyArray<readonly [string, "text" | "num"]> = [
  ["Entry", "text"],
  ["Exit", "text"],
  ["Side", "text"],
  ["Quantity", "num"],
  ["Entry price", "num"],
  ["Exit price", "num"],
  ["PnL", "num"],
  ["Return", "num"],
  ["MAE", "num"],
  ["MFE", "num"],
  ["Duration", "num"],
];

// Realized PnL (net of fees) over the money put in at entry; NaN without an entry notional.
export function tradeReturn(trade: Trade): number {
  const notional = Number(trade.averageEntryPrice) * Number(trade.quantity);
  return notional > 0 ? Number(trade.realizedPnl) / notional : Number.NaN;
}

export function tradeRow(trade: Trade, precision: Precision): TradeRow {
  const entry = timestampSeconds(trade.entryTime) ?? Number.NaN;
  const price = (text: string) =>
    formatDecimal(text, { maxFractionDigits: precision.price, minFractionDigits: precision.price });
  const holding = trade.holdingTime;
  const pnl = Number(trade.realizedPnl);
  return {
    id: trade.tradeId,
    entry,
    pnlSign: pnl > 0 ? 1 : pnl < 0 ? -1 : 0,
    cells: [
      formatTime(entry),
      formatTime(timestampSeconds(trade.exitTime)),
      trade.side === TradeSide.SHORT ? "Short" : trade.side === TradeSide.LONG ? "Long" : "—",
      formatDecimal(trade.quantity, { maxFractionDigits: precision.size }),
      price(trade.averageEntryPrice),
      price(trade.averageExitPrice),
      formatMoney(trade.realizedPnl),
      formatPercent(tradeReturn(trade)),
      formatNumber(trade.mae),
      formatNumber(trade.mfe),
      formatDuration(
        holding === undefined ? Number.NaN : Number(holding.seconds) + holding.nanos / 1e9,
      ),
    ],
  };
}

// Pages already seen, so the table can go back: the token of each page shown so far.
export class PageTokens {
  private readonly tokens: string[] = [""];
  private next = "";

  get current(): string {
    return this.tokens.at(-1)!;
  }

  get page(): number {
    return this.tokens.length;
  }

  get hasNext(): boolean {
    return this.next !== "";
  }

  get hasPrevious(): boolean {
    return this.tokens.length > 1;
  }

  // The page for `current` arrived with `nextToken`.
  arrived(nextToken: string): void {
    this.next = nextToken;
  }

  forward(): string {
    if (this.next !== "") this.tokens.push(this.next);
    return this.current;
  }

  back(): string {
    if (this.tokens.length > 1) this.tokens.pop();
    return this.current;
  }
}
