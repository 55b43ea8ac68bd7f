// How a run reads in the list: short ids, parameters, and the progress label.
import { BacktestState } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatDuration } from "./time";

export type RunPhase = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "unspecified";

export function stateName(state: BacktestState): RunPhase {
  return (BacktestState[state] ?? "unspecified").toLowerCase() as RunPhase;
}

export function shortId(name: string): string {
  const id = name.split("/").pop() ?? name;
  return id.length > 10 ? id.slice(0, 8) : id;
}

export function paramsText(params: Record<string, string>): string {
  return Object.entries(params)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

// Percent to draw (a succeeded run is full whatever its last progress said) and its label.
export function progressView(
  phase: RunPhase,
  percent: number,
  etaSeconds: number | null,
): { percent: number; label: string } {
  const shown =
    phase === "succeeded"
      ? 100
      : Math.max(0, Math.min(100, Number.isFinite(percent) ? percent : 0));
  if (phase === "queued") return { percent: 0, label: "queued" };
  if (phase === "running")
    return {
      percent: shown,
      label: `${shown.toFixed(0)}%${etaSeconds !== null ? ` · ${formatDuration(etaSeconds)} left` : ""}`,
    };
  return { percent: shown, label: `${shown.toFixed(0)}%` };
}
