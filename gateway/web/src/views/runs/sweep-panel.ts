// Sweeps: the recent ones as buttons, and the open sweep's results in a sortable table that fills
// in through WatchSweep while it runs.
import {
  BacktestState,
  RankMetric,
  SweepState,
  type Sweep,
  type SweepResult,
} from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { formatRoute } from "../../lib/router";
import {
  heatmapMetricChosen,
  shortId,
  sweepOpened,
  sweepResultArrived,
  sweepsListed,
  sweepSortedBy,
  type RunsState,
} from "../../lib/runs";
import type { Store } from "../../lib/store";
import {
  HEATMAP_METRICS,
  liveRanks,
  sortedResults,
  sweepColumns,
  sweepHeatmap,
  withRunStates,
} from "../../lib/sweeps";
import type { Clients } from "../../transport";
import { h, setStatus, sortableHeader, type Scope } from "../../ui/dom";

function lower(name: string | undefined): string {
  return (name ?? "").toLowerCase().replace(/_/g, " ");
}

export class SweepPanel {
  private readonly status = h("div");
  private readonly list = h("div", { class: "toolbar" });
  private readonly detail = h("div");
  readonly element = h(
    "section",
    { class: "panel", "data-testid": "sweeps" },
    h("h2", { text: "Sweeps" }),
    this.status,
    this.list,
    this.detail,
  );

  // `finished` runs when an open sweep stops running (its runs are final now).
  constructor(
    private readonly store: Store<RunsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
    private readonly finished: () => void,
  ) {
    scope.add(store.subscribe((next, previous) => this.render(next, previous)));
  }

  // The recent sweeps; `open` opens the one named `select`, if any.
  async load(select: string | null, open = true): Promise<void> {
    try {
      const request = { pageSize: 50 };
      const { sweeps } = await this.clients.backtest.listSweeps(request, {
        signal: this.scope.signal,
      });
      this.store.update((s) => sweepsListed(s, sweeps));
      const text = "No sweeps yet. Switch the form to Sweep to run a parameter grid.";
      setStatus(this.status, sweeps.length === 0 ? "empty" : null, text);
      if (select && open)
        void this.open(select.startsWith("sweeps/") ? select : `sweeps/${select}`);
    } catch (error) {
      if (!this.scope.signal.aborted) setStatus(this.status, "error", describeError(error));
    }
  }

  private async open(name: string): Promise<void> {
    this.detail.replaceChildren(h("div", { class: "status loading", text: "Loading sweep…" }));
    const signal = this.scope.signal;
    try {
      const { sweep } = await this.clients.backtest.getSweep({ name }, { signal });
      if (sweep === undefined) return;
      this.store.update((s) => sweepOpened(s, sweep));
      // A link to this page opens the same sweep.
      const id = name.split("/").pop() ?? name;
      history.replaceState(null, "", formatRoute("runs", null, { sweep: id }));
      if (sweep.state !== SweepState.RUNNING) return;
      for await (const message of this.clients.backtest.watchSweep({ name }, { signal })) {
        if (this.store.state.sweep?.name !== name) break;
        const event = message.event;
        if (event.case === "result") this.store.update((s) => sweepResultArrived(s, event.value));
        else if (event.case === "sweep") this.store.update((s) => sweepOpened(s, event.value));
      }
      void this.load(null, false);
      this.finished();
    } catch (error) {
      if (signal.aborted) return;
      const text = describeError(error);
      this.detail.replaceChildren(h("div", { class: "status error", role: "alert", text }));
    }
  }

