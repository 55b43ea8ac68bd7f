// Ops at a glance: wallet balances valued in one quote currency, open live positions, blocked
// trades over the last hour, the latest reconciliation and every service's health and errors,
// refreshed every few seconds while the page is open.
import type { Clients } from "../transport";
import { describeError } from "../errors";
import { h, setStatus, type Scope } from "../ui/dom";
import { formatDecimal, formatMoney } from "../lib/decimal";
import { formatTime, secondsToTimestamp, timestampSeconds } from "../lib/time";
import {
  BLOCK_WINDOW_SECONDS,
  blockSummary,
  errorsPerMinute,
  formatPerMinute,
  loadQuote,
  mismatchLines,
  normalizeQuote,
  openPositions,
  reconciliationCounts,
  reconciliationState,
  saveQuote,
} from "../lib/ops";
import { formatRatio } from "./overview";
import { PriceStatus, type GetBalanceTotalsResponse } from "../gen/tapedeck/wallets/v1/wallets_pb";
import { EventType, type Session } from "../gen/tapedeck/live/v1/live_pb";

const REFRESH_MS = 5000;
const MAX_SESSION_PAGES = 20;

function panel(title: string, testid: string, ...children: Node[]): HTMLElement {
  return h(
    "section",
    { class: "panel ops-panel", "data-testid": testid },
    h("h2", { text: title }),
    ...children,
  );
}

function cells(row: HTMLTableRowElement, texts: string[]): HTMLTableRowElement {
  for (const text of texts) row.insertCell().textContent = text;
  return row;
}

function table(headers: string[], body: HTMLTableSectionElement): HTMLTableElement {
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, ...headers.map((text) => h("th", { text })))),
    body,
  );
}

const PRICE_NOTES: Record<PriceStatus, string> = {
  [PriceStatus.UNSPECIFIED]: "",
  [PriceStatus.PRICED]: "",
  [PriceStatus.QUOTE]: "quote currency",
  [PriceStatus.NO_MARKET]: "no market",
  [PriceStatus.UNAVAILABLE]: "price unavailable",
};

