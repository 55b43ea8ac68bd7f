// Reconciling every wallet against its exchange: the controls (threshold, adopt), the report's
// summary, and the per-wallet results streaming in through WatchReconciliation.
import { Role } from "../../gen/tapedeck/common/v1/common_pb";
import { gate } from "../../lib/identity";
import {
  ReconciliationState,
  type Reconciliation,
  type WalletReconciliation,
} from "../../gen/tapedeck/wallets/v1/wallets_pb";
import { describeError } from "../../errors";
import { isDecimal } from "../../lib/decimal";
import type { Store } from "../../lib/store";
import { formatTime, timestampSeconds } from "../../lib/time";
import {
  reportIsComplete,
  resultsArrived,
  resultsCleared,
  resultsOf,
  summaryShown,
  tally,
  type Counts,
  type ReportSummary,
  type WalletsState,
} from "../../lib/wallets";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";

// Most wallet results the service may put in one streamed message.
const RESULTS_PER_MESSAGE = 500;

function summaryItems(summary: ReportSummary, wallets: number): HTMLElement[] {
  const { report, done } = summary;
  const total = report.wallets.length || wallets;
  const finished =
    report.state === ReconciliationState.SUCCEEDED || report.state === ReconciliationState.FAILED;
  const when = formatTime(timestampSeconds(report.endTime ?? report.createTime));
  return [
    h("span", { text: finished ? `Reconciled ${when}` : `Reconciling… ${done} of ${total}` }),
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
  ];
}

export class Reconciler {
  readonly threshold = h("input", {
    name: "threshold",
    value: "0",
    size: 10,
    "aria-label": "Threshold",
    title: "Absolute difference above which an asset mismatches",
  });
  readonly adopt = h("input", { type: "checkbox", name: "adopt" });
  readonly button = h("button", { type: "button", class: "primary", text: "Reconcile all" });
  readonly status = h("div", { "data-testid": "reconcile-status" });
  readonly summary = h("div", { class: "summary", "data-testid": "reconcile-summary" });

  // `adopted` reloads the wallets after the exchange's balances replaced the stored ones.
  constructor(
    private readonly store: Store<WalletsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
    adopted: () => Promise<void>,
  ) {
    gate(this.button, Role.OPERATOR, "Reconciling");
    this.button.addEventListener("click", () => void this.reconcile(adopted));
    scope.add(
      store.subscribe((next, previous) => {
        if (next.summary !== previous.summary && next.summary !== null) {
          this.summary.dataset.state =
            ReconciliationState[next.summary.report.state]?.toLowerCase() ?? "";
          this.summary.replaceChildren(...summaryItems(next.summary, next.rows.size));
        }
      }),
    );
  }

  // The last report, followed if it is still running.
  async showLast(): Promise<void> {
    const signal = this.scope.signal;
    const list = await this.clients.wallets.listReconciliations({ pageSize: 1 }, { signal });
    const last = list.reconciliations[0];
    if (last === undefined) return;
    if (last.state === ReconciliationState.QUEUED || last.state === ReconciliationState.RUNNING) {
      await this.watch(last);
      return;
    }
    const { reconciliation } = await this.clients.wallets.getReconciliation(
      { name: last.name },
      { signal },
    );
    if (reconciliation !== undefined) this.completed(reconciliation);
  }

  private async reconcile(adopted: () => Promise<void>): Promise<void> {
    if (!isDecimal(this.threshold.value)) {
      setStatus(this.status, "error", "Threshold must be a decimal number, e.g. 0.0001.");
      return;
    }
    this.button.disabled = true;
    setStatus(this.status, "loading", "Starting reconciliation…");
    this.store.update(resultsCleared);
    try {
      const adopt = this.adopt.checked;
      const request = { threshold: this.threshold.value.trim(), adoptExchangeBalances: adopt };
      const { reconciliation } = await this.clients.wallets.reconcileWallets(request, {
        signal: this.scope.signal,
      });
      if (reconciliation === undefined) throw new Error("the service returned no reconciliation");
      setStatus(this.status, null);
      await this.watch(reconciliation);
      if (adopt) await adopted();
    } catch (error) {
      if (!this.scope.signal.aborted)
        setStatus(this.status, "error", `Reconcile failed: ${describeError(error)}`);
    } finally {
      this.button.disabled = false;
    }
  }

  private completed(report: Reconciliation): void {
    this.arrived(report.results, report, report.results.length);
  }

  private arrived(results: readonly WalletReconciliation[], report: Reconciliation, done: number) {
    this.store.update((s) => summaryShown(resultsArrived(s, results), report, done));
  }

  private async watch(report: Reconciliation): Promise<void> {
    // Done when returned (every balance was cached): the results came with it.
    if (reportIsComplete(report)) return this.completed(report);
    let done = 0;
    let counts: Counts = { matchedCount: 0, mismatchedCount: 0, errorCount: 0 };
    this.arrived([], { ...report, ...counts }, done);
    // Results stored together arrive together: one message and one table refresh per batch.
    const stream = this.clients.wallets.watchReconciliation(
      { name: report.name, maxResultsPerMessage: RESULTS_PER_MESSAGE },
      { signal: this.scope.signal },
    );
    for await (const message of stream) {
      if (message.event.case === "reconciliation") {
        this.completed(message.event.value);
        continue;
      }
      const results = resultsOf<WalletReconciliation>(message.event);
      if (results.length === 0) continue;
      done += results.length;
      counts = tally(counts, results);
      this.arrived(results, { ...report, ...counts }, done);
    }
  }
}
