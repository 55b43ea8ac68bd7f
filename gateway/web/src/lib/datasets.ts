// The datasets view's logic: sending a local file in chunks of unary calls (a browser cannot stream
// a request), resuming from the offset the server holds, and the import form's defaults.
import { DataKind } from "../gen/tapedeck/backtest/v1/backtest_pb";

// Bytes per UploadChunk call: well under the server's 3 MiB bound and the 4 MiB request limit,
// small enough that progress moves and a failed call loses little.
export const CHUNK_BYTES = 1024 * 1024;

export interface UploadState {
  readonly name: string; // "uploads/{id}"
  readonly totalBytes: bigint;
  readonly nextOffset: bigint;
  readonly complete: boolean;
  readonly sourcePath: string;
}

// The three upload RPCs, as the sender needs them (a fake in tests, the client in the view).
export interface UploadApi {
  start(fileName: string, totalBytes: number): Promise<UploadState>;
  chunk(name: string, offset: number, data: Uint8Array): Promise<UploadState>;
  get(name: string): Promise<UploadState>;
}

// A local file's bytes, by range (a File's slice in the browser).
export interface ByteSource {
  readonly size: number;
  read(start: number, end: number): Promise<Uint8Array>;
}

// Sends `source` into upload `name` from wherever the server says it stands, following the offset
// every answer gives (a chunk at the wrong offset writes nothing and names the right one). Call
// it again with the same name after an error to resume.
export async function sendUpload(
  api: UploadApi,
  name: string,
  source: ByteSource,
  onProgress: (sent: number, total: number) => void,
  signal?: AbortSignal,
): Promise<UploadState> {
  let upload = await api.get(name);
  onProgress(Number(upload.nextOffset), source.size);
  while (!upload.complete) {
    signal?.throwIfAborted();
    const offset = Number(upload.nextOffset);
    const data = await source.read(offset, Math.min(offset + CHUNK_BYTES, source.size));
    upload = await api.chunk(name, offset, data);
    onProgress(Number(upload.nextOffset), source.size);
  }
  return upload;
}

// Where a browser remembers an unfinished upload of a file, so a reload resumes it.
export function uploadKey(file: { name: string; size: number; lastModified: number }): string {
  return `tapedeck.upload:${file.name}:${file.size}:${file.lastModified}`;
}

// "12.3 MB": sizes in decimal units, as file browsers show them.
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

const QUOTES = ["USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "JPY", "BTC", "ETH"];

// The base and quote currencies an instrument id names: "BTCUSDT.BINANCE" -> BTC, USDT;
// "EUR/USD.SIM" -> EUR, USD; "BTCUSDT-PERP.BINANCE" -> BTC, USDT. Null when it does not tell.
export function splitSymbol(instrumentId: string): { base: string; quote: string } | null {
  const symbol = (instrumentId.split(".")[0] ?? "").toUpperCase().replace(/-PERP$/, "");
  const pair = symbol.split(/[/-]/);
  if (pair.length === 2 && pair[0] !== "" && pair[1] !== "")
    return { base: pair[0] as string, quote: pair[1] as string };
  for (const quote of QUOTES)
    if (symbol.endsWith(quote) && symbol.length > quote.length)
      return { base: symbol.slice(0, -quote.length), quote };
  return null;
}

// The kind the form starts with for a file: the server's guess, else trades.
export function defaultKind(guessed: DataKind): DataKind {
  return guessed === DataKind.UNSPECIFIED ? DataKind.TRADES : guessed;
}

// A file's name without its folders and extension, as a dataset's default display name.
export function displayNameOf(path: string): string {
  const base = path.split("/").at(-1) ?? path;
  return base.replace(/\.(csv|txt|parquet|pq)$/i, "");
}