export function renderOps(root: HTMLElement, clients: Clients, scope: Scope): void {
  let quote = loadQuote(window.localStorage);
  const quoteInput = h("input", {
    name: "quote",
    value: quote,
    size: 6,
    "aria-label": "Quote currency",
    "data-testid": "ops-quote",
  });
  quoteInput.addEventListener("change", () => {
    const next = normalizeQuote(quoteInput.value);
    if (next === null) {
      quoteInput.value = quote;
      return;
    }
    quote = next;
    quoteInput.value = next;
    saveQuote(next, window.localStorage);
    void refresh();
  });

  const totalValue = h("p", { class: "ops-figure", "data-testid": "ops-total-value" });
  const totalsNote = h("p", { class: "hint", "data-testid": "ops-totals-note" });
  const assetRows = h("tbody", {});
  const positionsNote = h("p", { class: "hint", "data-testid": "ops-positions-note" });
  const positionRows = h("tbody", {});
  const blocksFigure = h("p", { class: "ops-figure", "data-testid": "ops-blocks" });
  const reasonRows = h("tbody", {});
  const reconState = h("p", { class: "ops-figure", "data-testid": "ops-reconciliation" });
  const reconLines = h("ul", { "data-testid": "ops-mismatches" });
  const serviceRows = h("tbody", {});
  const updated = h("p", { class: "hint", "data-testid": "ops-updated" });
  const slot = h("div", {});

  root.replaceChildren(
    h("h1", { text: "Ops" }),
    h("label", { class: "ops-quote" }, "Value in ", quoteInput),
    slot,
    h(
      "div",
      { class: "ops-grid" },
      panel(
        "Wallet balances",
        "ops-balances",
        totalValue,
        totalsNote,
        table(["Asset", "Total", "Wallets", "Price", "Value"], assetRows),
      ),
      panel(
        "Open live positions",
        "ops-positions",
        positionsNote,
        table(["Session", "Instrument", "Strategy", "Quantity", "Avg. open"], positionRows),
      ),
      panel(
        "Blocked trades, last hour",
        "ops-blocked",
        blocksFigure,
        table(["Reason", "Blocks"], reasonRows),
      ),
      panel("Latest reconciliation", "ops-recon", reconState, reconLines),
      panel(
        "Services",
        "ops-services",
        table(["Service", "Health", "Requests/s", "Error ratio", "Errors/min"], serviceRows),
      ),
    ),
    updated,
  );

  const showTotals = (totals: GetBalanceTotalsResponse): void => {
    totalValue.dataset.value = totals.totalValue;
    totalValue.dataset.quote = totals.quoteCurrency;
    totalValue.textContent = `${formatMoney(totals.totalValue)} ${totals.quoteCurrency}`;
    const notes = [];
    if (totals.unpricedCount > 0) notes.push(`${totals.unpricedCount} asset(s) not valued`);
    if (totals.priceErrorMessage !== "") notes.push(`prices: ${totals.priceErrorMessage}`);
    totalsNote.textContent = notes.join(" · ");
    assetRows.replaceChildren(
      ...totals.assets.map((asset) => {
        const row = cells(h("tr", { "data-asset": asset.asset }), [
          asset.asset,
          formatDecimal(asset.total, { maxFractionDigits: 8 }),
          String(asset.walletCount),
          asset.price === "" ? PRICE_NOTES[asset.priceStatus] : formatDecimal(asset.price),
          asset.value === "" ? "—" : formatMoney(asset.value),
        ]);
        row.dataset.value = asset.value;
        return row;
      }),
    );
  };

  const showPositions = (sessions: Session[]): void => {
    const rows = openPositions(sessions);
    positionsNote.dataset.count = String(rows.length);
    positionsNote.textContent = `${rows.length} open across ${sessions.length} session(s)`;
    positionRows.replaceChildren(
      ...rows.map((p) =>
        cells(h("tr", { "data-position": p.positionId }), [
          p.runId,
          p.instrumentId,
          p.strategyId,
          formatDecimal(p.quantity, { plusSign: true }),
          formatDecimal(p.averageOpenPrice),
        ]),
      ),
    );
  };

  const loadSessions = async (): Promise<Session[]> => {
    const sessions: Session[] = [];
    let pageToken = "";
    for (let page = 0; page < MAX_SESSION_PAGES; page++) {
      const reply = await clients.live.listSessions(
        { pageSize: 500, pageToken },
        { signal: scope.signal },
      );
      sessions.push(...reply.sessions);
      pageToken = reply.nextPageToken;
      if (pageToken === "") break;
    }
    return sessions;
  };

  const loadBlocks = async (): Promise<void> => {
    const now = Date.now() / 1000;
    const reply = await clients.live.listBlocks(
      {
        filter: {
          types: [EventType.TRADE_BLOCKED],
          timeRange: {
            startTime: secondsToTimestamp(now - BLOCK_WINDOW_SECONDS),
            endTime: secondsToTimestamp(now),
          },
        },
        pageSize: 1,
      },
      { signal: scope.signal },
    );
    const summary = blockSummary(reply.reasonCounts);
    blocksFigure.dataset.count = String(summary.count);
    blocksFigure.textContent = `${summary.count} blocked · ${formatPerMinute(summary.perMinute)}/min`;
    reasonRows.replaceChildren(
      ...summary.reasons.map((r) =>
        cells(h("tr", { "data-reason": r.reason, "data-count": String(r.count) }), [
          r.reason,
          String(r.count),
        ]),
      ),
    );
  };

  const loadReconciliation = async (): Promise<void> => {
    const listed = await clients.wallets.listReconciliations(
      { pageSize: 1 },
      { signal: scope.signal },
    );
    const latest = listed.reconciliations[0];
    if (latest === undefined) {
      reconState.dataset.state = "none";
      reconState.textContent = "No reconciliation yet";
      reconLines.replaceChildren();
      return;
    }
    const full = await clients.wallets.getReconciliation(
      { name: latest.name },
      { signal: scope.signal },
    );
    const report = full.reconciliation ?? latest;
    reconState.dataset.state = reconciliationState(report.state);
    reconState.dataset.name = report.name;
    reconState.textContent =
      `${reconciliationState(report.state)} · ${reconciliationCounts(report)} · ` +
      formatTime(timestampSeconds(report.createTime));
    reconLines.replaceChildren(
      ...mismatchLines(report).map((text) => h("li", { text })),
      ...(report.errorMessage === "" ? [] : [h("li", { text: report.errorMessage })]),
    );
  };

  const loadServices = async (): Promise<void> => {
    const status = await clients.stack.getStackStatus({}, { signal: scope.signal });
    serviceRows.replaceChildren(
      ...status.services.map((service) => {
        const row = cells(
          h("tr", {
            "data-service": service.service,
            "data-state": service.serving ? "up" : "down",
          }),
          [
            service.service,
            service.serving ? "serving" : "not serving",
            service.metricsError === "" ? service.requestRate.toFixed(2) : "—",
            formatRatio(service.errorRatio),
            errorsPerMinute(service.requestRate, service.errorRatio).toFixed(1),
          ],
        );
        if (service.metricsError !== "") row.title = service.metricsError;
        return row;
      }),
    );
  };

  // Each panel fails on its own: one service down leaves the others' figures on the page.
  const refresh = async (): Promise<void> => {
    const asked = quote;
    const results = await Promise.allSettled([
      clients.wallets
        .getBalanceTotals({ quoteCurrency: asked }, { signal: scope.signal })
        .then((totals) => {
          if (totals.quoteCurrency === quote) showTotals(totals);
        }),
      loadSessions().then(showPositions),
      loadBlocks(),
      loadReconciliation(),
      loadServices(),
    ]);
    if (scope.signal.aborted) return;
    const failures = results.flatMap((r) =>
      r.status === "rejected" ? [describeError(r.reason)] : [],
    );
    root.dataset.error = failures.length > 0 ? "true" : "";
    setStatus(slot, failures.length > 0 ? "error" : null, failures.join(" · "));
    updated.dataset.readTime = String(Date.now());
    updated.textContent = `Updated ${formatTime(Date.now() / 1000)}`;
  };
  void refresh();
  const timer = window.setInterval(() => void refresh(), REFRESH_MS);
  scope.add(() => window.clearInterval(timer));
}
