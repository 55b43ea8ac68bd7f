// Sweeps: the recent ones as buttons, and the open sweep: its best-so-far curve and results table,
// which fill in through WatchSweep while it runs, and AnalyzeSweep's heatmap and overfitting odds.
import {
  BacktestState,
  SweepState,
  type AnalyzeSweepResponse,
  type Sweep,
  type SweepResult,
} from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { Superseding } from "../../lib/abort";
import { Latest } from "../../lib/latest";
import {
  analysisMetricChosen,
  heatmapAxisChosen,
  heatmapScoreChosen,
  shortId,
  sweepAnalyzed,
  sweepLoaded,
  sweepOpened,
  sweepsListed,
  sweepSortedBy,
  trialFinished,
  type RunsState,
} from "../../lib/runs";
import type { Store } from "../../lib/store";
import {
  heatmapGrid,
  liveRanks,
  METRICS,
  metricName,
  sortedResults,
  sweepColumns,
  sweepKind,
  withRunStates,
  type HeatmapScore,
} from "../../lib/sweeps";
import { Throttle } from "../../lib/throttle";
import { formatRoute } from "../../lib/router";
import type { Clients } from "../../transport";
import { h, setStatus, sortableHeader, type Scope } from "../../ui/dom";
import { heatmapTable, overfittingPanel, progressChart } from "./sweep-analysis";
import { remember } from "./route";

// While a sweep runs, its analysis is asked again at most this often.
const ANALYSIS_INTERVAL_MS = 2000;
// Results arriving together (a finished sweep replays them all) are applied at once.
const BATCH_MS = 50;

function lower(name: string | undefined): string {
  return (name ?? "").toLowerCase().replace(/_/g, " ");
}

export class SweepPanel {
  private readonly status = h("div");
  private readonly list = h("div", { class: "toolbar" });
  private readonly summary = h("div", { "data-testid": "sweep-summary" });
  private readonly progress = h("div");
  private readonly results = h("div");
  private readonly analysis = h("div", { class: "sweep-analysis" });
  private readonly detail = h(
    "div",
    { hidden: true },
    this.summary,
    this.progress,
    this.results,
    this.analysis,
  );
  readonly element = h(
    "section",
    { class: "panel", "data-testid": "sweeps" },
    h("h2", { text: "Sweeps" }),
    this.status,
    this.list,
    this.detail,
  );
  private readonly watching: Superseding;
  // Keyed by the request as JSON: the newest asked is the one shown.
  private readonly analyzer: Latest<string, AnalyzeSweepResponse>;
  private readonly reanalyze = new Throttle(ANALYSIS_INTERVAL_MS, () => this.analyze());
  private pending: Array<[SweepResult, SweepResult | undefined]> = [];
  private flushTimer = 0;

  // `finished` runs when an open sweep stops running (its runs are final now).
  constructor(
    private readonly store: Store<RunsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
    private readonly finished: () => void,
  ) {
    this.watching = new Superseding(scope.signal);
    this.analyzer = new Latest(
      (key) => clients.backtest.analyzeSweep(JSON.parse(key), { signal: scope.signal }),
      (key, result) => {
        const { name } = JSON.parse(key) as { name: string };
        if (result.ok) this.store.update((s) => sweepAnalyzed(s, name, result.value));
        else if (!scope.signal.aborted)
          setStatus(this.analysis, "error", describeError(result.error));
      },
    );
    scope.add(store.subscribe((next, previous) => this.render(next, previous)));
    scope.add(() => {
      this.reanalyze.cancel();
      window.clearTimeout(this.flushTimer);
    });
  }

