// A run's export (ExportBacktest) as files: the streamed chunks of each file joined into a Blob,
// which is kept only when its size and SHA-256 are the ones the stream declared on its last chunk.
import { ExportFormat, ExportPart } from "../gen/tapedeck/backtest/v1/backtest_pb";

// The parts a run exports, each a download button; tables come in the chosen format.
export const EXPORT_PARTS: ReadonlyArray<readonly [ExportPart, string, "table" | "json"]> = [
  [ExportPart.CANDLES, "Candles", "table"],
  [ExportPart.FILLS, "Fills", "table"],
  [ExportPart.TRADES, "Trades", "table"],
  [ExportPart.EQUITY, "Equity", "table"],
  [ExportPart.SPEC, "Spec", "json"],
  [ExportPart.STATISTICS, "Statistics", "json"],
];

export const EXPORT_FORMATS: ReadonlyArray<readonly [ExportFormat, string]> = [
  [ExportFormat.CSV, "CSV"],
  [ExportFormat.PARQUET, "Parquet"],
];

export interface ExportChunk {
  fileName: string;
  contentType: string;
  data: Uint8Array;
  lastChunk: boolean;
  fileSize: bigint;
  sha256: string;
}

export interface ExportedFile {
  readonly name: string;
  readonly blob: Blob;
  readonly size: number;
  readonly sha256: string; // hex, as declared by the stream and checked
}

export async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The files of an export stream; throws naming the file when one is cut short or its bytes do
// not match the size or SHA-256 declared for it.
export async function collectExport(chunks: AsyncIterable<ExportChunk>): Promise<ExportedFile[]> {
  const files: ExportedFile[] = [];
  let parts: Uint8Array<ArrayBuffer>[] = [];
  let open: string | null = null;
  for await (const chunk of chunks) {
    if (open !== null && chunk.fileName !== open)
      throw new Error(`${open}: the stream moved to ${chunk.fileName} before its last chunk`);
    open = chunk.fileName;
    parts.push(new Uint8Array(chunk.data));
    if (!chunk.lastChunk) continue;
    const blob = new Blob(parts, { type: chunk.contentType });
    const declared = Number(chunk.fileSize);
    if (blob.size !== declared)
      throw new Error(`${open}: received ${blob.size} bytes, the server declared ${declared}`);
    const digest = await sha256Hex(await blob.arrayBuffer());
    if (digest !== chunk.sha256.toLowerCase())
      throw new Error(`${open}: SHA-256 ${digest} differs from the declared ${chunk.sha256}`);
    files.push({ name: open, blob, size: blob.size, sha256: digest });
    parts = [];
    open = null;
  }
  if (open !== null) throw new Error(`${open}: the stream ended before its last chunk`);
  return files;
}
