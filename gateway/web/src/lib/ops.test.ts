import { describe, expect, it } from "vitest";
import { ReconciliationState, WalletStatus } from "../gen/tapedeck/wallets/v1/wallets_pb";
import {
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
} from "./ops";

function memory(): Storage {
  const data = new Map<string, string>();
  return {
    getItem: (k: string) => data.get(k) ?? null,
    setItem: (k: string, v: string) => void data.set(k, v),
  } as Storage;
}

describe("quote currency setting", () => {
  it("defaults to USD and keeps a valid code", () => {
    const storage = memory();
    expect(loadQuote(storage)).toBe("USD");
    saveQuote("EUR", storage);
    expect(loadQuote(storage)).toBe("EUR");
    storage.setItem("tapedeck.ops.quote", "not a code!");
    expect(loadQuote(storage)).toBe("USD");
  });
  it("normalizes what is typed", () => {
    expect(normalizeQuote(" usdc ")).toBe("USDC");
    expect(normalizeQuote("")).toBeNull();
    expect(normalizeQuote("US D")).toBeNull();
  });
});

describe("open positions", () => {
  it("flattens every session's open positions, by session then instrument", () => {
    const p = (positionId: string, instrumentId: string) => ({
      positionId,
      instrumentId,
      strategyId: "S-1",
      quantity: "1",
      averageOpenPrice: "10",
    });
    const rows = openPositions([
      { runId: "T-2:b", openPositions: [p("x", "ETH.X")] },
      { runId: "T-1:a", openPositions: [p("z", "ETH.X"), p("y", "BTC.X")] },
      { runId: "T-3:c", openPositions: [] },
    ]);
    expect(rows.map((r) => `${r.runId}/${r.positionId}`)).toEqual([
      "T-1:a/y",
      "T-1:a/z",
      "T-2:b/x",
    ]);
  });
});

describe("blocked trades", () => {
  it("sums reason counts and gives the rate per minute over the window", () => {
    const summary = blockSummary(
      [
        { reason: "max_notional", count: 3n },
        { reason: "insufficient_funds", count: 3n },
        { reason: "stale_balance", count: 6n },
      ],
      3600,
    );
    expect(summary.count).toBe(12);
    expect(summary.perMinute).toBeCloseTo(0.2);
    expect(summary.reasons.map((r) => r.reason)).toEqual([
      "stale_balance",
      "insufficient_funds",
      "max_notional",
    ]);
    expect(formatPerMinute(summary.perMinute)).toBe("0.20");
    expect(formatPerMinute(blockSummary([]).perMinute)).toBe("0");
    expect(formatPerMinute(1 / 60)).toBe("0.017");
  });
});

describe("reconciliation", () => {
  it("says the state and lists each wallet that did not match", () => {
    const report = {
      state: ReconciliationState.SUCCEEDED,
      matchedCount: 1,
      mismatchedCount: 1,
      errorCount: 1,
      errorMessage: "",
      results: [
        { displayName: "a", status: WalletStatus.MATCHED, diffs: [], errorMessage: "" },
        {
          displayName: "b",
          status: WalletStatus.MISMATCHED,
          diffs: [
            { asset: "BTC", difference: "0.5", beyondThreshold: true },
            { asset: "ETH", difference: "0", beyondThreshold: false },
          ],
          errorMessage: "",
        },
        {
          displayName: "c",
          status: WalletStatus.EXCHANGE_ERROR,
          diffs: [],
          errorMessage: "exchange unavailable (HTTP 503)",
        },
      ],
    };
    expect(reconciliationState(report.state)).toBe("succeeded");
    expect(reconciliationCounts(report)).toBe("1 matched · 1 mismatched · 1 exchange errors");
    expect(mismatchLines(report)).toEqual(["b: BTC +0.5", "c: exchange unavailable (HTTP 503)"]);
  });
});

describe("service errors", () => {
  it("turns a request rate and an error ratio into errors a minute", () => {
    expect(errorsPerMinute(2, 0.25)).toBe(30);
    expect(errorsPerMinute(0, 0)).toBe(0);
  });
});
