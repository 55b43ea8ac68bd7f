// What the sweep page draws besides its results table: the search's best-so-far curve, the
// heatmap of AnalyzeSweep's matrix (a cell opens its run) and the overfitting figures.
import { RankMetric, type OverfittingOdds } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { overfittingFigures } from "../../lib/overfitting";
import { formatRoute } from "../../lib/router";
import {
  curvePoints,
  higherIsBetter,
  metricName,
  metricText,
  type Heatmap,
} from "../../lib/sweeps";
import { h } from "../../ui/dom";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 120;

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  ...children: Array<SVGElement | string>
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  element.append(...children);
  return element;
}

// The best value so far after each trial as a step line, one dot per trial that had a value.
export function progressChart(
  values: readonly (number | null)[],
  metric: RankMetric,
  trials: number, // in all: the search's budget or the grid's size
): HTMLElement {
  const name = metricName(metric);
  const known = values.filter((v): v is number => v !== null);
  const caption = h(
    "p",
    { class: "hint" },
    `Best ${name} so far after each of ${values.length} finished trials`,
    higherIsBetter(metric) ? " (higher is better)." : " (lower is better).",
  );
  const figure = h("figure", {
    class: "progress-curve",
    "data-testid": "sweep-progress",
    "data-values": JSON.stringify(values),
  });
  if (known.length === 0) {
    figure.append(caption, h("div", { class: "status empty", text: "No trial has a value yet." }));
    return figure;
  }
  const points = curvePoints(values, WIDTH, HEIGHT, trials);
  const step = points.map((p, i) => (i === 0 ? `M${p.x},${p.y}` : `H${p.x}V${p.y}`)).join("");
  const low = Math.min(...known);
  const high = Math.max(...known);
  const chart = svg(
    "svg",
    {
      viewBox: `-60 -10 ${WIDTH + 80} ${HEIGHT + 30}`,
      role: "img",
      "aria-label": `Best ${name} so far by trial`,
    },
    // A flat curve (every trial since the first was no better) sits mid-height, with one label.
    ...(high > low
      ? [
          svg("text", { x: -6, y: 4, "text-anchor": "end" }, metricText(metric, high)),
          svg("text", { x: -6, y: HEIGHT, "text-anchor": "end" }, metricText(metric, low)),
        ]
      : [svg("text", { x: -6, y: HEIGHT / 2 + 4, "text-anchor": "end" }, metricText(metric, low))]),
    svg("text", { x: 0, y: HEIGHT + 16 }, "trial 1"),
    svg(
      "text",
      { x: WIDTH, y: HEIGHT + 16, "text-anchor": "end" },
      `trial ${Math.max(trials, values.length)}`,
    ),
    svg("path", { d: step, class: "line" }),
    ...points.map((p) =>
      svg(
        "circle",
        { cx: p.x, cy: p.y, r: 3, "data-trial": p.trial },
        svg("title", {}, `trial ${p.trial}: ${metricText(metric, values[p.trial - 1]!)}`),
      ),
    ),
  );
  figure.append(caption, chart);
  return figure;
}

// AnalyzeSweep's matrix: `y` down, `x` across, each cell a link to its run's playback.
export function heatmapTable(map: Heatmap): HTMLElement {
  const head = h(
    "tr",
    {},
    h("th", { text: `${map.y} ↓ · ${map.x} →` }),
    ...map.xs.map((x) => h("th", { class: "num", text: x })),
  );
  const rows = map.ys.map((y, yi) =>
    h(
      "tr",
      {},
      h("th", { class: "num", text: y }),
      ...map.xs.map((_, xi) => {
        const cell = map.cells[yi]![xi];
        if (cell === null || cell === undefined) return h("td", {});
        const id = cell.backtest.split("/").pop() ?? "";
        const td = h(
          "td",
          {
            class: "num",
            "data-run": id,
            "data-x": xi,
            "data-y": yi,
            "data-value": cell.value === null ? "" : String(cell.value),
            title: cell.rank > 0 ? `rank ${cell.rank} · ${cell.backtest}` : cell.backtest,
          },
          h("a", {
            href: formatRoute("playback", id),
            text: cell.value === null ? "—" : cell.text,
          }),
        );
        // Red (worst) through amber to green (best), pale enough to read the number on.
        if (cell.shade !== null)
          td.style.background = `hsl(${Math.round(cell.shade * 120)} 70% 50% / 0.35)`;
        return td;
      }),
    ),
  );
  return h("table", { class: "grid" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

export function overfittingPanel(odds: OverfittingOdds | undefined): HTMLElement {
  const panel = h(
    "div",
    { class: "overfitting", "data-testid": "overfitting" },
    h("h3", { text: "Overfitting odds" }),
  );
  if (odds === undefined || odds.unavailableReason !== "") {
    const text = odds?.unavailableReason || "Not analysed yet.";
    panel.append(
      h("div", { class: "status empty", "data-testid": "overfitting-unavailable", text }),
    );
    return panel;
  }
  const list = h("dl", {});
  for (const figure of overfittingFigures(odds))
    list.append(
      h("dt", { text: figure.label }),
      h(
        "dd",
        { "data-figure": figure.key },
        h("strong", { text: figure.text }),
        h("span", { class: "hint", text: ` ${figure.meaning}` }),
      ),
    );
  panel.append(list);
  return panel;
}
