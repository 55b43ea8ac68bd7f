// Times and numbers for display: one style across the app. Times are in UTC (traders share one
// clock across desks) or the browser's zone, by a setting kept in the browser, and always say which.
export interface TimestampLike {
  seconds: bigint;
  nanos: number;
}

export function timestampSeconds(ts: TimestampLike | undefined): number | null {
  if (ts === undefined) return null;
  return Number(ts.seconds) + ts.nanos / 1e9;
}

export function secondsToTimestamp(seconds: number): { seconds: bigint; nanos: number } {
  const whole = Math.floor(seconds);
  return { seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) };
}

export type Zone = "utc" | "local";
const ZONE_KEY = "tapedeck.zone";
let zone: Zone = "utc";

// The zone setting, read once at start from `storage` (a browser's localStorage).
export function loadZone(storage: Pick<Storage, "getItem"> | undefined): Zone {
  zone = storage?.getItem(ZONE_KEY) === "local" ? "local" : "utc";
  return zone;
}

export function setZone(next: Zone, storage: Pick<Storage, "setItem"> | undefined): void {
  zone = next;
  storage?.setItem(ZONE_KEY, next);
}

export function currentZone(): Zone {
  return zone;
}

// The label times carry: "UTC", or the browser's offset such as "UTC+01:00".
export function zoneLabel(seconds = 0): string {
  if (zone === "utc") return "UTC";
  const offset = -new Date(seconds * 1000).getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

// "YYYY-MM-DD HH:MM[:SS]" in the chosen zone, without its label (charts label their axis).
export function wallClock(seconds: number, withSeconds = true): string {
  const shift = zone === "utc" ? 0 : -new Date(seconds * 1000).getTimezoneOffset() * 60;
  const iso = new Date((seconds + shift) * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, withSeconds ? 19 : 16)}`;
}

// A time with its zone's label.
export function formatTime(seconds: number | null, withSeconds = true): string {
  if (seconds === null || !Number.isFinite(seconds)) return "—";
  return `${wallClock(seconds, withSeconds)} ${zoneLabel(seconds)}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  if (seconds < 86400)
    return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.round((seconds % 86400) / 3600)} h`;
}

const formats = new Map<number, Intl.NumberFormat>();

// `value` with `digits` decimals and thousands separators; never "-0.00".
export function formatNumber(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return "—";
  let format = formats.get(digits);
  if (format === undefined) {
    format = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    formats.set(digits, format);
  }
  const text = format.format(value);
  return /^-[0.,]*$/.test(text) ? text.slice(1) : text;
}

export function formatPercent(fraction: number, digits = 2): string {
  if (!Number.isFinite(fraction)) return "—";
  return `${formatNumber(fraction * 100, digits)}%`;
}
