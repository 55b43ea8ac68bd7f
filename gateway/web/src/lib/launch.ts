// The launch form's logic: strategy parameter specs as the form checks them, the inputs collected
// into parameters (a run) or axes (a sweep), the search and walk-forward fields, and the spec sent
// to CreateBacktest / CreateSweep / CreateWalkForward.
import { create } from "@bufbuild/protobuf";
import {
  AccountType,
  ParameterType,
  ParameterValueSchema,
  RankMetric,
  SearchAlgorithm,
  type ParameterSpec,
  type ParameterValue,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { parseAxis, parseParam, type ParamSpec, type ParamValue } from "./params";
import { paramsText } from "./runs";
import { secondsToTimestamp } from "./time";

export function toSpec(spec: ParameterSpec): ParamSpec {
  const num = (v: ParameterValue | undefined): number | undefined => {
    if (v?.kind.case === "intValue") return Number(v.kind.value);
    if (v?.kind.case === "doubleValue") return v.kind.value;
    return undefined;
  };
  const types: Partial<Record<ParameterType, ParamSpec["type"]>> = {
    [ParameterType.INT]: "int",
    [ParameterType.DOUBLE]: "double",
    [ParameterType.BOOL]: "bool",
  };
  const type = types[spec.type] ?? "string";
  return {
    name: spec.name,
    type,
    min: num(spec.minValue),
    max: num(spec.maxValue),
    choices: spec.choices,
  };
}

export function valueText(v: ParameterValue | undefined): string {
  return v === undefined || v.kind.case === undefined ? "" : String(v.kind.value);
}

export function paramsOf(params: Record<string, ParameterValue>): string {
  return paramsText(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, valueText(v)])));
}

function paramValue(v: ParamValue): ParameterValue {
  return create(ParameterValueSchema, { kind: v });
}

export interface Axis {
  name: string;
  values: ParameterValue[];
}

export interface Collected {
  params: Record<string, ParameterValue>;
  axes: Axis[]; // parameters given several values (a sweep)
  errors: Map<string, string>; // by parameter name; empty when every input parses
}

// Parses each input: one value for a run; for a sweep, a list or range, where several values make
// an axis and a single value a fixed parameter.
export function collectParams(
  inputs: ReadonlyArray<{ spec: ParamSpec; text: string }>,
  sweep: boolean,
): Collected {
  const collected: Collected = { params: {}, axes: [], errors: new Map() };
  for (const { spec, text } of inputs) {
    if (!sweep) {
      const parsed = parseParam(spec, text);
      if (parsed.ok) collected.params[spec.name] = paramValue(parsed.value);
      else collected.errors.set(spec.name, parsed.error);
      continue;
    }
    const parsed = parseAxis(spec, text);
    if (!parsed.ok) collected.errors.set(spec.name, parsed.error);
    else if (parsed.value.length > 1)
      collected.axes.push({ name: spec.name, values: parsed.value.map(paramValue) });
    else if (parsed.value[0] !== undefined)
      collected.params[spec.name] = paramValue(parsed.value[0]);
  }
  return collected;
}

export interface LaunchFields {
  dataset: string;
  strategy: string;
  balance: string;
  currency: string;
  accountType: AccountType;
  barSeconds: number;
  from: string; // datetime-local in UTC, or ""
  to: string;
}

// The BacktestSpec of the form's fields: the time range only when one end is given.
export function launchSpec(fields: LaunchFields, params: Record<string, ParameterValue>) {
  const instant = (local: string) =>
    local ? secondsToTimestamp(Date.parse(`${local}Z`) / 1000) : undefined;
  const range = { startTime: instant(fields.from), endTime: instant(fields.to) };
  return {
    dataset: fields.dataset,
    strategy: fields.strategy,
    parameters: params,
    timeRange: range.startTime || range.endTime ? range : undefined,
    startingBalances: [{ currency: fields.currency.trim(), amount: fields.balance.trim() }],
    accountType: fields.accountType,
    barInterval: { seconds: BigInt(fields.barSeconds), nanos: 0 },
  };
}

