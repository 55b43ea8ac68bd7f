// The Ops page's figures: the quote-currency setting, open positions across live sessions,
// blocked trades over a window, the latest reconciliation's outcome and per-service errors.
import { ReconciliationState, WalletStatus } from "../gen/tapedeck/wallets/v1/wallets_pb";
import { formatDecimal } from "./decimal";

const QUOTE_KEY = "tapedeck.ops.quote";
export const DEFAULT_QUOTE = "USD";
export const BLOCK_WINDOW_SECONDS = 3600;
const ASSET_CODE = /^[A-Z0-9][A-Z0-9._-]{0,31}$/;

// An asset code as typed ("usd " -> "USD"); null when it cannot be one.
export function normalizeQuote(text: string): string | null {
  const code = text.trim().toUpperCase();
  return ASSET_CODE.test(code) ? code : null;
}

export function loadQuote(storage: Pick<Storage, "getItem"> | undefined): string {
  return normalizeQuote(storage?.getItem(QUOTE_KEY) ?? "") ?? DEFAULT_QUOTE;
}

export function saveQuote(quote: string, storage: Pick<Storage, "setItem"> | undefined): void {
  storage?.setItem(QUOTE_KEY, quote);
}

export interface PositionLike {
  positionId: string;
  instrumentId: string;
  strategyId: string;
  quantity: string;
  averageOpenPrice: string;
}

export interface SessionLike {
  runId: string;
  openPositions: readonly PositionLike[];
}

export interface OpenPosition extends PositionLike {
  runId: string;
}

// Every session's open positions, one row each, by session then instrument.
export function openPositions(sessions: readonly SessionLike[]): OpenPosition[] {
  return sessions
    .flatMap((session) => session.openPositions.map((p) => ({ ...p, runId: session.runId })))
    .sort(
      (a, b) =>
        a.runId.localeCompare(b.runId) ||
        a.instrumentId.localeCompare(b.instrumentId) ||
        a.positionId.localeCompare(b.positionId),
    );
}

export interface ReasonCountLike {
  reason: string;
  count: bigint;
}

export interface BlockSummary {
  count: number;
  perMinute: number;
  reasons: Array<{ reason: string; count: number }>;
}

// Blocks in a window from ListBlocks' counts per reason (they cover the whole filter).
export function blockSummary(
  counts: readonly ReasonCountLike[],
  windowSeconds: number = BLOCK_WINDOW_SECONDS,
): BlockSummary {
  const reasons = counts
    .map((c) => ({ reason: c.reason, count: Number(c.count) }))
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  const count = reasons.reduce((sum, r) => sum + r.count, 0);
  return { count, perMinute: count / (windowSeconds / 60), reasons };
}

export function formatPerMinute(perMinute: number): string {
  return perMinute === 0 ? "0" : perMinute < 0.1 ? perMinute.toFixed(3) : perMinute.toFixed(2);
}

export interface DiffLike {
  asset: string;
  difference: string;
  beyondThreshold: boolean;
}

export interface ResultLike {
  displayName: string;
  status: WalletStatus;
  diffs: readonly DiffLike[];
  errorMessage: string;
}

export interface ReconciliationLike {
  state: ReconciliationState;
  matchedCount: number;
  mismatchedCount: number;
  errorCount: number;
  errorMessage: string;
  results: readonly ResultLike[];
}

const STATES: Record<ReconciliationState, string> = {
  [ReconciliationState.UNSPECIFIED]: "unknown",
  [ReconciliationState.QUEUED]: "queued",
  [ReconciliationState.RUNNING]: "running",
  [ReconciliationState.SUCCEEDED]: "succeeded",
  [ReconciliationState.FAILED]: "failed",
};

export function reconciliationState(state: ReconciliationState): string {
  return STATES[state];
}

export function reconciliationCounts(report: ReconciliationLike): string {
  return `${report.matchedCount} matched · ${report.mismatchedCount} mismatched · ${report.errorCount} exchange errors`;
}

// One line per wallet that did not match: its differing assets, or why the exchange failed.
export function mismatchLines(report: ReconciliationLike): string[] {
  return report.results
    .filter((r) => r.status !== WalletStatus.MATCHED)
    .map((r) => {
      if (r.status === WalletStatus.EXCHANGE_ERROR) return `${r.displayName}: ${r.errorMessage}`;
      const assets = r.diffs
        .filter((d) => d.beyondThreshold)
        .map((d) => `${d.asset} ${formatDecimal(d.difference, { plusSign: true, group: false })}`);
      return `${r.displayName}: ${assets.join(", ")}`;
    });
}

// Errors a minute from a service's request rate and error ratio.
export function errorsPerMinute(requestRate: number, errorRatio: number): number {
  return requestRate * errorRatio * 60;
}
