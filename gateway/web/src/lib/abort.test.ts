import { describe, expect, it } from "vitest";
import { Superseding } from "./abort";

describe("superseding requests", () => {
  it("cancels the running request when the next one starts", () => {
    const requests = new Superseding(new AbortController().signal);
    const first = requests.next();
    const second = requests.next();
    expect(first.aborted).toBe(true);
    expect(second.aborted).toBe(false);
  });

  it("cancels the running request when the parent is aborted", () => {
    const parent = new AbortController();
    const requests = new Superseding(parent.signal);
    const signal = requests.next();
    parent.abort();
    expect(signal.aborted).toBe(true);
  });

  it("cancels on demand and starts afresh afterwards", () => {
    const requests = new Superseding(new AbortController().signal);
    const signal = requests.next();
    requests.cancel();
    expect(signal.aborted).toBe(true);
    expect(requests.next().aborted).toBe(false);
  });
});
