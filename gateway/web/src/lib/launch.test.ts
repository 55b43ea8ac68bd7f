import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  AccountType,
  ParameterSpecSchema,
  ParameterType,
  RankMetric,
  SearchAlgorithm,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import {
  collectParams,
  launchSpec,
  searchSpec,
  toSpec,
  valueText,
  walkForwardSpec,
} from "./launch";

const fast = toSpec(
  create(ParameterSpecSchema, {
    name: "fast_period",
    type: ParameterType.INT,
    minValue: { kind: { case: "intValue", value: 2n } },
    maxValue: { kind: { case: "intValue", value: 200n } },
  }),
);
const mode = toSpec(
  create(ParameterSpecSchema, { name: "mode", type: ParameterType.STRING, choices: ["a", "b"] }),
);

describe("launch form", () => {
  it("reads a strategy's parameter spec with its bounds", () => {
    expect(fast).toEqual({ name: "fast_period", type: "int", min: 2, max: 200, choices: [] });
    expect(mode.type).toBe("string");
  });

  it("collects one value per parameter for a run, with the errors by parameter", () => {
    const ok = collectParams(
      [
        { spec: fast, text: "10" },
        { spec: mode, text: "b" },
      ],
      false,
    );
    expect(ok.errors.size).toBe(0);
    expect(
      Object.fromEntries(Object.entries(ok.params).map(([k, v]) => [k, valueText(v)])),
    ).toEqual({
      fast_period: "10",
      mode: "b",
    });
    const bad = collectParams([{ spec: fast, text: "1" }], false);
    expect(bad.errors.get("fast_period")).toBe("fast_period: at least 2");
  });

  it("makes axes of parameters with several values in a sweep, fixed ones of the rest", () => {
    const sweep = collectParams(
      [
        { spec: fast, text: "10:30:10" },
        { spec: mode, text: "a" },
      ],
      true,
    );
    expect(sweep.axes.map((a) => [a.name, a.values.map(valueText)])).toEqual([
      ["fast_period", ["10", "20", "30"]],
    ]);
    expect(valueText(sweep.params.mode)).toBe("a");
  });

  it("sends a time range only when one end is given, in UTC", () => {
    const fields = {
      dataset: "datasets/d",
      strategy: "strategies/s",
      balance: " 1000 ",
      currency: "USD ",
      accountType: AccountType.CASH,
      barSeconds: 300,
      from: "",
      to: "",
    };
    const open = launchSpec(fields, {});
    expect(open.timeRange).toBeUndefined();
    expect(open.startingBalances).toEqual([{ currency: "USD", amount: "1000" }]);
    expect(open.barInterval).toEqual({ seconds: 300n, nanos: 0 });
    const from = launchSpec({ ...fields, from: "2024-01-02T03:04" }, {});
    expect(from.timeRange?.startTime?.seconds).toBe(BigInt(Date.UTC(2024, 0, 2, 3, 4) / 1000));
    expect(from.timeRange?.endTime).toBeUndefined();
  });
});

describe("search and walk-forward fields", () => {
  const search = {
    budget: "30",
    parallel: "2",
    seed: "7",
    metric: RankMetric.SHARPE_RATIO,
    against: RankMetric.MAX_DRAWDOWN,
  };

  it("sends no search for a grid, and a search spec with whole numbers in range", () => {
    expect(searchSpec({ algorithm: SearchAlgorithm.GRID, ...search })).toEqual({
      ok: true,
      value: undefined,
    });
    expect(searchSpec({ algorithm: SearchAlgorithm.TPE, ...search })).toEqual({
      ok: true,
      value: {
        algorithm: SearchAlgorithm.TPE,
        trialBudget: 30,
        parallelTrials: 2,
        seed: 7n,
        objectives: [],
      },
    });
    const nsga2 = searchSpec({ algorithm: SearchAlgorithm.NSGA2, ...search });
    expect(nsga2.ok && nsga2.value?.objectives).toEqual([
      RankMetric.SHARPE_RATIO,
      RankMetric.MAX_DRAWDOWN,
    ]);
    const same = searchSpec({
      ...search,
      algorithm: SearchAlgorithm.NSGA2,
      against: RankMetric.SHARPE_RATIO,
    });
    expect(same.ok ? [] : [...same.errors.keys()]).toEqual(["against"]);
    const bad = searchSpec({
      ...search,
      algorithm: SearchAlgorithm.RANDOM,
      budget: "0",
      parallel: "1.5",
      seed: "",
    });
    expect(bad.ok ? [] : [...bad.errors.values()]).toEqual([
      "Trial budget must be between 1 and 10000.",
      "Parallel trials must be a whole number.",
      "Seed must be a whole number.",
    ]);
  });

  it("cuts hours into whole seconds and names each bad field", () => {
    const ok = walkForwardSpec({
      folds: "3",
      anchored: true,
      inSampleHours: "1.5",
      outOfSampleHours: "0.5",
    });
    expect(ok).toEqual({
      ok: true,
      value: {
        folds: 3,
        anchored: true,
        inSampleDuration: { seconds: 5400n, nanos: 0 },
        outOfSampleDuration: { seconds: 1800n, nanos: 0 },
      },
    });
    const bad = walkForwardSpec({
      folds: "51",
      anchored: false,
      inSampleHours: "-1",
      outOfSampleHours: "0.001",
    });
    expect(bad.ok ? [] : [...bad.errors.keys()]).toEqual(["folds", "in-sample", "out-of-sample"]);
  });
});
