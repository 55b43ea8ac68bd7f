// The runs with live progress: the newest page, older pages on demand, at most MAX_WATCHES runs
// followed through WatchBacktest (browsers give one origin six HTTP/1.1 connections and each watch
// holds one), the other unfinished runs polled. A progress update replaces one row, not the table.
import { BacktestState, type Backtest } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { Role } from "../../gen/tapedeck/common/v1/common_pb";
import { describeError } from "../../errors";
import { gate } from "../../lib/identity";
import { paramsOf } from "../../lib/launch";
import { formatRoute } from "../../lib/router";
import {
  datasetLabel,
  isFinal,
  needsPolling,
  newestListed,
  olderListed,
  progressView,
  runRows,
  runsFiltered,
  runsSortedBy,
  runsToWatch,
  runUpdated,
  shortId,
  stateName,
  type RunColumn,
  type RunFilter,
  type RunPhase,
  type RunsState,
} from "../../lib/runs";
import type { Store } from "../../lib/store";
import { formatNumber, formatPercent, formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, setStatus, sortableHeader, type Scope } from "../../ui/dom";

const MAX_WATCHES = 3;
const POLL_MS = 3000;
const PAGE_SIZE = 200;
// Columns fold what is secondary under what is primary (the id over its creation time, the
// strategy over its parameters, the state over its progress) so the table fits from a 1280 px
// window up without scrolling. Null key: not sortable.
const COLUMNS: ReadonlyArray<readonly [string, RunColumn | null, string]> = [
  ["Run", "created", ""],
  ["Strategy", "strategy", ""],
  ["Dataset", "dataset", ""],
  ["State", "state", ""],
  ["Return", "return", "num"],
  ["Sharpe", "sharpe", "num"],
  ["Trades", "trades", "num"],
  ["", null, ""],
];
const PHASES: readonly RunPhase[] = ["queued", "running", "succeeded", "failed", "cancelled"];

function progressBar(run: Backtest): HTMLElement {
  const eta = run.progress?.eta;
  const etaSeconds = eta === undefined ? null : Number(eta.seconds);
  const view = progressView(stateName(run.state), run.progress?.percent ?? 0, etaSeconds);
  const fill = h("span");
  fill.style.width = `${view.percent}%`;
  const bar = h(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-valuenow": view.percent.toFixed(1),
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuetext": view.label,
    },
    fill,
  );
  return h(
    "div",
    { class: "progress-wrap" },
    bar,
    h("span", { class: "progress-label", text: view.label }),
  );
}

