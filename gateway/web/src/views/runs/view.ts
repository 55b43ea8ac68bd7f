// Runs: the list with live progress, a launch form (run, sweep or walk-forward) built from the
// strategies' parameter specs and the datasets, the open sweep (its progress, results, heatmap and
// overfitting odds), the recent walk-forwards and the open one, and a way into playback for each run.
// The view composes its panels around one RunsState (lib/runs.ts).
import type { Route } from "../../lib/router";
import { catalogLoaded, initialRuns, runUpdated, type RunsState } from "../../lib/runs";
import { Store } from "../../lib/store";
import type { Clients } from "../../transport";
import { h, type Scope } from "../../ui/dom";
import { LaunchForm } from "./launch-form";
import { RunsTable } from "./runs-table";
import { SweepPanel } from "./sweep-panel";
import { WalkForwardPanel } from "./walk-forward";
import { WalkForwardList } from "./walk-forward-list";

const CATALOG_PAGE = 1000;

export function renderRuns(root: HTMLElement, clients: Clients, route: Route, scope: Scope): void {
  const store = new Store<RunsState>(initialRuns());
  const table = new RunsTable(store, clients, scope);
  const refresh = () => void table.refresh().catch(() => undefined);
  const sweeps = new SweepPanel(store, clients, scope, refresh);
  const walkForwards = new WalkForwardList(store, clients, scope);
  const walkForward = new WalkForwardPanel(store, clients, scope);
  const form = new LaunchForm(store, clients, scope, {
    run: (backtest) => store.update((s) => runUpdated(s, backtest)),
    sweep: (name) => {
      void sweeps.load(name);
      refresh();
    },
    walkForward: (name) => {
      void walkForward.open(name);
      void walkForwards.load();
      refresh();
    },
  });

  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Backtest runs" })),
    h("div", { class: "layout-2" }, form.element, table.element),
    sweeps.element,
    walkForwards.element,
    walkForward.element,
  );

  const signal = scope.signal;
  void Promise.all([
    clients.backtest.listDatasets({ pageSize: CATALOG_PAGE }, { signal }),
    clients.backtest.listStrategies({ pageSize: CATALOG_PAGE }, { signal }),
  ])
    .then(([d, s]) => store.update((state) => catalogLoaded(state, d.datasets, s.strategies)))
    .catch((error: unknown) => {
      if (!signal.aborted) form.showError(error);
    });
  table.load();
  void sweeps.load(route.params.get("sweep"));
  void walkForwards.load();
  const walk = route.params.get("walkForward");
  if (walk) void walkForward.open(walk);
}
