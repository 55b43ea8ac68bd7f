import { describe, expect, it } from "vitest";
import { TimeLink, type TimeRange } from "./timelink";

// Two charts whose range changes are reported back through the link, as lightweight-charts does.
function linkedCharts() {
  const link = new TimeLink();
  const moves: string[] = [];
  const chart = (name: string, other: () => { setVisibleRange(r: TimeRange): void }) => ({
    setVisibleRange(range: TimeRange) {
      moves.push(`${name} ${range.from}-${range.to}`);
      link.follow(range, other()); // the chart reports its new range
    },
  });
  const price = chart("price", () => equity);
  const equity = chart("equity", () => price);
  return { link, price, equity, moves };
}

describe("time link", () => {
  it("moves the other chart once, without echoing back", () => {
    const { link, equity, moves } = linkedCharts();
    link.follow({ from: 1, to: 2 }, equity);
    expect(moves).toEqual(["equity 1-2"]);
  });

  it("does not follow changes made quietly, nor a missing range", () => {
    const { link, price, equity, moves } = linkedCharts();
    link.quietly(() => price.setVisibleRange({ from: 3, to: 4 }));
    link.follow(null, equity);
    expect(moves).toEqual(["price 3-4"]);
    link.follow({ from: 5, to: 6 }, equity);
    expect(moves).toEqual(["price 3-4", "equity 5-6"]);
  });
});
