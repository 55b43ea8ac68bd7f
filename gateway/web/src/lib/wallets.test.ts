import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ExchangeErrorKind,
  ReconciliationState,
  WalletReconciliationSchema,
  WalletSchema,
  WalletStatus,
} from "../gen/tapedeck/wallets/v1/wallets_pb";
import {
  balancesSummary,
  countText,
  diffSummary,
  filtered,
  initialWallets,
  matchesQuery,
  resultsArrived,
  resultsCleared,
  visibleRows,
  walletsComplete,
  walletsListed,
  reportIsComplete,
  resultsOf,
  statusClass,
  statusText,
  tally,
  walletRemoved,
  walletSelected,
  balanceFromForm,
} from "./wallets";

describe("wallet rows", () => {
  it("summarises non-zero balances exactly", () => {
    expect(
      balancesSummary([
        { asset: "BTC", total: "1.5" },
        { asset: "ETH", total: "10.123456789012345678" },
        { asset: "USD", total: "0.00" },
      ]),
    ).toBe("BTC 1.5 · ETH 10.12345679");
    expect(balancesSummary([])).toBe("no balances");
  });
  it("lists only differences beyond the threshold, signed", () => {
    expect(
      diffSummary([
        {
          asset: "BTC",
          storedTotal: "1",
          exchangeTotal: "1.5",
          difference: "0.5",
          beyondThreshold: true,
        },
        {
          asset: "USD",
          storedTotal: "1000",
          exchangeTotal: "999.99",
          difference: "-0.01",
          beyondThreshold: false,
        },
        {
          asset: "ETH",
          storedTotal: "2",
          exchangeTotal: "0",
          difference: "-2",
          beyondThreshold: true,
        },
      ]),
    ).toBe("BTC +0.5 · ETH -2");
  });
  it("filters on every term", () => {
    expect(matchesQuery(["desk-a", "coinbase", "BTC 1"], "desk btc")).toBe(true);
    expect(matchesQuery(["desk-a", "coinbase"], "desk eth")).toBe(false);
  });
});

describe("reconciliation status", () => {
  it("names the outcome and the exchange error", () => {
    const none = ExchangeErrorKind.UNSPECIFIED;
    expect(statusText({ status: WalletStatus.MISMATCHED, adopted: true, errorKind: none })).toBe(
      "mismatch (adopted)",
    );
    expect(
      statusText({
        status: WalletStatus.EXCHANGE_ERROR,
        adopted: false,
        errorKind: ExchangeErrorKind.RATE_LIMITED,
      }),
    ).toBe("exchange error: rate limited");
    expect(statusClass({ status: WalletStatus.MATCHED, adopted: false, errorKind: none })).toBe(
      "ok",
    );
    expect(statusText(null)).toBe("—");
  });
});

describe("watch messages", () => {
  const none = ExchangeErrorKind.UNSPECIFIED;
  const matched = { status: WalletStatus.MATCHED, adopted: false, errorKind: none };
  const off = { status: WalletStatus.MISMATCHED, adopted: false, errorKind: none };
  const failed = {
    status: WalletStatus.EXCHANGE_ERROR,
    adopted: false,
    errorKind: ExchangeErrorKind.TIMEOUT,
  };
  it("takes the results of a single result, a batch, or none from the report", () => {
    expect(resultsOf({ case: "result", value: matched })).toEqual([matched]);
    expect(resultsOf({ case: "results", value: { results: [matched, off] } })).toEqual([
      matched,
      off,
    ]);
    expect(resultsOf({ case: "reconciliation", value: {} })).toEqual([]);
    expect(resultsOf({ case: undefined })).toEqual([]);
  });
  it("counts a batch by outcome", () => {
    expect(
      tally({ matchedCount: 1, mismatchedCount: 0, errorCount: 0 }, [matched, off, failed, off]),
    ).toEqual({
      matchedCount: 2,
      mismatchedCount: 2,
      errorCount: 1,
    });
  });
});

describe("reports returned by ReconcileWallets", () => {
  it("needs no watch only when finished with every wallet's result", () => {
    const wallets = ["wallets/a", "wallets/b"];
    expect(
      reportIsComplete({ state: ReconciliationState.SUCCEEDED, wallets, results: [{}, {}] }),
    ).toBe(true);
    expect(reportIsComplete({ state: ReconciliationState.SUCCEEDED, wallets, results: [] })).toBe(
      false,
    );
    expect(
      reportIsComplete({ state: ReconciliationState.RUNNING, wallets, results: [{}, {}] }),
    ).toBe(false);
    expect(
      reportIsComplete({ state: ReconciliationState.SUCCEEDED, wallets: [], results: [] }),
    ).toBe(true);
  });
});

