// Backtest vs live drift (BacktestService.CompareWithSession) for the session shown: pick a
// finished run and an optional max entry gap; the PnL gap as a waterfall of its causes, the
// matched trades (a click opens the run's playback at the trade's entry), and the trades only in
// live or only in the backtest. The URL keeps the run and the gap.
import {
  TradeSide,
  type CompareWithSessionResponse,
  type DriftTrade,
} from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { Superseding } from "../../lib/abort";
import { formatDecimal, formatMoney } from "../../lib/decimal";
import { formatRoute } from "../../lib/router";
import { driftProblem, parseGap, signedDuration, waterfall } from "../../lib/sessions";
import { formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";
import { finishedRuns, runId, strategyOf } from "../playback/runs-list";
import { gridRow, gridTable, toneOf } from "./table";

export class DriftPanel {
  readonly element: HTMLElement;
  private readonly run = h(
    "select",
    { name: "backtest", "aria-label": "Finished backtest", required: true },
    h("option", { value: "", text: "a finished backtest…" }),
  );
  private readonly gap = h("input", {
    name: "gap",
    type: "number",
    min: "1",
    step: "1",
    placeholder: "3600",
    "aria-label": "Max entry gap in seconds",
  });
  private readonly status = h("div");
  private readonly result = h("div", { "data-testid": "drift-result" });
  private readonly requests: Superseding;

  constructor(
    private readonly clients: Clients,
    private readonly session: string,
    private readonly params: URLSearchParams,
    private readonly scope: Scope,
  ) {
    this.requests = new Superseding(scope.signal);
    const form = h(
      "form",
      // The gap's own message (lib/sessions.ts parseGap) rather than the browser's.
      { class: "filters", "data-testid": "drift-form", novalidate: true },
      this.run,
      h("label", {}, "max entry gap (s) ", this.gap),
      h("button", { type: "submit", class: "primary", text: "Compare" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.compare();
    });
    this.gap.value = params.get("gap") ?? "";
    this.element = h(
      "section",
      { class: "panel drift", "data-testid": "drift" },
      h("h2", { text: "Backtest vs live drift" }),
      form,
      this.status,
      this.result,
    );
  }

  // Lists the finished runs; compares at once when the URL names one.
  async start(): Promise<void> {
    const chosen = this.params.get("backtest") ?? "";
    try {
      const runs = await finishedRuns(this.clients, this.scope.signal);
      if (runs.length === 0)
        setStatus(this.status, "empty", "No finished backtests yet: launch one from Runs.");
      for (const b of runs) {
        const id = runId(b);
        const ended = formatTime(timestampSeconds(b.endTime), false);
        const text = `${id.slice(0, 8)} · ${strategyOf(b)} · finished ${ended}`;
        this.run.append(h("option", { value: id, text }));
      }
    } catch (error) {
      if (!this.scope.signal.aborted) setStatus(this.status, "error", driftProblem(error));
      return;
    }
    if (chosen === "") return;
    if (![...this.run.options].some((o) => o.value === chosen))
      this.run.append(h("option", { value: chosen, text: chosen }));
    this.run.value = chosen;
    this.compare();
  }

  private compare(): void {
    const backtest = this.run.value;
    const gap = parseGap(this.gap.value);
    if (backtest === "") return setStatus(this.status, "error", "Pick a finished backtest.");
    if ("error" in gap) return setStatus(this.status, "error", gap.error);
    const params: Record<string, string> = {
      backtest,
      gap: gap.seconds === null ? "" : String(gap.seconds),
    };
    history.replaceState(null, "", formatRoute("sessions", this.session, params));
    void this.load(backtest, gap.seconds);
  }

  private async load(backtest: string, gapSeconds: number | null): Promise<void> {
    setStatus(this.status, "loading", "Comparing…");
    this.result.replaceChildren();
    const signal = this.requests.next();
    try {
      const reply = await this.clients.backtest.compareWithSession(
        {
          backtest: `backtests/${backtest}`,
          session: this.session,
          maxEntryGap: gapSeconds === null ? undefined : { seconds: BigInt(gapSeconds), nanos: 0 },
        },
        { signal },
      );
      setStatus(this.status, null);
      this.show(backtest, reply);
    } catch (error) {
      if (!signal.aborted) setStatus(this.status, "error", driftProblem(error));
    }
  }

  private show(backtest: string, reply: CompareWithSessionResponse): void {
    const summary = reply.summary;
    const currency = reply.currency;
    const window = reply.window;
    this.result.replaceChildren(
      h("p", {
        class: "muted",
        "data-testid": "drift-window",
        text: `Trades entering ${formatTime(timestampSeconds(window?.startTime))} → ${formatTime(timestampSeconds(window?.endTime))}, amounts in ${currency}.`,
      }),
      summary === undefined ? "" : summaryChart(summary, currency),
      h("h3", {
        text: `Matched trades (${reply.matched.length})`,
        "data-testid": "matched-count",
        "data-count": String(reply.matched.length),
      }),
      matchedTable(backtest, reply),
      h("h3", {
        text: `Only in live (${reply.liveOnly.length})`,
        "data-testid": "live-only-count",
        "data-count": String(reply.liveOnly.length),
      }),
      onlyTable(reply.liveOnly, "live-only"),
      h("h3", {
        text: `Only in the backtest (${reply.backtestOnly.length})`,
        "data-testid": "backtest-only-count",
        "data-count": String(reply.backtestOnly.length),
      }),
      onlyTable(reply.backtestOnly, "backtest-only"),
    );
  }
}

// The waterfall: one row per step, its bar spanning where the PnL goes from and to.
function summaryChart(
  summary: NonNullable<CompareWithSessionResponse["summary"]>,
  currency: string,
): HTMLElement {
  const { steps, min, max } = waterfall(summary);
  const span = max - min || 1;
  const percent = (value: number) => `${(((value - min) / span) * 100).toFixed(2)}%`;
  const rows = steps.map((step) => {
    const low = Math.min(step.from, step.to);
    const high = Math.max(step.from, step.to);
    const bar = h("span", {
      class: `wf-bar ${step.total ? "total" : Number(step.amount) < 0 ? "down" : "up"}`,
    });
    bar.style.left = percent(low);
    bar.style.width = `calc(${percent(high)} - ${percent(low)})`;
    const zero = h("span", { class: "zero" });
    zero.style.left = percent(0);
    return h(
      "div",
      { class: `step ${step.key}`, "data-step": step.key, "data-amount": step.amount },
      h("span", { class: "label", text: step.label }),
      h("span", { class: "track" }, zero, bar),
      h("span", {
        class: `num ${toneOf(step.amount)}`,
        text: `${formatDecimal(step.amount, { maxFractionDigits: 2, minFractionDigits: 2, plusSign: !step.total })} ${currency}`,
      }),
    );
  });
  return h(
    "div",
    { class: "waterfall", "data-testid": "drift-summary", "data-gap": summary.pnlGap },
    ...rows,
    h("div", {
      class: "gap",
      text: `PnL gap (live less backtest): ${formatMoney(summary.pnlGap)} ${currency}`,
    }),
  );
}

function sideText(side: TradeSide): string {
  return side === TradeSide.LONG ? "Long" : side === TradeSide.SHORT ? "Short" : "—";
}

function matchedTable(backtest: string, reply: CompareWithSessionResponse): HTMLElement {
  const table = gridTable(
    [
      ["Backtest entry", "text"],
      ["Side", "text"],
      ["Live quantity", "num"],
      ["Entry delay", "num"],
      ["Exit delay", "num"],
      ["Entry slippage", "num"],
      ["Exit slippage", "num"],
      ["Slippage cost", "num"],
      ["Fee difference", "num"],
      ["PnL difference", "num"],
    ],
    "matched",
  );
  table.body.replaceChildren(
    ...reply.matched.map((m) => {
      const entry = timestampSeconds(m.backtest?.entryTime);
      const row = gridRow(
        [
          { text: formatTime(entry) },
          { text: sideText(m.live?.side ?? TradeSide.UNSPECIFIED) },
          { text: formatDecimal(m.live?.quantity ?? ""), num: true },
          { text: signedDuration(m.entryDelay), num: true },
          { text: signedDuration(m.exitDelay), num: true },
          { text: formatDecimal(m.entrySlippage, { plusSign: true }), num: true },
          { text: formatDecimal(m.exitSlippage, { plusSign: true }), num: true },
          { text: formatMoney(m.slippageCost), num: true },
          { text: formatMoney(m.feeDifference), num: true },
          { text: formatMoney(m.pnlDifference), num: true, tone: toneOf(m.pnlDifference) },
        ],
        {
          class: "opens",
          "data-trade-id": m.backtest?.tradeId ?? "",
          title: "Open the backtest's playback at this trade's entry",
        },
      );
      // The cursor at the entry's second (the playback URL keeps whole seconds).
      const at: Record<string, string> = entry === null ? {} : { t: String(Math.floor(entry)) };
      row.addEventListener("click", () => (location.hash = formatRoute("playback", backtest, at)));
      return row;
    }),
  );
  return table.element;
}

function onlyTable(trades: readonly DriftTrade[], testId: string): HTMLElement {
  const table = gridTable(
    [
      ["Entry", "text"],
      ["Exit", "text"],
      ["Side", "text"],
      ["Quantity", "num"],
      ["Entry price", "num"],
      ["Exit price", "num"],
      ["Fees", "num"],
      ["PnL", "num"],
      ["Trade", "text"],
    ],
    testId,
  );
  table.body.replaceChildren(
    ...trades.map((trade) =>
      gridRow(
        [
          { text: formatTime(timestampSeconds(trade.entryTime)) },
          { text: formatTime(timestampSeconds(trade.exitTime)) },
          { text: sideText(trade.side) },
          { text: formatDecimal(trade.quantity), num: true },
          { text: formatDecimal(trade.averageEntryPrice), num: true },
          { text: formatDecimal(trade.averageExitPrice), num: true },
          { text: formatMoney(trade.fees), num: true },
          { text: formatMoney(trade.realizedPnl), num: true, tone: toneOf(trade.realizedPnl) },
          { text: trade.tradeId },
        ],
        { "data-trade-id": trade.tradeId },
      ),
    ),
  );
  return table.element;
}
