// The launch form's logic: strategy parameter specs as the form checks them, the inputs collected
// into parameters (a run) or axes (a sweep), and the spec sent to CreateBacktest / CreateSweep.
import { create } from "@bufbuild/protobuf";
import {
  AccountType,
  ParameterType,
  ParameterValueSchema,
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
