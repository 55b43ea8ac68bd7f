import { describe, expect, it } from "vitest";
import { DataKind } from "../gen/tapedeck/backtest/v1/backtest_pb";
import {
  CHUNK_BYTES,
  defaultKind,
  displayNameOf,
  formatBytes,
  sendUpload,
  splitSymbol,
  uploadKey,
  type UploadApi,
  type UploadState,
} from "./datasets";

// An upload server held in memory, with the real rules: a chunk at another offset writes nothing
// and answers the offset to resume from; `failAt` makes one call fail as a network error would.
function server(total: number, failAt: number | null = null) {
  const received = new Uint8Array(total);
  let next = 0;
  let calls = 0;
  const state = (): UploadState => ({
    name: "uploads/u1",
    totalBytes: BigInt(total),
    nextOffset: BigInt(next),
    complete: next === total,
    sourcePath: next === total ? "uploads/f.csv" : "",
  });
  const api: UploadApi = {
    start: async () => state(),
    get: async () => state(),
    chunk: async (_name, offset, data) => {
      calls += 1;
      if (calls === failAt) throw new Error("network down");
      if (offset === next && next < total) {
        received.set(data, offset);
        next += data.length;
      }
      return state();
    },
  };
  return { api, received, sent: () => next, calls: () => calls };
}

function source(bytes: Uint8Array) {
  return { size: bytes.length, read: async (a: number, b: number) => bytes.slice(a, b) };
}

describe("sendUpload", () => {
  const bytes = Uint8Array.from({ length: CHUNK_BYTES * 2 + 123 }, (_, i) => i % 251);

  it("sends every byte once, in chunks, reporting progress up to the total", async () => {
    const { api, received, calls } = server(bytes.length);
    const seen: number[] = [];
    const done = await sendUpload(api, "uploads/u1", source(bytes), (sent) => seen.push(sent));
    expect(done.complete).toBe(true);
    expect(calls()).toBe(3);
    expect(received).toEqual(bytes);
    expect(seen).toEqual([0, CHUNK_BYTES, CHUNK_BYTES * 2, bytes.length]);
  });

  it("resumes after an error from the offset the server holds", async () => {
    const { api, received, sent } = server(bytes.length, 2);
    await expect(sendUpload(api, "uploads/u1", source(bytes), () => {})).rejects.toThrow(
      "network down",
    );
    expect(sent()).toBe(CHUNK_BYTES);
    const seen: number[] = [];
    const done = await sendUpload(api, "uploads/u1", source(bytes), (sent) => seen.push(sent));
    expect(done.complete).toBe(true);
    expect(seen[0]).toBe(CHUNK_BYTES);
    expect(received).toEqual(bytes);
  });

  it("stops when aborted", async () => {
    const { api } = server(bytes.length);
    const controller = new AbortController();
    controller.abort();
    await expect(
      sendUpload(api, "uploads/u1", source(bytes), () => {}, controller.signal),
    ).rejects.toThrow();
  });
});

describe("form defaults", () => {
  it("splits instrument ids into base and quote", () => {
    expect(splitSymbol("BTCUSDT.BINANCE")).toEqual({ base: "BTC", quote: "USDT" });
    expect(splitSymbol("EUR/USD.SIM")).toEqual({ base: "EUR", quote: "USD" });
    expect(splitSymbol("BTCUSDT-PERP.BINANCE")).toEqual({ base: "BTC", quote: "USDT" });
    expect(splitSymbol("XYZ.SIM")).toBeNull();
  });

  it("starts from the server's guess of the kind, else trades", () => {
    expect(defaultKind(DataKind.BARS)).toBe(DataKind.BARS);
    expect(defaultKind(DataKind.UNSPECIFIED)).toBe(DataKind.TRADES);
  });

  it("names files and sizes for people", () => {
    expect(displayNameOf("uploads/btc bars.csv")).toBe("btc bars");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1_234_567)).toBe("1.23 MB");
    expect(formatBytes(45_600_000)).toBe("45.6 MB");
    expect(uploadKey({ name: "a.csv", size: 3, lastModified: 7 })).toBe(
      "tapedeck.upload:a.csv:3:7",
    );
  });
});
