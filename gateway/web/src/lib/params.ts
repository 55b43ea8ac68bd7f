// Strategy parameters in the launch form: bounds checking and sweep axes, from ListStrategies
// specs.
export type ParamType = "int" | "double" | "bool" | "string";

export interface ParamSpec {
  name: string;
  type: ParamType;
  min?: number;
  max?: number;
  choices?: string[];
}

export type ParamValue =
  | { case: "intValue"; value: bigint }
  | { case: "doubleValue"; value: number }
  | { case: "boolValue"; value: boolean }
  | { case: "stringValue"; value: string };

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export function parseParam(spec: ParamSpec, text: string): Parsed<ParamValue> {
  const raw = text.trim();
  switch (spec.type) {
    case "bool":
      if (/^(true|1|yes|on)$/i.test(raw))
        return { ok: true, value: { case: "boolValue", value: true } };
      if (/^(false|0|no|off)$/i.test(raw))
        return { ok: true, value: { case: "boolValue", value: false } };
      return { ok: false, error: `${spec.name}: true or false` };
    case "string":
      if (spec.choices !== undefined && spec.choices.length > 0 && !spec.choices.includes(raw))
        return { ok: false, error: `${spec.name}: one of ${spec.choices.join(", ")}` };
      return { ok: true, value: { case: "stringValue", value: raw } };
    case "int":
    case "double": {
      const isInt = spec.type === "int";
      if (!(isInt ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i).test(raw))
        return { ok: false, error: `${spec.name}: ${isInt ? "a whole number" : "a number"}` };
      const number = Number(raw);
      if (spec.min !== undefined && number < spec.min)
        return { ok: false, error: `${spec.name}: at least ${spec.min}` };
      if (spec.max !== undefined && number > spec.max)
        return { ok: false, error: `${spec.name}: at most ${spec.max}` };
      return {
        ok: true,
        value: isInt
          ? { case: "intValue", value: BigInt(raw) }
          : { case: "doubleValue", value: number },
      };
    }
  }
}

// A sweep axis: "10, 20, 30" or a range "start:stop:step" (inclusive); booleans accept
// "true,false".
export function parseAxis(spec: ParamSpec, text: string, limit = 10_000): Parsed<ParamValue[]> {
  const raw = text.trim();
  const range = /^([^:]+):([^:]+):([^:]+)$/.exec(raw);
  let items: string[];
  if (range !== null && (spec.type === "int" || spec.type === "double")) {
    const [start, stop, step] = [Number(range[1]), Number(range[2]), Number(range[3])];
    if (![start, stop, step].every(Number.isFinite) || step <= 0 || stop < start)
      return {
        ok: false,
        error: `${spec.name}: range is start:stop:step with step > 0 and stop >= start`,
      };
    const count = Math.floor((stop - start) / step + 1e-9) + 1;
    if (count > limit)
      return { ok: false, error: `${spec.name}: ${count} values, at most ${limit}` };
    // Build from integer multiples so 0.1 steps do not drift.
    const decimals = Math.max(...[range[1], range[3]].map((s) => (s?.split(".")[1] ?? "").length));
    items = Array.from({ length: count }, (_, i) =>
      (start + i * step).toFixed(spec.type === "int" ? 0 : decimals),
    );
  } else {
    items = raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }
  if (items.length === 0) return { ok: false, error: `${spec.name}: at least one value` };
  const values: ParamValue[] = [];
  for (const item of items) {
    const parsed = parseParam(spec, item);
    if (!parsed.ok) return parsed;
    values.push(parsed.value);
  }
  return { ok: true, value: values };
}

export function gridSize(axes: ReadonlyArray<readonly unknown[]>): number {
  return axes.reduce((product, axis) => product * axis.length, 1);
}
