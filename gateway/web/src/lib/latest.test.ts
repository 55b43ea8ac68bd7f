import { describe, expect, it } from "vitest";
import { Latest } from "./latest";

describe("Latest", () => {
  it("skips keys superseded while a request was in flight and shows only the newest", async () => {
    const asked: number[] = [];
    const shown: number[] = [];
    const resolvers: Array<() => void> = [];
    const latest = new Latest<number, number>(
      (key) => {
        asked.push(key);
        return new Promise((resolve) => resolvers.push(() => resolve(key * 10)));
      },
      (key, result) => {
        if (result.ok) shown.push(result.value);
      },
    );
    latest.request(1);
    latest.request(2);
    latest.request(3);
    resolvers.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    resolvers.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    expect(asked).toEqual([1, 3]);
    expect(shown).toEqual([30]);
  });
});
