// A sweep's results as a table: one column per swept parameter and per statistic, sortable.
import type { SweepResult } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatDecimal } from "./decimal";
import { valueText } from "./launch";
import { stateName } from "./runs";
import { sortRows, type Direction, type SortKey } from "./sort";
import { formatNumber, formatPercent } from "./time";

export interface SweepSort {
  readonly key: string | null; // null: the service's order
  readonly direction: Direction;
}

export interface SweepColumn {
  key: string;
  title: string;
  sortKey: (r: SweepResult) => SortKey;
  text: (r: SweepResult) => string;
}

const stateText = (r: SweepResult): string => stateName(r.state);

function parameterKey(r: SweepResult, axis: string): SortKey {
  const v = r.parameters[axis]?.kind;
  if (v === undefined || v.case === undefined) return null;
  if (typeof v.value === "bigint") return Number(v.value);
  if (typeof v.value === "boolean") return String(v.value);
  return v.value;
}

function stat(
  key: string,
  title: string,
  value: (s: NonNullable<SweepResult["stats"]>) => number,
  format: (n: number) => string,
): SweepColumn {
  return {
    key,
    title,
    sortKey: (r) => (r.stats ? value(r.stats) : null),
    text: (r) => (r.stats ? format(value(r.stats)) : ""),
  };
}

export function sweepColumns(axes: readonly string[]): SweepColumn[] {
  return [
    {
      key: "rank",
      title: "Rank",
      sortKey: (r) => (r.rank > 0 ? r.rank : null),
      text: (r) => (r.rank > 0 ? String(r.rank) : ""),
    },
    ...axes.map((axis): SweepColumn => ({
      key: `p:${axis}`,
      title: axis,
      sortKey: (r) => parameterKey(r, axis),
      text: (r) => valueText(r.parameters[axis]),
    })),
    { key: "state", title: "State", sortKey: stateText, text: stateText },
    stat(
      "return",
      "Return",
      (s) => s.totalReturn,
      (n) => formatPercent(n),
    ),
    stat(
      "sharpe",
      "Sharpe",
      (s) => s.sharpeRatio,
      (n) => formatNumber(n),
    ),
    stat(
      "sortino",
      "Sortino",
      (s) => s.sortinoRatio,
      (n) => formatNumber(n),
    ),
    stat(
      "cagr",
      "CAGR",
      (s) => s.cagr,
      (n) => formatPercent(n),
    ),
    stat(
      "calmar",
      "Calmar",
      (s) => s.calmarRatio,
      (n) => formatNumber(n),
    ),
    stat(
      "dd",
      "Max DD",
      (s) => s.maxDrawdown,
      (n) => formatPercent(n),
    ),
    stat(
      "win",
      "Win rate",
      (s) => s.winRate,
      (n) => formatPercent(n),
    ),
    stat(
      "pf",
      "Profit factor",
      (s) => s.profitFactor,
      (n) => formatNumber(n),
    ),
    stat(
      "expectancy",
      "Expectancy",
      (s) => s.expectancy,
      (n) => formatNumber(n),
    ),
    stat(
      "trades",
      "Trades",
      (s) => Number(s.tradeCount),
      (n) => String(n),
    ),
    {
      key: "pnl",
      title: "PnL",
      sortKey: (r) => (r.stats ? Number(r.stats.pnl) : null),
      text: (r) => (r.stats ? formatDecimal(r.stats.pnl, { maxFractionDigits: 2 }) : ""),
    },
  ];
}

export function sortedResults(
  results: readonly SweepResult[],
  columns: readonly SweepColumn[],
  sort: SweepSort,
): readonly SweepResult[] {
  const column = columns.find((c) => c.key === sort.key);
  return column === undefined ? results : sortRows(results, column.sortKey, sort.direction);
}
