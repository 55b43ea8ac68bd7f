import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { describeError } from "./errors";

describe("describeError", () => {
  it("says what a person can do", () => {
    expect(describeError(new ConnectError("x", Code.Unimplemented))).toBe(
      "Not available yet in this version of the service.",
    );
    expect(describeError(new ConnectError("network error", Code.Unknown))).toBe("Connection lost.");
    expect(
      describeError(new ConnectError("datasets/nope does not exist (spec.dataset)", Code.NotFound)),
    ).toBe("NotFound: datasets/nope does not exist (spec.dataset)");
    expect(describeError(new Error("plain"))).toBe("plain");
  });
});