describe("wallets state", () => {
  const wallet = (id: string, name: string, assets: string[]) =>
    create(WalletSchema, {
      name: `wallets/${id}`,
      displayName: name,
      exchange: "coinbase",
      balances: assets.map((asset) => ({ asset, total: "1" })),
    });
  const result = (id: string, status: WalletStatus) =>
    create(WalletReconciliationSchema, { wallet: `wallets/${id}`, status });

  it("keeps results across pages and drops wallets no longer listed", () => {
    let state = walletsListed(initialWallets(), [
      wallet("a", "desk a", ["BTC"]),
      wallet("b", "desk b", []),
    ]);
    state = resultsArrived(state, [
      result("a", WalletStatus.MISMATCHED),
      result("zz", WalletStatus.MATCHED),
    ]);
    state = walletsListed(state, [wallet("a", "desk a renamed", ["BTC"])]);
    expect(state.rows.get("wallets/a")?.result?.status).toBe(WalletStatus.MISMATCHED);
    expect(state.rows.get("wallets/a")?.wallet.displayName).toBe("desk a renamed");
    expect(state.rows.has("wallets/zz")).toBe(false);
    const complete = walletsComplete(state, new Set(["wallets/a"]));
    expect([...complete.rows.keys()]).toEqual(["wallets/a"]);
    expect(walletsComplete(complete, new Set(["wallets/a"]))).toBe(complete);
    expect(resultsCleared(complete).rows.get("wallets/a")?.result).toBeNull();
  });

  it("drops a deleted wallet and closes its detail", () => {
    let state = walletsListed(initialWallets(), [wallet("a", "a", []), wallet("b", "b", [])]);
    state = walletSelected(state, "wallets/a");
    const gone = walletRemoved(state, "wallets/a");
    expect([...gone.rows.keys()]).toEqual(["wallets/b"]);
    expect(gone.selected).toBeNull();
    expect(walletRemoved(walletSelected(state, "wallets/b"), "wallets/a").selected).toBe(
      "wallets/b",
    );
  });

  it("reads a typed balance exactly, with defaults, or says what is wrong", () => {
    expect(balanceFromForm({ asset: " btc ", total: "1.250", available: "", hold: "" })).toEqual({
      asset: "BTC",
      total: "1.250",
      available: "1.250",
      hold: "0",
    });
    expect(
      balanceFromForm({ asset: "ETH", total: "10.123456789012345678", available: "9", hold: "1" }),
    ).toEqual({ asset: "ETH", total: "10.123456789012345678", available: "9", hold: "1" });
    expect(balanceFromForm({ asset: "", total: "1", available: "", hold: "" })).toMatch(/^Asset/);
    expect(balanceFromForm({ asset: "BTC", total: "-1", available: "", hold: "" })).toMatch(
      /^Total/,
    );
    expect(balanceFromForm({ asset: "BTC", total: "1", available: "x", hold: "" })).toMatch(
      /^Available/,
    );
  });

  it("filters by words and by differences, and counts what is shown", () => {
    let state = walletsListed(initialWallets(), [
      wallet("a", "desk alpha", ["BTC", "ETH"]),
      wallet("b", "desk beta", ["USD"]),
      wallet("c", "gamma", ["BTC"]),
    ]);
    state = resultsArrived(state, [
      result("a", WalletStatus.MATCHED),
      result("b", WalletStatus.EXCHANGE_ERROR),
      result("c", WalletStatus.MISMATCHED),
    ]);
    const names = (s: typeof state) => visibleRows(s).map((r) => r.wallet.displayName);
    expect(names(filtered(state, { query: "desk", onlyDiffs: false }))).toEqual([
      "desk alpha",
      "desk beta",
    ]);
    expect(names(filtered(state, { query: "btc", onlyDiffs: true }))).toEqual(["gamma"]);
    expect(names(filtered(state, { query: "", onlyDiffs: true }))).toEqual(["desk beta", "gamma"]);
    // A listed wallet without balances is found by an asset its reconciliation compared.
    let bare = walletsListed(initialWallets(), [wallet("d", "delta", [])]);
    bare = resultsArrived(bare, [
      create(WalletReconciliationSchema, {
        wallet: "wallets/d",
        status: WalletStatus.MISMATCHED,
        diffs: [{ asset: "SOL", difference: "1" }],
      }),
    ]);
    expect(names(filtered(bare, { query: "sol", onlyDiffs: false }))).toEqual(["delta"]);
    expect(countText(2, 3)).toBe("2 of 3 wallets");
    expect(countText(3, 3)).toBe("3 wallets");
  });
});
