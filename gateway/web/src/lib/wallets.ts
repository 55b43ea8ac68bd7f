// Wallet rows as the table shows them: balances summarised exactly, reconciliation outcome merged in.
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
  return beyond.map((d) => `${d.asset} ${formatDecimal(d.difference, { plusSign: true, maxFractionDigits: 8 })}`).join(" · ");
}

export function matchesQuery(fields: readonly string[], query: string): boolean {
  const q = query.trim().toLowerCase();
  if (q === "") return true;
  return q.split(/\s+/).every((term) => fields.some((field) => field.toLowerCase().includes(term)));
}
