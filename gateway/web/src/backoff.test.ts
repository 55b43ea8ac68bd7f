import { describe, expect, it } from "vitest";
import { CAP_MS, reconnectDelay } from "./backoff";

describe("reconnectDelay", () => {
  it("starts at one second and grows by half each failure", () => {
    expect(reconnectDelay(1)).toBe(1000);
    expect(reconnectDelay(2)).toBe(1500);
    expect(reconnectDelay(3)).toBe(2250);
  });
  it("never exceeds thirty seconds", () => {
    expect(reconnectDelay(50)).toBe(CAP_MS);
  });
  it("does not wait before the first attempt", () => {
    expect(reconnectDelay(0)).toBe(0);
  });
});