  // The recent sweeps; `open` opens the one named `select`, if any.
  async load(select: string | null, open = true): Promise<void> {
    try {
      const request = { pageSize: 50 };
      const { sweeps } = await this.clients.backtest.listSweeps(request, {
        signal: this.scope.signal,
      });
      this.store.update((s) => sweepsListed(s, sweeps));
      const text = "No sweeps yet. Switch the form to Sweep to run a grid or a search.";
      setStatus(this.status, sweeps.length === 0 ? "empty" : null, text);
      if (select && open)
        void this.open(select.startsWith("sweeps/") ? select : `sweeps/${select}`);
    } catch (error) {
      if (!this.scope.signal.aborted) setStatus(this.status, "error", describeError(error));
    }
  }

  // Opens a sweep: WatchSweep replays its finished trials (with the best so far after each) and
  // follows it until every run is final.
  private async open(name: string): Promise<void> {
    const signal = this.watching.next();
    this.detail.hidden = false;
    setStatus(this.summary, "loading", "Loading sweep…");
    try {
      const { sweep } = await this.clients.backtest.getSweep({ name }, { signal });
      if (sweep === undefined) return;
      this.pending = [];
      this.store.update((s) => sweepLoaded(s, sweep));
      remember("sweep", name.split("/").pop() ?? name);
      this.analyze();
      const running = sweep.state === SweepState.RUNNING;
      for await (const message of this.clients.backtest.watchSweep({ name }, { signal })) {
        const event = message.event;
        if (event.case === "result") {
          this.pending.push([event.value, message.bestSoFar]);
          if (this.flushTimer === 0)
            this.flushTimer = window.setTimeout(() => this.flush(), BATCH_MS);
        } else if (event.case === "sweep") {
          this.flush();
          this.store.update((s) => sweepOpened(s, event.value));
          this.analyze();
        }
      }
      if (running) {
        void this.load(null, false);
        this.finished();
      }
    } catch (error) {
      if (signal.aborted) return;
      setStatus(this.summary, "error", describeError(error));
    }
  }

  private flush(): void {
    window.clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    this.store.update((s) => batch.reduce((state, [r, best]) => trialFinished(state, r, best), s));
    this.reanalyze.trigger();
  }

  private analyze(): void {
    const { sweep, analysisMetric } = this.store.state;
    if (sweep === null) return;
    const [xParameter = "", yParameter = ""] = this.store.state.heatmapAxes ?? [];
    const request = { name: sweep.name, metric: analysisMetric, xParameter, yParameter };
    this.analyzer.request(JSON.stringify(request));
  }

  private render(state: RunsState, previous: RunsState): void {
    if (state.sweeps !== previous.sweeps)
      this.list.replaceChildren(
        ...state.sweeps.map((s) => {
          const progress = `${s.finishedRuns}/${s.totalRuns}`;
          const kind = s.search === undefined ? "grid" : "search";
          const text = `${shortId(s.name)} · ${kind} · ${progress} · ${lower(SweepState[s.state])}`;
          const button = h("button", { type: "button", text });
          button.addEventListener("click", () => void this.open(s.name));
          return button;
        }),
      );
    const sweep = state.sweep;
    if (sweep === null) return;
    if (
      sweep !== previous.sweep ||
      state.sweepSort !== previous.sweepSort ||
      state.runs !== previous.runs
    ) {
      this.showSummary(sweep);
      this.showResults(sweep, state);
      // Keyboard sorting keeps the focus on the header that was used.
      if (state.sweepSort !== previous.sweepSort && state.sweepSort.key !== null)
        this.results.querySelector<HTMLElement>(`th[data-key="${state.sweepSort.key}"]`)?.focus();
    }
    if (state.bestSoFar !== previous.bestSoFar || sweep !== previous.sweep)
      this.progress.replaceChildren(progressChart(state.bestSoFar, sweep.metric, sweep.totalRuns));
    if (
      state.analysisMetric !== previous.analysisMetric ||
      state.heatmapAxes !== previous.heatmapAxes
    )
      this.analyze();
    if (
      state.analysis !== previous.analysis ||
      state.heatmapScore !== previous.heatmapScore ||
      state.analysisMetric !== previous.analysisMetric ||
      state.heatmapAxes !== previous.heatmapAxes ||
      sweep.name !== previous.sweep?.name
    )
      this.showAnalysis(state);
  }

