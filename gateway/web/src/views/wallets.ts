// Wallets: every wallet with its balances in a virtualised table; reconciliation results stream in per
// wallet and differences are highlighted.
import {
  ReconciliationState,
  WalletStatus,
  type Reconciliation,
  type Wallet,
  type WalletReconciliation,
} from "../gen/tapedeck/wallets/v1/wallets_pb";
import type { Clients } from "../transport";
import { describeError } from "../errors";
import { formatDecimal, isDecimal } from "../lib/decimal";
import {
  balancesSummary,
  diffSummary,
  matchesQuery,
  reportIsComplete,
  resultsOf,
  statusClass,
  statusText,
  tally,
  type Counts,
} from "../lib/wallets";
import { formatTime, timestampSeconds } from "../lib/time";
import type { Route } from "../lib/router";
import { h, setStatus, type Scope } from "../ui/dom";
import { VirtualTable } from "../ui/vtable";

// Most wallet results the service may put in one streamed message.
const RESULTS_PER_MESSAGE = 500;

interface Row {
  wallet: Wallet;
  result: WalletReconciliation | null;
}

export function renderWallets(
  root: HTMLElement,
  clients: Clients,
  _route: Route,
  scope: Scope,
): void {
  const rows = new Map<string, Row>();
  let selected: string | null = null;
  const search = h("input", {
    type: "search",
    placeholder: "filter: name, exchange, asset…",
    "aria-label": "Filter wallets",
  });
  const onlyDiffs = h("input", { type: "checkbox", name: "only-diffs" });
  const threshold = h("input", {
    name: "threshold",
    value: "0",
    size: 10,
    "aria-label": "Threshold",
    title: "Absolute difference above which an asset mismatches",
  });
  const adopt = h("input", { type: "checkbox", name: "adopt" });
  const reconcile = h("button", { type: "button", class: "primary", text: "Reconcile all" });
  const actionStatus = h("div", { "data-testid": "reconcile-status" });
  const listStatus = h("div");
  const summary = h("div", { class: "summary", "data-testid": "reconcile-summary" });
  const detail = h("section", {
    class: "panel detail",
    "data-testid": "wallet-detail",
    hidden: true,
  });

  const table = new VirtualTable<Row>(
    [
      {
        key: "name",
        title: "Wallet",
        width: "minmax(10rem, 1.2fr)",
        render: (r) => r.wallet.displayName,
      },
      { key: "exchange", title: "Exchange", width: "7rem", render: (r) => r.wallet.exchange },
      {
        key: "account",
        title: "Account",
        width: "minmax(8rem, 1fr)",
        render: (r) => r.wallet.accountRef,
      },
      {
        key: "balances",
        title: "Balances",
        width: "minmax(14rem, 2fr)",
        render: (r) => balancesSummary(r.wallet.balances),
      },
      {
        key: "status",
        title: "Reconciliation",
        width: "11rem",
        render: (r) => statusText(r.result),
        className: (r) => `st ${statusClass(r.result)}`,
      },
      {
        key: "diff",
        title: "Differences",
        width: "minmax(10rem, 1.5fr)",
        render: (r) => (r.result === null ? "" : diffSummary(r.result.diffs)),
        className: () => "diff",
      },
    ],
    {
      rowKey: (r) => r.wallet.name,
      rowClass: (r) =>
        `${statusClass(r.result) === "ok" ? "" : statusClass(r.result)} ${r.wallet.name === selected ? "selected" : ""}`,
      onRowClick: (r) => {
        selected = r.wallet.name;
        showDetail(r);
        refresh();
      },
      empty: "No wallets. An admin creates them with CreateWallet (grpcurl or the API).",
      testId: "wallets",
    },
  );

  scope.add(() => table.dispose());
  root.replaceChildren(
    h(
      "div",
      { class: "view-head" },
      h("h1", { text: "Wallets" }),
      h("span", { class: "muted", "data-testid": "wallet-count" }),
    ),
    h(
      "div",
      { class: "toolbar" },
      search,
      h("label", {}, onlyDiffs, " only differences"),
      h("span", { class: "spacer" }),
      h("label", {}, "threshold ", threshold),
      h(
        "label",
        { title: "Replace mismatched stored balances with the exchange's" },
        adopt,
        " adopt exchange balances",
      ),
      reconcile,
    ),
    actionStatus,
    summary,
    listStatus,
    table.element,
    detail,
  );

  function refresh(): void {
    const query = search.value;
    const visible = [...rows.values()].filter(
      (r) =>
        (!onlyDiffs.checked || (r.result !== null && r.result.status !== WalletStatus.MATCHED)) &&
        matchesQuery(
          [
            r.wallet.displayName,
            r.wallet.exchange,
            r.wallet.accountRef,
            ...r.wallet.balances.map((b) => b.asset),
          ],
          query,
        ),
    );
    table.setRows(visible);
    const count = root.querySelector<HTMLElement>("[data-testid=wallet-count]");
    if (count !== null)
      count.textContent = `${visible.length === rows.size ? rows.size : `${visible.length} of ${rows.size}`} wallets`;
  }
  search.addEventListener("input", refresh);
  onlyDiffs.addEventListener("change", refresh);

  function showDetail(row: Row): void {
    detail.hidden = false;
    const result = row.result;
    const diffs = h(
      "table",
      { class: "grid" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Asset", "Stored", "Exchange", "Difference"].map((t) => h("th", { text: t })),
        ),
      ),
    );
    const body = h("tbody");
    if (result !== null && result.diffs.length > 0) {
      for (const d of result.diffs)
        body.append(
          h(
            "tr",
            { class: d.beyondThreshold ? "mismatch" : "" },
            h("td", { text: d.asset }),
            h("td", { class: "num", text: formatDecimal(d.storedTotal) }),
            h("td", { class: "num", text: formatDecimal(d.exchangeTotal) }),
            h("td", { class: "num diff", text: formatDecimal(d.difference, { plusSign: true }) }),
          ),
        );
    } else {
      for (const b of row.wallet.balances)
        body.append(
          h(
            "tr",
            {},
            h("td", { text: b.asset }),
            h("td", { class: "num", text: formatDecimal(b.total) }),
            h("td", { text: "—" }),
            h("td", { text: "" }),
          ),
        );
    }
    diffs.append(body);
    detail.replaceChildren(
      h("h2", { text: row.wallet.displayName }),
      h("p", {
        class: "muted",
        text: `${row.wallet.exchange} · ${row.wallet.accountRef} · credentials ${row.wallet.credentialsRef} · updated ${formatTime(timestampSeconds(row.wallet.updateTime))}`,
      }),
      result === null
        ? h("p", { text: "Not reconciled yet." })
        : h("p", {
            class: statusClass(result),
            text: `${statusText(result)}${result.errorMessage ? ` — ${result.errorMessage}` : ""} · fetched ${formatTime(timestampSeconds(result.fetchTime))}${result.fromCache ? " (cached)" : ""}`,
          }),
      diffs,
    );
  }

  function apply(result: WalletReconciliation): void {
    const row = rows.get(result.wallet);
    if (row === undefined) return;
    row.result = result;
    if (row.wallet.name === selected) showDetail(row);
  }

  function showSummary(report: Reconciliation, done: number): void {
    const total = report.wallets.length || rows.size;
    const finished =
      report.state === ReconciliationState.SUCCEEDED || report.state === ReconciliationState.FAILED;
    summary.dataset.state = ReconciliationState[report.state]?.toLowerCase() ?? "";
    summary.replaceChildren(
      h("span", {
        text: finished
          ? `Reconciled ${formatTime(timestampSeconds(report.endTime ?? report.createTime))}`
          : `Reconciling… ${done} of ${total}`,
      }),
      h("span", { class: "ok", "data-count": "matched", text: `${report.matchedCount} matched` }),
      h("span", {
        class: "mismatch",
        "data-count": "mismatched",
        text: `${report.mismatchedCount} mismatched`,
      }),
      h("span", {
        class: "error",
        "data-count": "errors",
        text: `${report.errorCount} exchange errors`,
      }),
      ...(report.errorMessage ? [h("span", { class: "error", text: report.errorMessage })] : []),
    );
  }

  async function watch(report: Reconciliation): Promise<void> {
    if (reportIsComplete(report)) {
      // Done when returned (every balance was cached): the results came with it.
      for (const result of report.results) apply(result);
      showSummary(report, report.results.length);
      refresh();
      return;
    }
    let done = 0;
    let counts: Counts = { matchedCount: 0, mismatchedCount: 0, errorCount: 0 };
    showSummary({ ...report, ...counts }, done);
    // Results stored together arrive together: one message and one table refresh per batch.
    const stream = clients.wallets.watchReconciliation(
      { name: report.name, maxResultsPerMessage: RESULTS_PER_MESSAGE },
      { signal: scope.signal },
    );
    for await (const message of stream) {
      if (message.event.case === "reconciliation") {
        for (const result of message.event.value.results) apply(result);
        showSummary(message.event.value, message.event.value.results.length);
        refresh();
        continue;
      }
      const results = resultsOf<WalletReconciliation>(message.event);
      if (results.length === 0) continue;
      for (const result of results) apply(result);
      done += results.length;
      counts = tally(counts, results);
      showSummary({ ...report, ...counts }, done);
      refresh();
    }
  }

  reconcile.addEventListener("click", () => {
    if (!isDecimal(threshold.value)) {
      setStatus(actionStatus, "error", "Threshold must be a decimal number, e.g. 0.0001.");
      return;
    }
    reconcile.disabled = true;
    setStatus(actionStatus, "loading", "Starting reconciliation…");
    for (const row of rows.values()) row.result = null;
    refresh();
    void (async () => {
      try {
        const { reconciliation } = await clients.wallets.reconcileWallets(
          { threshold: threshold.value.trim(), adoptExchangeBalances: adopt.checked },
          { signal: scope.signal },
        );
        if (reconciliation === undefined) throw new Error("the service returned no reconciliation");
        setStatus(actionStatus, null);
        await watch(reconciliation);
        if (adopt.checked) await loadWallets();
      } catch (error) {
        if (!scope.signal.aborted)
          setStatus(actionStatus, "error", `Reconcile failed: ${describeError(error)}`);
      } finally {
        reconcile.disabled = false;
      }
    })();
  });

  async function loadWallets(): Promise<void> {
    setStatus(listStatus, "loading", "Loading wallets…");
    let token = "";
    const seen = new Set<string>();
    do {
      const page = await clients.wallets.listWallets(
        { pageSize: 1000, pageToken: token },
        { signal: scope.signal },
      );
      for (const wallet of page.wallets) {
        seen.add(wallet.name);
        const existing = rows.get(wallet.name);
        rows.set(wallet.name, { wallet, result: existing?.result ?? null });
      }
      token = page.nextPageToken;
      refresh();
      if (token !== "") setStatus(listStatus, "loading", `Loading wallets… ${rows.size} so far`);
    } while (token !== "");
    for (const name of [...rows.keys()]) if (!seen.has(name)) rows.delete(name);
    refresh();
    setStatus(listStatus, null);
  }

  async function loadLastReport(): Promise<void> {
    const list = await clients.wallets.listReconciliations(
      { pageSize: 1 },
      { signal: scope.signal },
    );
    const last = list.reconciliations[0];
    if (last === undefined) return;
    if (last.state === ReconciliationState.QUEUED || last.state === ReconciliationState.RUNNING) {
      await watch(last);
      return;
    }
    const { reconciliation } = await clients.wallets.getReconciliation(
      { name: last.name },
      { signal: scope.signal },
    );
    if (reconciliation === undefined) return;
    for (const result of reconciliation.results) apply(result);
    showSummary(reconciliation, reconciliation.results.length);
    refresh();
  }

  void loadWallets()
    .then(() =>
      loadLastReport().catch((error: unknown) => {
        if (!scope.signal.aborted)
          setStatus(actionStatus, "error", `Last reconciliation: ${describeError(error)}`);
      }),
    )
    .catch((error: unknown) => {
      if (!scope.signal.aborted) setStatus(listStatus, "error", describeError(error));
    });
}
