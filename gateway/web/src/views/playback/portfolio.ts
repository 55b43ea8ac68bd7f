// The portfolio at the cursor, as GetPortfolioState answers it. A person reads the panel a few
// times a second: it asks at most every 100 ms while the cursor moves, always for where the cursor
// stops, and shows only the answer for the newest time asked (lib/latest.ts).
import type { PortfolioState } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { formatDecimal, formatMoney as money } from "../../lib/decimal";
import { Latest } from "../../lib/latest";
import type { Precision } from "../../lib/indicators";
import type { PlaybackState } from "../../lib/playback";
import type { Store } from "../../lib/store";
import { Throttle } from "../../lib/throttle";
import { formatTime, timestampSeconds } from "../../lib/time";
import { h } from "../../ui/dom";

const ASK_EVERY_MS = 100;

type Result = { ok: true; value: PortfolioState | undefined } | { ok: false; error: unknown };

const signed = (s: string) => (s.startsWith("-") ? "mismatch" : "ok");

function item(label: string, field: string, value: string, cls = "", raw = value): HTMLElement[] {
  return [
    h("dt", { text: label }),
    h("dd", { "data-field": field, "data-raw": raw, class: cls, text: value }),
  ];
}

function summary(state: PortfolioState, time: number, precision: Precision): HTMLElement {
  // Cash in the quote currency is money; other cash is a size of the instrument.
  const cash = (currency: string, amount: string) =>
    currency === precision.quote
      ? money(amount)
      : formatDecimal(amount, { maxFractionDigits: precision.size });
  return h(
    "dl",
    {},
    ...item("Time", "time", formatTime(timestampSeconds(state.time) ?? time)),
    ...item("Equity", "equity", money(state.equity), "", state.equity),
    ...state.cash.flatMap((c) =>
      item(`Cash ${c.currency}`, `cash-${c.currency}`, cash(c.currency, c.amount), "", c.amount),
    ),
    ...item(
      "Realized PnL",
      "realized",
      money(state.realizedPnl),
      signed(state.realizedPnl),
      state.realizedPnl,
    ),
    ...item(
      "Unrealized PnL",
      "unrealized",
      money(state.unrealizedPnl),
      signed(state.unrealizedPnl),
      state.unrealizedPnl,
    ),
    ...item("Fees", "fees", money(state.fees), "", state.fees),
    ...item("Fills", "fills", state.fillCount.toString()),
  );
}

function positionRows(state: PortfolioState, precision: Precision): HTMLTableSectionElement {
  const price = (s: string) => formatDecimal(s, { maxFractionDigits: precision.price });
  const body = h("tbody");
  for (const p of state.positions) {
    body.append(h("tr", {}, h("td", { colspan: 4, class: "instrument", text: p.instrumentId })));
    body.append(
      h(
        "tr",
        {},
        h("td", {
          class: "num",
          text: formatDecimal(p.quantity, { maxFractionDigits: precision.size }),
        }),
        h("td", { class: "num", text: price(p.averagePrice) }),
        h("td", { class: "num", text: price(p.markPrice) }),
        h("td", { class: `num ${signed(p.unrealizedPnl)}`, text: money(p.unrealizedPnl) }),
      ),
    );
  }
  if (state.positions.length === 0)
    body.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "no open position" })));
  return body;
}

// Copies the cells' text, class and raw value: no layout churn while playing.
function patch(target: Element, source: Element): void {
  const to = target.querySelectorAll("dd, td");
  source.querySelectorAll("dd, td").forEach((cell, i) => {
    const old = to[i];
    if (old === undefined) return;
    if (old.textContent !== cell.textContent) old.textContent = cell.textContent;
    if (old.className !== cell.className) old.className = cell.className;
    const raw = cell.getAttribute("data-raw");
    if (raw !== null && old.getAttribute("data-raw") !== raw) old.setAttribute("data-raw", raw);
  });
}

export class PortfolioPanel {
  readonly element = h(
    "section",
    { class: "panel portfolio", "data-testid": "portfolio" },
    h("h2", { text: "Portfolio at cursor" }),
    h("div", {
      class: "status info",
      text: "Move the cursor (click the chart or drag the scrubber).",
    }),
  );
  private readonly asks: Throttle;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Store<PlaybackState>,
    fetch: (time: number) => Promise<PortfolioState | undefined>,
  ) {
    const requests = new Latest(fetch, (time: number, result: Result) => this.show(time, result));
    this.asks = new Throttle(ASK_EVERY_MS, () => {
      const cursor = store.state.cursor;
      if (cursor !== null) requests.request(cursor);
    });
    this.unsubscribe = store.subscribe((next, previous) => {
      if (next.cursor !== previous.cursor) this.asks.trigger();
    });
  }

  dispose(): void {
    this.unsubscribe();
    this.asks.cancel();
  }

  private show(time: number, result: Result): void {
    const heading = h("h2", { text: "Portfolio at cursor" });
    if (!result.ok) {
      const text = describeError(result.error);
      this.element.replaceChildren(
        heading,
        h("div", { class: "status error", role: "alert", text }),
      );
      return;
    }
    const state = result.value;
    if (state === undefined) {
      const text = "No portfolio at this instant.";
      this.element.replaceChildren(heading, h("div", { class: "status empty", text }));
      return;
    }
    const precision = this.store.state.precision;
    const list = summary(state, time, precision);
    const body = positionRows(state, precision);
    const current = this.element.querySelector("dl");
    const currentRows = this.element.querySelector("tbody");
    if (
      current !== null &&
      currentRows !== null &&
      current.children.length === list.children.length &&
      currentRows.children.length === body.children.length
    ) {
      patch(current, list);
      patch(currentRows, body);
      return;
    }
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["Qty", "Avg", "Mark", "Unreal."].map((x) => h("th", { class: "num", text: x })),
      ),
    );
    const positions = h("table", { class: "grid", "data-testid": "positions" }, head, body);
    this.element.replaceChildren(heading, list, positions);
  }
}
