import { describe, expect, it } from "vitest";
import { formatRoute, parseRoute } from "./router";

describe("routes", () => {
  it("defaults to runs and falls back to overview for unknown views", () => {
    expect(parseRoute("").view).toBe("runs");
    expect(parseRoute("#/").view).toBe("runs");
    expect(parseRoute("#/nope").view).toBe("overview");
  });
  it("round-trips a view, an id and parameters", () => {
    const hash = formatRoute("playback", "abc123", { compare: "def", empty: "" });
    expect(hash).toBe("#/playback/abc123?compare=def");
    const route = parseRoute(hash);
    expect(route.view).toBe("playback");
    expect(route.id).toBe("abc123");
    expect(route.params.get("compare")).toBe("def");
  });
  it("keeps a session's run id (trader:instance) and its drift parameters", () => {
    const hash = formatRoute("sessions", "TRADER-007:7d1b", { backtest: "r1", gap: "300" });
    const route = parseRoute(hash);
    expect(route.view).toBe("sessions");
    expect(route.id).toBe("TRADER-007:7d1b");
    expect(route.params.get("backtest")).toBe("r1");
    expect(route.params.get("gap")).toBe("300");
  });
  it("never keeps a token in route parameters", () => {
    expect(parseRoute("#/live?token=x&type=2").params.toString()).toBe("type=2");
  });
});