  private showSummary(sweep: Sweep): void {
    const phase = lower(SweepState[sweep.state]);
    this.summary.replaceChildren(
      h("code", { text: shortId(sweep.name) }),
      ` ${sweepKind(sweep.search)} · ${phase} · ${sweep.finishedRuns} of ${sweep.totalRuns} runs finished`,
      ` · ranked by ${metricName(sweep.metric)}`,
    );
  }

  private showResults(sweep: Sweep, state: RunsState): void {
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
    const table = h(
      "table",
      { class: "grid", "data-testid": "sweep-results" },
      h("thead", {}, head),
      body,
    );
    this.results.replaceChildren(
      sweep.results.length === 0
        ? h("div", { class: "status empty", text: "No results yet; they appear as runs finish." })
        : h("div", { class: "table-scroll" }, table),
    );
  }

  // The metric (or its neighbourhood score) over two parameters, and the overfitting figures.
  private showAnalysis(state: RunsState): void {
    const chooseMetric = h(
      "select",
      { name: "heatmap-metric", "aria-label": "Heatmap metric" },
      ...METRICS.map((m) => h("option", { value: String(m), text: metricName(m) })),
    );
    chooseMetric.value = String(state.analysisMetric);
    chooseMetric.addEventListener("change", () =>
      this.store.update((s) => analysisMetricChosen(s, Number(chooseMetric.value))),
    );
    const chooseScore = h(
      "select",
      { name: "heatmap-score", "aria-label": "Heatmap score" },
      h("option", { value: "value", text: "its value" }),
      h("option", { value: "neighbourhood", text: "its neighbourhood score" }),
    );
    chooseScore.value = state.heatmapScore;
    chooseScore.addEventListener("change", () =>
      this.store.update((s) => heatmapScoreChosen(s, chooseScore.value as HeatmapScore)),
    );
    const toolbar = h(
      "div",
      { class: "toolbar" },
      h("label", {}, "Heatmap of ", chooseMetric),
      " ",
      h("label", {}, "showing ", chooseScore),
    );
    // With more than two parameters, which two the map spreads out (the best over the others).
    const names = state.sweep?.axes.map((a) => a.name) ?? [];
    if (names.length > 2) {
      const [x, y] = state.heatmapAxes ?? names;
      for (const [axis, title, value] of [
        ["x", "across", x],
        ["y", "down", y],
      ] as const) {
        const choose = h(
          "select",
          { name: `heatmap-${axis}`, "aria-label": `Heatmap ${title}` },
          ...names.map((n) => h("option", { value: n, text: n })),
        );
        choose.value = value ?? "";
        choose.addEventListener("change", () =>
          this.store.update((s) => heatmapAxisChosen(s, axis, choose.value)),
        );
        toolbar.append(" ", h("label", {}, `${title} `, choose));
      }
    }
    const analysis = state.analysis;
    const map =
      analysis?.heatmap === undefined
        ? null
        : heatmapGrid(analysis.heatmap, analysis.metric, state.heatmapScore);
    const explain =
      state.heatmapScore === "neighbourhood"
        ? "Each cell averages the metric over the points one step around it: a stable plateau " +
          "scores higher than an isolated spike."
        : "Each cell is one run's metric; with more than two parameters, the best over the others.";
    const heatmap =
      analysis === null
        ? h("div", { class: "status loading", text: "Analysing…" })
        : map === null
          ? h("div", {
              class: "status empty",
              text: "A heatmap needs a sweep over two parameters.",
            })
          : h(
              "div",
              { class: "heatmap", "data-testid": "sweep-heatmap", "data-metric": analysis.metric },
              h("p", { class: "hint", text: explain }),
              h("div", { class: "table-scroll" }, heatmapTable(map)),
            );
    this.analysis.replaceChildren(toolbar, heatmap, overfittingPanel(analysis?.odds));
  }
}