  private render(state: RunsState, previous: RunsState): void {
    if (state.sweeps !== previous.sweeps)
      this.list.replaceChildren(
        ...state.sweeps.map((s) => {
          const progress = `${s.finishedRuns}/${s.totalRuns}`;
          const text = `${shortId(s.name)} · ${progress} · ${lower(SweepState[s.state])}`;
          const button = h("button", { type: "button", text });
          button.addEventListener("click", () => void this.open(s.name));
          return button;
        }),
      );
    const sweep = state.sweep;
    const same =
      sweep === previous.sweep &&
      state.sweepSort === previous.sweepSort &&
      state.runs === previous.runs &&
      state.heatmapMetric === previous.heatmapMetric;
    if (sweep === null || same) return;
    this.showSweep(sweep, state);
    // Keyboard sorting keeps the focus on the header that was used.
    if (state.sweepSort !== previous.sweepSort && state.sweepSort.key !== null)
      this.detail.querySelector<HTMLElement>(`th[data-key="${state.sweepSort.key}"]`)?.focus();
  }

  private showSweep(sweep: Sweep, state: RunsState): void {
    const sort = state.sweepSort;
    const results = withRunStates(sweep.results, state.runs);
    const columns = sweepColumns(
      sweep.axes.map((a) => a.name),
      liveRanks(results, sweep.metric),
    );
    const head = h("tr", {});
    for (const { key, title } of columns) {
      const sortBy = () => this.store.update((s) => sweepSortedBy(s, key));
      head.append(sortableHeader(title, key, sort, sortBy));
    }
    head.append(h("th", {}));
    const body = h("tbody");
    for (const result of sortedResults(results, columns, sort)) {
      const id = result.backtest.split("/").pop() ?? "";
      const failed = result.state === BacktestState.FAILED;
      const tr = h("tr", { "data-run": id, class: failed ? "mismatch" : "" });
      for (const column of columns) tr.append(h("td", { class: "num", text: column.text(result) }));
      const open =
        result.state === BacktestState.SUCCEEDED
          ? h("a", { href: formatRoute("playback", id), text: "Open" })
          : result.errorMessage
            ? h("span", { class: "error", text: result.errorMessage })
            : "";
      tr.append(h("td", {}, open));
      body.append(tr);
    }
    const metric = lower(RankMetric[sweep.metric]);
    const phase = lower(SweepState[sweep.state]);
    const table = h(
      "table",
      { class: "grid", "data-testid": "sweep-results" },
      h("thead", {}, head),
      body,
    );
    this.detail.replaceChildren(
      h(
        "p",
        {},
        h("code", { text: shortId(sweep.name) }),
        ` ${phase} · ${sweep.finishedRuns} of ${sweep.totalRuns} runs finished`,
        ` · ranked by ${metric || "sharpe ratio"}`,
      ),
      sweep.results.length === 0
        ? h("div", { class: "status empty", text: "No results yet; they appear as runs finish." })
        : h("div", { class: "table-scroll" }, table),
      this.heatmap(sweep, results, state.heatmapMetric),
    );
  }

  // A two-parameter sweep's grid coloured by the chosen statistic; a cell opens its run.
  private heatmap(sweep: Sweep, results: readonly SweepResult[], metric: string): HTMLElement | "" {
    const map = sweepHeatmap(
      sweep.axes.map((a) => a.name),
      results,
      metric,
    );
    if (map === null) return "";
    const choose = h(
      "select",
      { name: "heatmap-metric", "aria-label": "Heatmap metric" },
      ...HEATMAP_METRICS.map(([key, title]) => h("option", { value: key, text: title })),
    );
    choose.value = metric;
    choose.addEventListener("change", () =>
      this.store.update((s) => heatmapMetricChosen(s, choose.value)),
    );
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
            { class: "num", "data-run": id, title: cell.backtest },
            cell.succeeded ? h("a", { href: formatRoute("playback", id), text: cell.text }) : "…",
          );
          // Red (worst) through amber to green (best), pale enough to read the number on.
          if (cell.shade !== null)
            td.style.background = `hsl(${Math.round(cell.shade * 120)} 70% 50% / 0.35)`;
          return td;
        }),
      ),
    );
    return h(
      "div",
      { class: "heatmap", "data-testid": "sweep-heatmap" },
      h("label", {}, "Heatmap of ", choose),
      h("table", { class: "grid" }, h("thead", {}, head), h("tbody", {}, ...rows)),
    );
  }
}
