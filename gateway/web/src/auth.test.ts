import { describe, expect, it } from "vitest";
import { tokenFromHash } from "./auth";

describe("tokenFromHash", () => {
  it("reads the launcher's #token= link", () => {
    expect(tokenFromHash("#token=abc123")).toBe("abc123");
  });
  it("ignores an empty or absent token", () => {
    expect(tokenFromHash("#token=")).toBeNull();
    expect(tokenFromHash("")).toBeNull();
    expect(tokenFromHash("#/runs")).toBeNull();
  });
});