export class RunsTable {
  private readonly status = h("div");
  private readonly older = h("button", { type: "button", text: "Load older runs", hidden: true });
  private readonly body = h("tbody");
  private readonly head = h("tr");
  private readonly filters = h("div", { class: "filters", "data-testid": "runs-filters" });
  readonly element = h(
    "section",
    { class: "panel" },
    h("h2", { text: "Runs" }),
    this.filters,
    this.status,
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "grid runs", "data-testid": "runs" },
        h("thead", {}, this.head),
        this.body,
      ),
    ),
    this.older,
  );
  private readonly watching = new Set<string>();
  private shown: Backtest[] = []; // the runs the rows show, in order

  constructor(
    private readonly store: Store<RunsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
  ) {
    this.older.addEventListener("click", () => this.loadOlder());
    // A row opens its run's playback (its links and buttons do their own thing).
    this.body.addEventListener("click", (event) => {
      const target = event.target as Element;
      if (target.closest("a, button") !== null) return;
      const row = target.closest<HTMLElement>("tr[data-run]");
      if (row?.dataset.state === "succeeded")
        window.location.hash = formatRoute("playback", row.dataset.run ?? "");
    });
    this.renderHead(store.state);
    this.renderFilters(store.state);
    scope.add(store.subscribe((next, previous) => this.render(next, previous)));
    const poll = window.setInterval(() => {
      if (needsPolling(store.state.runs, this.watching)) void this.refresh().catch(() => undefined);
    }, POLL_MS);
    scope.add(() => window.clearInterval(poll));
  }

  // The first load: says it is loading, then what went wrong if it did.
  load(): void {
    setStatus(this.status, "loading", "Loading runs…");
    void this.refresh()
      .then(() => {
        if (this.store.state.runs.size > 0) setStatus(this.status, null);
      })
      .catch((error: unknown) => {
        if (!this.scope.signal.aborted) setStatus(this.status, "error", describeError(error));
      });
  }

  // The newest page again (older pages are kept).
  async refresh(): Promise<void> {
    const response = await this.clients.backtest.listBacktests(
      { pageSize: PAGE_SIZE },
      { signal: this.scope.signal },
    );
    this.store.update((s) => newestListed(s, response.backtests, response.nextPageToken));
  }

  private loadOlder(): void {
    const token = this.store.state.olderPage;
    if (token === null || token === "") return;
    this.older.disabled = true;
    this.clients.backtest
      .listBacktests({ pageSize: PAGE_SIZE, pageToken: token }, { signal: this.scope.signal })
      .then((r) => this.store.update((s) => olderListed(s, r.backtests, r.nextPageToken)))
      .catch((error: unknown) => setStatus(this.status, "error", describeError(error)))
      .finally(() => (this.older.disabled = false));
  }

  private renderHead(state: RunsState): void {
    this.head.replaceChildren(
      ...COLUMNS.map(([title, key, cls]) => {
        if (key === null) return h("th", { text: title });
        const sort = () => this.store.update((s) => runsSortedBy(s, key));
        return sortableHeader(title, key, state.runSort, sort, cls);
      }),
    );
  }

  // Strategy, dataset and state filters, from the catalog and the runs listed.
  private renderFilters(state: RunsState): void {
    const select = (
      name: keyof RunFilter,
      label: string,
      options: ReadonlyArray<readonly [string, string]>,
    ) => {
      const element = h(
        "select",
        { name: `filter-${name}`, "aria-label": `Filter by ${label}` },
        h("option", { value: "", text: `Any ${label}` }),
        ...options.map(([value, text]) => h("option", { value, text })),
      );
      element.value = state.runFilter[name];
      element.addEventListener("change", () =>
        this.store.update((s) => runsFiltered(s, { [name]: element.value })),
      );
      return element;
    };
    this.filters.replaceChildren(
      select(
        "strategy",
        "strategy",
        state.strategies.map((s) => [s.name, s.name.replace(/^strategies\//, "")] as const),
      ),
      select(
        "dataset",
        "dataset",
        state.datasets.map((d) => [d.name, d.displayName] as const),
      ),
      select(
        "state",
        "state",
        PHASES.map((p) => [p, p] as const),
      ),
    );
  }

  private render(state: RunsState, previous: RunsState): void {
    this.older.hidden = state.olderPage === null || state.olderPage === "";
    if (state.runSort !== previous.runSort) this.renderHead(state);
    if (state.strategies !== previous.strategies || state.datasets !== previous.datasets)
      this.renderFilters(state);
    if (
      state.runs === previous.runs &&
      state.datasets === previous.datasets &&
      state.runSort === previous.runSort &&
      state.runFilter === previous.runFilter
    )
      return;
    const runs = runRows(state);
    const sameRows =
      state.datasets === previous.datasets &&
      runs.length === this.shown.length &&
      runs.every((run, i) => run.name === this.shown[i]!.name);
    if (sameRows) {
      runs.forEach((run, i) => {
        if (run !== this.shown[i]) this.body.children[i]?.replaceWith(this.row(run, state));
      });
    } else this.body.replaceChildren(...runs.map((run) => this.row(run, state)));
    this.shown = runs;
    if (state.runs.size === 0)
      setStatus(this.status, "empty", "No runs yet. Launch one with the form.");
    else if (runs.length === 0) setStatus(this.status, "empty", "No run matches the filters.");
    else if (this.status.querySelector("[data-status=empty]") !== null)
      setStatus(this.status, null);
    for (const name of runsToWatch(state.runs, this.watching, MAX_WATCHES)) this.watch(name);
  }

  private row(run: Backtest, state: RunsState): HTMLTableRowElement {
    const id = run.name.split("/").pop() ?? run.name;
    const stats = run.stats;
    const phase = stateName(run.state);
    const params = paramsOf(run.spec?.parameters ?? {});
    const failed = run.state === BacktestState.FAILED;
    const badge = h("span", { class: `state ${phase}`, text: phase });
    if (failed) badge.title = run.errorMessage;
    const created = formatTime(timestampSeconds(run.createTime), false);
    const strategy = run.spec?.strategy.replace(/^strategies\//, "") ?? "";
    const dataset = datasetLabel(state, run.spec?.dataset ?? "");
    return h(
      "tr",
      { "data-run": id, "data-state": phase, class: phase === "succeeded" ? "opens" : "" },
      h(
        "td",
        {},
        h("code", { text: shortId(run.name), title: run.name }),
        h("div", { class: "sub", "data-field": "created", text: created }),
      ),
      h("td", {}, strategy, h("div", { class: "sub params", text: params, title: params })),
      h("td", { class: "dataset", text: dataset, title: dataset }),
      h(
        "td",
        {},
        badge,
        progressBar(run),
        failed ? h("div", { class: "error", text: run.errorMessage }) : null,
      ),
      h("td", { class: "num", text: stats ? formatPercent(stats.totalReturn) : "" }),
      h("td", { class: "num", text: stats ? formatNumber(stats.sharpeRatio) : "" }),
      h("td", { class: "num", text: stats ? formatNumber(Number(stats.tradeCount), 0) : "" }),
      this.actions(run, id),
    );
  }

  private actions(run: Backtest, id: string): HTMLTableCellElement {
    const cell = h("td", {});
    if (run.state === BacktestState.SUCCEEDED)
      cell.append(h("a", { href: formatRoute("playback", id), text: "Open" }));
    if (isFinal(run.state)) return cell;
    const cancel = h("button", { type: "button", class: "link", text: "Cancel" });
    gate(cancel, Role.OPERATOR, "Cancelling a run");
    cancel.addEventListener("click", () => {
      cancel.disabled = true;
      this.clients.backtest
        .cancelBacktest({ name: run.name }, { signal: this.scope.signal })
        .then((r) => {
          const backtest = r.backtest;
          if (backtest !== undefined) this.store.update((s) => runUpdated(s, backtest));
        })
        .catch((error: unknown) => {
          cell.replaceChildren(h("span", { class: "error", text: describeError(error) }));
        });
    });
    cell.append(cancel);
    return cell;
  }

  private watch(name: string): void {
    this.watching.add(name);
    const signal = this.scope.signal;
    void (async () => {
      try {
        for await (const message of this.clients.backtest.watchBacktest({ name }, { signal })) {
          const backtest = message.backtest;
          if (backtest !== undefined) this.store.update((s) => runUpdated(s, backtest));
        }
      } catch (error) {
        if (!signal.aborted)
          setStatus(this.status, "error", `Watching ${shortId(name)}: ${describeError(error)}`);
      } finally {
        this.watching.delete(name);
        // Hand the connection to another unfinished run.
        if (!signal.aborted)
          for (const next of runsToWatch(this.store.state.runs, this.watching, MAX_WATCHES))
            this.watch(next);
      }
    })();
  }
}
