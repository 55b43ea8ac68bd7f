// Wallet rows as the table shows them: balances summarised exactly, reconciliation outcome merged in.
import {
  ExchangeErrorKind,
  ReconciliationState,
  WalletStatus,
} from "../gen/tapedeck/wallets/v1/wallets_pb";
import { formatDecimal, signOf } from "./decimal";

export interface BalanceLike {
  asset: string;
  total: string;
}

export interface DiffLike {
  asset: string;
  storedTotal: string;
  exchangeTotal: string;
  difference: string;
  beyondThreshold: boolean;
}

export function balancesSummary(balances: readonly BalanceLike[], max = 4): string {
  const shown = balances
    .filter((b) => signOf(b.total) !== 0)
    .slice(0, max)
    .map((b) => `${b.asset} ${formatDecimal(b.total, { maxFractionDigits: 8 })}`);
  const hidden = balances.filter((b) => signOf(b.total) !== 0).length - shown.length;
  if (shown.length === 0) return "no balances";
  return hidden > 0 ? `${shown.join(" · ")} · +${hidden} more` : shown.join(" · ");
}

export function diffSummary(diffs: readonly DiffLike[]): string {
  const beyond = diffs.filter((d) => d.beyondThreshold);
  if (beyond.length === 0) return "";
  return beyond
    .map(
      (d) => `${d.asset} ${formatDecimal(d.difference, { plusSign: true, maxFractionDigits: 8 })}`,
    )
    .join(" · ");
}

export function matchesQuery(fields: readonly string[], query: string): boolean {
  const q = query.trim().toLowerCase();
  if (q === "") return true;
  return q.split(/\s+/).every((term) => fields.some((field) => field.toLowerCase().includes(term)));
}

export interface ResultLike {
  status: WalletStatus;
  adopted: boolean;
  errorKind: ExchangeErrorKind;
}

export function statusText(result: ResultLike | null): string {
  if (result === null) return "—";
  switch (result.status) {
    case WalletStatus.MATCHED:
      return "matched";
    case WalletStatus.MISMATCHED:
      return result.adopted ? "mismatch (adopted)" : "mismatch";
    case WalletStatus.EXCHANGE_ERROR:
      return `exchange error: ${(ExchangeErrorKind[result.errorKind] ?? "").toLowerCase().replace(/_/g, " ")}`;
    default:
      return "—";
  }
}

export function statusClass(result: ResultLike | null): "" | "ok" | "mismatch" | "error" {
  if (result === null) return "";
  return result.status === WalletStatus.MATCHED
    ? "ok"
    : result.status === WalletStatus.MISMATCHED
      ? "mismatch"
      : "error";
}

// The wallet results one WatchReconciliation message carries: one, a batch, or none (the report).
export type WatchEventLike<R> =
  | { case: "result"; value: R }
  | { case: "results"; value: { results: readonly R[] } }
  | { case: "reconciliation" | undefined; value?: unknown };

export function resultsOf<R>(event: WatchEventLike<R>): readonly R[] {
  if (event.case === "result") return [event.value];
  if (event.case === "results") return event.value.results;
  return [];
}

export interface Counts {
  matchedCount: number;
  mismatchedCount: number;
  errorCount: number;
}

export function tally(counts: Counts, results: readonly ResultLike[]): Counts {
  let { matchedCount, mismatchedCount, errorCount } = counts;
  for (const result of results) {
    if (result.status === WalletStatus.MATCHED) matchedCount += 1;
    else if (result.status === WalletStatus.MISMATCHED) mismatchedCount += 1;
    else errorCount += 1;
  }
  return { matchedCount, mismatchedCount, errorCount };
}

export interface ReportLike {
  state: ReconciliationState;
  wallets: readonly string[];
  results: readonly unknown[];
}

// A report that needs no watching: finished, with a result for every wallet it names.
export function reportIsComplete(report: ReportLike): boolean {
  const finished =
    report.state === ReconciliationState.SUCCEEDED || report.state === ReconciliationState.FAILED;
  return finished && report.results.length === report.wallets.length;
}
