import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BacktestSpecSchema,
  BacktestState,
  RankMetric,
  WalkForwardSchema,
  WalkForwardState,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { setZone } from "./time";
import {
  equityPoints,
  foldRows,
  hasStitchedEquity,
  walkForwardFinal,
  walkForwardListRow,
} from "./walkforward";

const at = (hour: number) => ({ seconds: BigInt(hour * 3600), nanos: 0 });

describe("walk-forward folds", () => {
  setZone("utc", undefined);
  const walk = create(WalkForwardSchema, {
    name: "walkForwards/w",
    metric: RankMetric.TOTAL_RETURN,
    state: WalkForwardState.RUNNING,
    folds: [
      {
        index: 0,
        inSample: { startTime: at(0), endTime: at(6) },
        outOfSample: { startTime: at(6), endTime: at(9) },
        sweep: "sweeps/s0",
        bestParameters: { fast_period: { kind: { case: "intValue", value: 5n } } },
        inSampleValue: 0.0125,
        outOfSampleBacktest: "backtests/r0",
        outOfSampleState: BacktestState.SUCCEEDED,
        outOfSampleValue: -0.005,
        efficiency: -0.8,
      },
      {
        index: 1,
        inSample: { startTime: at(3), endTime: at(9) },
        outOfSample: { startTime: at(9), endTime: at(12) },
        sweep: "sweeps/s1",
      },
    ],
  });

  it("reads each fold's windows, winner and out-of-sample result", () => {
    const [first, second] = foldRows(walk);
    expect(first).toMatchObject({
      index: 0,
      inSample: [0, 21600],
      outOfSample: [21600, 32400],
      windows: [
        "1970-01-01 00:00 UTC → 1970-01-01 06:00 UTC",
        "1970-01-01 06:00 UTC → 1970-01-01 09:00 UTC",
      ],
      sweepId: "s0",
      parameters: "fast_period=5",
      inSampleText: "1.25%",
      outOfSampleText: "-0.50%",
      efficiencyText: "-0.80",
      runId: "r0",
      phase: "succeeded",
    });
    expect(second).toMatchObject({ parameters: "", inSampleText: "", runId: "", phase: "queued" });
    expect(walkForwardFinal(walk)).toBe(false);
    expect(walkForwardFinal({ ...walk, state: WalkForwardState.FAILED })).toBe(true);
    expect(hasStitchedEquity(walk)).toBe(false);
    expect(hasStitchedEquity({ ...walk, state: WalkForwardState.SUCCEEDED })).toBe(true);
  });

  it("reads a walk-forward as one row of the list", () => {
    const listed = create(WalkForwardSchema, {
      name: walk.name,
      state: walk.state,
      folds: walk.folds,
      createTime: at(30),
    });
    expect(walkForwardListRow(listed)).toEqual({
      id: "w",
      created: "1970-01-02 06:00 UTC",
      phase: "running",
      dataset: "",
      folds: "1/2",
      efficiencyText: "",
    });
    const done = walkForwardListRow({
      ...walk,
      state: WalkForwardState.SUCCEEDED,
      efficiency: 0.456,
      baseSpec: create(BacktestSpecSchema, { dataset: "datasets/d1" }),
    });
    expect(done).toMatchObject({
      phase: "succeeded",
      dataset: "datasets/d1",
      efficiencyText: "0.46",
    });
  });

  it("turns the stitched curve into strictly increasing seconds, the last of a second kept", () => {
    const s = 1_000_000_000n;
    const chunk = { times: [10n * s, 10n * s + 5n, 11n * s, 12n * s], equity: [1, 2, 3, 4] };
    expect(equityPoints(chunk, -Infinity)).toEqual([
      { time: 10, value: 2 },
      { time: 11, value: 3 },
      { time: 12, value: 4 },
    ]);
    // The next chunk's first point in the second drawn last replaces it; earlier ones are dropped.
    expect(equityPoints({ times: [11n * s, 12n * s, 13n * s], equity: [9, 5, 6] }, 12)).toEqual([
      { time: 12, value: 5 },
      { time: 13, value: 6 },
    ]);
  });
});
