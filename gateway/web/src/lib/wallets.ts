// The wallets view: its state (wallets with their last reconciliation result, the filter, the
// selected wallet, the report's summary) and wallet rows as the table shows them: balances
// summarised exactly, the reconciliation outcome merged in.
import {
  ExchangeErrorKind,
  ReconciliationState,
  WalletStatus,
  type Reconciliation,
  type Wallet,
  type WalletReconciliation,
} from "../gen/tapedeck/wallets/v1/wallets_pb";
import { formatDecimal, isDecimal, signOf } from "./decimal";

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
      const kind = ExchangeErrorKind[result.errorKind] ?? "";
      return `exchange error: ${kind.toLowerCase().replace(/_/g, " ")}`;
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

export interface WalletRow {
  readonly wallet: Wallet;
  readonly result: WalletReconciliation | null;
}

export interface ReportSummary {
  readonly report: Reconciliation; // with the counts so far while it runs
  readonly done: number; // wallet results received
}

export interface WalletsState {
  readonly rows: ReadonlyMap<string, WalletRow>; // by wallet name, in listing order
  readonly query: string;
  readonly onlyDiffs: boolean;
  readonly selected: string | null;
  readonly summary: ReportSummary | null;
}

export function initialWallets(): WalletsState {
  return { rows: new Map(), query: "", onlyDiffs: false, selected: null, summary: null };
}

// A page of wallets: new ones are added, known ones updated; their results are kept.
export function walletsListed(state: WalletsState, wallets: readonly Wallet[]): WalletsState {
  const rows = new Map(state.rows);
  for (const wallet of wallets)
    rows.set(wallet.name, { wallet, result: state.rows.get(wallet.name)?.result ?? null });
  return { ...state, rows };
}

// Every page is in: wallets that were not listed are gone.
export function walletsComplete(state: WalletsState, listed: ReadonlySet<string>): WalletsState {
  if ([...state.rows.keys()].every((name) => listed.has(name))) return state;
  return { ...state, rows: new Map([...state.rows].filter(([name]) => listed.has(name))) };
}

// A wallet deleted: its row goes, and the detail closes if it was open.
export function walletRemoved(state: WalletsState, name: string): WalletsState {
  const rows = new Map(state.rows);
  rows.delete(name);
  return { ...state, rows, selected: state.selected === name ? null : state.selected };
}

export interface BalanceForm {
  readonly asset: string;
  readonly total: string;
  readonly available: string; // empty: the total
  readonly hold: string; // empty: 0
}

// The balance an admin typed, as SetBalances takes it, or why it cannot be sent. Amounts stay
// decimal strings; available + hold must not exceed total is the service's rule to check.
export function balanceFromForm(
  form: BalanceForm,
): { asset: string; total: string; available: string; hold: string } | string {
  const asset = form.asset.trim().toUpperCase();
  if (!/^[A-Z0-9]{1,20}$/.test(asset)) return "Asset: letters and digits, e.g. BTC.";
  const total = form.total.trim();
  const available = form.available.trim() === "" ? total : form.available.trim();
  const hold = form.hold.trim() === "" ? "0" : form.hold.trim();
  for (const [label, value] of [
    ["Total", total],
    ["Available", available],
    ["Hold", hold],
  ] as const)
    if (!isDecimal(value) || signOf(value) < 0) return `${label}: a non-negative decimal number.`;
  return { asset, total, available, hold };
}

export function resultsArrived(
  state: WalletsState,
  results: readonly WalletReconciliation[],
): WalletsState {
  const rows = new Map(state.rows);
  for (const result of results) {
    const row = rows.get(result.wallet);
    if (row !== undefined) rows.set(result.wallet, { ...row, result });
  }
  return { ...state, rows };
}

// A new reconciliation starts: the last results no longer hold.
export function resultsCleared(state: WalletsState): WalletsState {
  const rows = new Map([...state.rows].map(([name, row]) => [name, { ...row, result: null }]));
  return { ...state, rows };
}

export function filtered(
  state: WalletsState,
  filter: { query: string; onlyDiffs: boolean },
): WalletsState {
  return { ...state, ...filter };
}

export function walletSelected(state: WalletsState, name: string): WalletsState {
  return { ...state, selected: name };
}

export function summaryShown(
  state: WalletsState,
  report: Reconciliation,
  done: number,
): WalletsState {
  return { ...state, summary: { report, done } };
}

// The rows the filter lets through: words matched against name, exchange, account and assets
// (stored, or compared by the last reconciliation).
export function visibleRows(state: WalletsState): WalletRow[] {
  return [...state.rows.values()].filter(
    ({ wallet, result }) =>
      (!state.onlyDiffs || (result !== null && result.status !== WalletStatus.MATCHED)) &&
      matchesQuery(
        [
          wallet.displayName,
          wallet.exchange,
          wallet.accountRef,
          ...wallet.balances.map((b) => b.asset),
          // The listed wallets may carry no balances: the reconciliation's assets count too.
          ...(result?.diffs ?? []).map((d) => d.asset),
        ],
        state.query,
      ),
  );
}

export function countText(shown: number, total: number): string {
  return `${shown === total ? total : `${shown} of ${total}`} wallets`;
}
