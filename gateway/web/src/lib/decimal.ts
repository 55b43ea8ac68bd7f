// Exact decimal strings (money, quantities) for display: never parsed into floats.

export interface Decimal {
  negative: boolean;
  int: string; // digits, no leading zeros except "0"
  frac: string; // digits, no trailing zeros
}

const PATTERN = /^\s*([+-])?(\d*)(?:\.(\d*))?\s*$/;

export function parseDecimal(text: string): Decimal | null {
  const match = PATTERN.exec(text);
  if (match === null) return null;
  const rawInt = match[2] ?? "";
  const rawFrac = match[3] ?? "";
  if (rawInt === "" && rawFrac === "") return null;
  const int = rawInt.replace(/^0+(?=\d)/, "") || "0";
  const frac = rawFrac.replace(/0+$/, "");
  const zero = /^0*$/.test(int) && frac === "";
  return { negative: match[1] === "-" && !zero, int, frac };
}

export function isDecimal(text: string): boolean {
  return parseDecimal(text) !== null;
}

export function signOf(text: string): -1 | 0 | 1 {
  const d = parseDecimal(text);
  if (d === null || (d.int === "0" && d.frac === "")) return 0;
  return d.negative ? -1 : 1;
}

function scaled(d: Decimal, scale: number): bigint {
  const digits = BigInt(d.int + d.frac.padEnd(scale, "0"));
  return d.negative ? -digits : digits;
}

function fromScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  const int = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale).replace(/0+$/, "");
  const body = frac === "" ? int : `${int}.${frac}`;
  return negative && body !== "0" ? `-${body}` : body;
}

export function compareDecimal(a: string, b: string): number {
  const x = parseDecimal(a) ?? parseDecimal("0")!;
  const y = parseDecimal(b) ?? parseDecimal("0")!;
  const scale = Math.max(x.frac.length, y.frac.length);
  const diff = scaled(x, scale) - scaled(y, scale);
  return diff === 0n ? 0 : diff < 0n ? -1 : 1;
}

// a - b, exactly.
export function subtractDecimal(a: string, b: string): string {
  const x = parseDecimal(a) ?? parseDecimal("0")!;
  const y = parseDecimal(b) ?? parseDecimal("0")!;
  const scale = Math.max(x.frac.length, y.frac.length);
  return fromScaled(scaled(x, scale) - scaled(y, scale), scale);
}

export interface DecimalFormat {
  maxFractionDigits?: number; // round half away from zero beyond this
  minFractionDigits?: number;
  group?: boolean; // thousands separators
  plusSign?: boolean;
}

// Formats a decimal string; an unparseable input is returned as-is so the user still sees it.
export function formatDecimal(text: string, options: DecimalFormat = {}): string {
  const d = parseDecimal(text);
  if (d === null) return text;
  let { int, frac } = d;
  const max = options.maxFractionDigits;
  if (max !== undefined && frac.length > max) {
    const roundUp = frac.charCodeAt(max) - 48 >= 5;
    let value = BigInt(int + frac.slice(0, max));
    if (roundUp) value += 1n;
    const digits = value.toString().padStart(max + 1, "0");
    int = digits.slice(0, digits.length - max);
    frac = digits.slice(digits.length - max).replace(/0+$/, "");
  }
  const min = options.minFractionDigits ?? 0;
  if (frac.length < min) frac = frac.padEnd(min, "0");
  if (options.group !== false) int = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const zero = /^[0,]*$/.test(int) && /^0*$/.test(frac);
  const sign = d.negative && !zero ? "-" : options.plusSign === true && !zero ? "+" : "";
  return frac === "" ? `${sign}${int}` : `${sign}${int}.${frac}`;
}

// Money: two decimals, always shown, with thousands separators (one style across the app).
export function formatMoney(text: string): string {
  return formatDecimal(text, { maxFractionDigits: 2, minFractionDigits: 2 });
}