// A whole number in [low, high] from a form field, or why not.
function wholeNumber(text: string, low: number, high: number): number | string {
  const value = Number(text.trim());
  if (text.trim() === "" || !Number.isInteger(value)) return "must be a whole number";
  if (value < low || value > high) return `must be between ${low} and ${high}`;
  return value;
}

export interface SearchFields {
  algorithm: SearchAlgorithm; // GRID: not a search
  budget: string;
  parallel: string;
  seed: string;
  metric: RankMetric; // what the sweep ranks by: NSGA-II's first objective
  against: RankMetric; // NSGA-II's second objective
}

// The SearchSpec of the form's search fields (undefined for a grid), or each field's error.
export function searchSpec(fields: SearchFields):
  | {
      ok: true;
      value:
        | {
            algorithm: SearchAlgorithm;
            trialBudget: number;
            parallelTrials: number;
            seed: bigint;
            objectives: RankMetric[];
          }
        | undefined;
    }
  | { ok: false; errors: Map<string, string> } {
  if (fields.algorithm === SearchAlgorithm.GRID) return { ok: true, value: undefined };
  const budget = wholeNumber(fields.budget, 1, 10_000);
  const parallel = wholeNumber(fields.parallel, 1, 64);
  const seed = wholeNumber(fields.seed, 0, Number.MAX_SAFE_INTEGER);
  const errors = new Map<string, string>();
  if (typeof budget === "string") errors.set("budget", `Trial budget ${budget}.`);
  if (typeof parallel === "string") errors.set("parallel", `Parallel trials ${parallel}.`);
  if (typeof seed === "string") errors.set("seed", `Seed ${seed}.`);
  const nsga2 = fields.algorithm === SearchAlgorithm.NSGA2;
  if (nsga2 && fields.against === fields.metric)
    errors.set("against", "NSGA-II needs a second metric other than the one ranked by.");
  if (typeof budget === "string" || typeof parallel === "string" || typeof seed === "string")
    return { ok: false, errors };
  if (errors.size > 0) return { ok: false, errors };
  const value = {
    algorithm: fields.algorithm,
    trialBudget: budget,
    parallelTrials: parallel,
    seed: BigInt(seed),
    // Only NSGA-II takes objectives; the others optimise the metric ranked by.
    objectives: nsga2 ? [fields.metric, fields.against] : [],
  };
  return { ok: true, value };
}

export interface WalkForwardFields {
  folds: string;
  anchored: boolean;
  inSampleHours: string;
  outOfSampleHours: string;
}

function hours(text: string): { seconds: bigint; nanos: number } | string {
  const value = Number(text.trim());
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0)
    return "must be a positive number of hours";
  const seconds = Math.round(value * 3600);
  return seconds < 60 ? "must be at least a minute" : { seconds: BigInt(seconds), nanos: 0 };
}

// The WalkForwardSpec of the form's walk-forward fields, or each field's error.
export function walkForwardSpec(fields: WalkForwardFields):
  | {
      ok: true;
      value: {
        folds: number;
        anchored: boolean;
        inSampleDuration: { seconds: bigint; nanos: number };
        outOfSampleDuration: { seconds: bigint; nanos: number };
      };
    }
  | { ok: false; errors: Map<string, string> } {
  const folds = wholeNumber(fields.folds, 1, 50);
  const inSample = hours(fields.inSampleHours);
  const outOfSample = hours(fields.outOfSampleHours);
  const errors = new Map<string, string>();
  if (typeof folds === "string") errors.set("folds", `Folds ${folds}.`);
  if (typeof inSample === "string") errors.set("in-sample", `In-sample length ${inSample}.`);
  if (typeof outOfSample === "string")
    errors.set("out-of-sample", `Out-of-sample length ${outOfSample}.`);
  if (typeof folds === "string" || typeof inSample === "string" || typeof outOfSample === "string")
    return { ok: false, errors };
  return {
    ok: true,
    value: {
      folds,
      anchored: fields.anchored,
      inSampleDuration: inSample,
      outOfSampleDuration: outOfSample,
    },
  };
}
