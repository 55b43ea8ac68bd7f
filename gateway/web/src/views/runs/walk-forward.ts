// A walk-forward: its folds (the windows, each in-sample winner and how it did out of sample) as
// GetWalkForward reports them while it runs, and the stitched out-of-sample equity curve once
// StreamWalkForwardEquity can send it.
import { createChart, LineSeries, type IChartApi, type ISeriesApi } from "lightweight-charts";
import type { WalkForward } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { Superseding } from "../../lib/abort";
import { formatRoute } from "../../lib/router";
import { shortId, walkForwardOpened, type RunsState } from "../../lib/runs";
import type { Store } from "../../lib/store";
import { metricName } from "../../lib/sweeps";
import {
  equityPoints,
  foldRows,
  hasStitchedEquity,
  walkForwardFinal,
  walkForwardSummary,
} from "../../lib/walkforward";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";
import { chartOptions, t } from "../playback/chart-base";
import { remember } from "./route";

// How often a running walk-forward is asked again (it has no watch stream).
const POLL_MS = 2000;
const EQUITY_HEIGHT = 240;

export class WalkForwardPanel {
  private readonly summary = h("div", { "data-testid": "walk-forward-summary" });
  private readonly folds = h("div");
  private readonly chartSlot = h("div", { class: "walk-forward-equity" });
  readonly element = h(
    "section",
    { class: "panel", "data-testid": "walk-forward", hidden: true },
    h("h2", { text: "Walk-forward" }),
    this.summary,
    this.folds,
    h("h3", { text: "Stitched out-of-sample equity" }),
    this.chartSlot,
  );
  private readonly following: Superseding;
  private chart: IChartApi | null = null;

  constructor(
    private readonly store: Store<RunsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
  ) {
    this.following = new Superseding(scope.signal);
    scope.add(store.subscribe((next, previous) => this.render(next, previous)));
    scope.add(() => this.chart?.remove());
  }

  // Opens a walk-forward ("walkForwards/{id}" or the id) and follows it until it is final.
  async open(nameOrId: string): Promise<void> {
    const name = nameOrId.startsWith("walkForwards/") ? nameOrId : `walkForwards/${nameOrId}`;
    const signal = this.following.next();
    this.element.hidden = false;
    setStatus(this.summary, "loading", "Loading walk-forward…");
    this.clearEquity();
    setStatus(this.chartSlot, "info", "Drawn once every fold is final.");
    try {
      for (;;) {
        const { walkForward } = await this.clients.backtest.getWalkForward({ name }, { signal });
        if (walkForward === undefined) return;
        this.store.update((s) => walkForwardOpened(s, walkForward));
        remember("walkForward", name.split("/").pop() ?? name);
        if (walkForwardFinal(walkForward)) break;
        await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
        if (signal.aborted) return;
      }
      if (!hasStitchedEquity(this.store.state.walkForward!)) {
        const text = "No stitched curve: a fold had no in-sample winner to run out of sample.";
        setStatus(this.chartSlot, "empty", text);
        return;
      }
      await this.streamEquity(name, signal);
    } catch (error) {
      if (!signal.aborted) setStatus(this.summary, "error", describeError(error));
    }
  }

  private async streamEquity(name: string, signal: AbortSignal): Promise<void> {
    const series = this.newChart(name);
    let last = -Infinity;
    for await (const { chunk } of this.clients.backtest.streamWalkForwardEquity(
      { name },
      { signal },
    )) {
      if (chunk === undefined) continue;
      for (const point of equityPoints(chunk, last)) {
        series.update({ time: t(point.time), value: point.value });
        last = point.time;
      }
    }
    this.chartSlot.dataset.points = String(series.data().length);
    this.chart?.timeScale().fitContent();
    this.chartSlot.dataset.state = "drawn";
  }

  private clearEquity(): void {
    this.chart?.remove();
    this.chart = null;
    this.chartSlot.replaceChildren();
    delete this.chartSlot.dataset.state;
    delete this.chartSlot.dataset.points;
  }

  // A fresh chart; the series to draw the curve into.
  private newChart(name: string): ISeriesApi<"Line"> {
    this.clearEquity();
    const frame = h("div", { class: "chart", "data-testid": "walk-forward-equity" });
    frame.style.height = `${EQUITY_HEIGHT}px`;
    this.chartSlot.append(frame);
    this.chart = createChart(frame, chartOptions(EQUITY_HEIGHT, 2));
    return this.chart.addSeries(LineSeries, {
      color: "#2962ff",
      lineWidth: 2,
      priceLineVisible: false,
      title: `${shortId(name)} out of sample`,
    });
  }

  private render(state: RunsState, previous: RunsState): void {
    const walk = state.walkForward;
    if (walk === null || walk === previous.walkForward) return;
    this.summary.replaceChildren(
      h("code", { text: shortId(walk.name) }),
      ` ${walkForwardSummary(walk)} · winners by ${metricName(walk.metric)}`,
    );
    this.showFolds(walk);
  }

  private showFolds(walk: WalkForward): void {
    const metric = metricName(walk.metric);
    const head = h(
      "tr",
      {},
      ...[
        "Fold",
        "In sample",
        "Out of sample",
        "Sweep",
        "Chosen parameters",
        `IS ${metric}`,
        `OOS ${metric}`,
        "Efficiency",
        "OOS run",
      ].map((text) => h("th", { text })),
    );
    const body = h("tbody");
    for (const row of foldRows(walk)) {
      const run =
        row.phase === "succeeded"
          ? h("a", { href: formatRoute("playback", row.runId), text: row.runId.slice(0, 8) })
          : h("span", { class: row.error ? "error" : "", text: row.error || row.phase });
      body.append(
        h(
          "tr",
          {
            "data-fold": row.index,
            "data-in-sample": row.inSample.join(","),
            "data-out-of-sample": row.outOfSample.join(","),
          },
          h("td", { class: "num", text: String(row.index + 1) }),
          h("td", { text: row.windows[0] }),
          h("td", { text: row.windows[1] }),
          h(
            "td",
            {},
            h("a", {
              href: formatRoute("runs", null, { sweep: row.sweepId }),
              text: row.sweepId.slice(0, 8),
            }),
          ),
          h("td", { text: row.parameters }),
          h("td", { class: "num", text: row.inSampleText }),
          h("td", { class: "num", text: row.outOfSampleText }),
          h("td", { class: "num", text: row.efficiencyText }),
          h("td", {}, run),
        ),
      );
    }
    this.folds.replaceChildren(
      h(
        "p",
        { class: "hint" },
        "Each fold optimises on its in-sample window and runs the winner on the out-of-sample " +
          "window that follows. Efficiency is the annualised out-of-sample return over the " +
          "in-sample one: near 1 the in-sample edge held up, near 0 or below it did not.",
      ),
      h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "grid", "data-testid": "walk-forward-folds" },
          h("thead", {}, head),
          body,
        ),
      ),
    );
  }
}
