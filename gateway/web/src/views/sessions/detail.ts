// One session: its fills on a price chart (ListEvents of order_filled), its round trips
// (ListSessionTrades, newest first, a page at a time) and its open positions (ListSessions).
import {
  EventType,
  PositionSide,
  type Event,
  type Session,
  type SessionTrade,
} from "../../gen/tapedeck/live/v1/live_pb";
import { describeError } from "../../errors";
import { Superseding } from "../../lib/abort";
import { formatDecimal, formatMoney } from "../../lib/decimal";
import { fillsOf, moneyText } from "../../lib/sessions";
import { formatDuration, formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";
import { FillsChart } from "./fills-chart";
import { gridRow, gridTable, toneOf } from "./table";

const EVENT_PAGE = 1000;
const MAX_FILLS = 5000; // the chart's budget: a marker each; the newest fills are kept
const TRADE_PAGE = 200;

export class SessionDetail {
  readonly element: HTMLElement;
  private readonly chart = new FillsChart();
  private readonly chartStatus = h("div");
  private readonly tradesStatus = h("div");
  private readonly positionsStatus = h("div");
  private readonly trades = gridTable(
    [
      ["Entry", "text"],
      ["Exit", "text"],
      ["Instrument", "text"],
      ["Side", "text"],
      ["Quantity", "num"],
      ["Entry price", "num"],
      ["Exit price", "num"],
      ["Fees", "num"],
      ["PnL", "num"],
      ["Duration", "num"],
      ["Position", "text"],
    ],
    "session-trades",
  );
  private readonly positions = gridTable(
    [
      ["Instrument", "text"],
      ["Quantity", "num"],
      ["Average open", "num"],
      ["Realized PnL", "num"],
      ["Opened", "text"],
      ["Position", "text"],
    ],
    "open-positions",
  );
  private readonly older = h("button", { type: "button", text: "Load older", hidden: true });
  private nextTrades = "";
  // A reload cancels the loads of the one before.
  private readonly fillLoads: Superseding;
  private readonly tradeLoads: Superseding;

  constructor(
    private readonly clients: Clients,
    private readonly runId: string,
    scope: Scope,
  ) {
    this.fillLoads = new Superseding(scope.signal);
    this.tradeLoads = new Superseding(scope.signal);
    scope.add(() => this.chart.dispose());
    this.older.addEventListener("click", () => void this.loadTrades(this.nextTrades));
    this.element = h(
      "div",
      {},
      h(
        "section",
        { class: "panel" },
        h("h2", { text: "Fills" }),
        this.chartStatus,
        this.chart.element,
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", { text: "Open positions" }),
        this.positionsStatus,
        this.positions.element,
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", { text: "Round trips" }),
        this.tradesStatus,
        this.trades.element,
        this.older,
      ),
    );
  }

  // Everything again: the session has new events.
  reload(session: Session | undefined): void {
    this.showPositions(session);
    void this.loadFills();
    void this.loadTrades("");
  }

  private showPositions(session: Session | undefined): void {
    if (session === undefined) {
      setStatus(this.positionsStatus, "error", `No session ${this.runId} is listed.`);
      this.positions.body.replaceChildren();
      return;
    }
    setStatus(
      this.positionsStatus,
      session.openPositions.length === 0 ? "empty" : null,
      "No open positions.",
    );
    this.positions.body.replaceChildren(
      ...session.openPositions.map((p) =>
        gridRow(
          [
            { text: p.instrumentId },
            { text: formatDecimal(p.quantity), num: true },
            { text: formatDecimal(p.averageOpenPrice), num: true },
            {
              text: p.realizedPnl === undefined ? "—" : moneyText([p.realizedPnl]),
              num: true,
              tone: toneOf(p.realizedPnl?.amount ?? ""),
            },
            { text: formatTime(timestampSeconds(p.openTime)) },
            { text: p.positionId },
          ],
          { "data-position-id": p.positionId },
        ),
      ),
    );
  }

  private async loadFills(): Promise<void> {
    setStatus(this.chartStatus, "loading", "Loading fills…");
    const events: Event[] = [];
    const signal = this.fillLoads.next();
    try {
      let token = "";
      do {
        const response = await this.clients.live.listEvents(
          {
            filter: { runId: this.runId, types: [EventType.ORDER_FILLED] },
            pageSize: EVENT_PAGE,
            pageToken: token,
          },
          { signal },
        );
        events.push(...response.events);
        token = response.nextPageToken;
      } while (token !== "" && events.length < MAX_FILLS);
    } catch (error) {
      if (!signal.aborted) setStatus(this.chartStatus, "error", describeError(error));
      return;
    }
    const fills = fillsOf(events);
    this.chart.draw(fills);
    this.chart.element.dataset.fills = String(fills.length);
    if (fills.length === 0) setStatus(this.chartStatus, "empty", "No fills in this session yet.");
    else if (events.length >= MAX_FILLS)
      setStatus(this.chartStatus, "info", `The newest ${fills.length} fills.`);
    else setStatus(this.chartStatus, null);
  }

  // The first page (`token` empty) replaces the table; a later one appends older trades.
  private async loadTrades(token: string): Promise<void> {
    setStatus(this.tradesStatus, "loading", "Loading round trips…");
    const signal = this.tradeLoads.next();
    try {
      const response = await this.clients.live.listSessionTrades(
        { runId: this.runId, pageSize: TRADE_PAGE, pageToken: token },
        { signal },
      );
      const rows = response.trades.map(tradeRow);
      if (token === "") this.trades.body.replaceChildren(...rows);
      else this.trades.body.append(...rows);
      this.nextTrades = response.nextPageToken;
      this.older.hidden = this.nextTrades === "";
      const empty = token === "" && rows.length === 0;
      setStatus(this.tradesStatus, empty ? "empty" : null, "No round trips closed yet.");
    } catch (error) {
      if (!signal.aborted) setStatus(this.tradesStatus, "error", describeError(error));
    }
  }
}

function tradeRow(trade: SessionTrade): HTMLElement {
  const entry = timestampSeconds(trade.entryTime);
  const exit = timestampSeconds(trade.exitTime);
  const pnl = trade.realizedPnl;
  return gridRow(
    [
      { text: formatTime(entry) },
      { text: formatTime(exit) },
      { text: trade.instrumentId },
      {
        text:
          trade.side === PositionSide.LONG
            ? "Long"
            : trade.side === PositionSide.SHORT
              ? "Short"
              : "—",
      },
      { text: formatDecimal(trade.quantity), num: true },
      { text: formatDecimal(trade.averageEntryPrice), num: true },
      { text: formatDecimal(trade.averageExitPrice), num: true },
      { text: trade.fees === "" ? "—" : formatMoney(trade.fees), num: true },
      {
        text: pnl === undefined ? "—" : moneyText([pnl]),
        num: true,
        tone: toneOf(pnl?.amount ?? ""),
      },
      {
        text: entry === null || exit === null ? "—" : formatDuration(exit - entry),
        num: true,
      },
      { text: trade.positionId },
    ],
    { "data-position-id": trade.positionId, "data-sequence": trade.sequence.toString() },
  );
}
