// The launch form: a run, a sweep (a grid or a search) or a walk-forward, built from
// ListStrategies' parameter specs (bounds checked as the user types) and ListDatasets. The inputs
// live in the form; the parsing is lib/launch.ts.
import {
  AccountType,
  BacktestState,
  DataKind,
  RankMetric,
  SearchAlgorithm,
  type Backtest,
  type Dataset,
  type Strategy,
} from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { isDecimal } from "../../lib/decimal";
import {
  collectParams,
  launchSpec,
  searchSpec,
  toSpec,
  valueText,
  walkForwardSpec,
  type Collected,
} from "../../lib/launch";
import { gridSize, type ParamSpec } from "../../lib/params";
import { Role } from "../../gen/tapedeck/common/v1/common_pb";
import { gate } from "../../lib/identity";
import { formatRoute } from "../../lib/router";
import { shortId, stateName, type RunsState } from "../../lib/runs";
import type { Store } from "../../lib/store";
import { METRICS, metricName } from "../../lib/sweeps";
import { formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";

const MAX_GRID = 10_000;
const INTERVALS = [
  ["60", "1 minute"],
  ["300", "5 minutes"],
  ["900", "15 minutes"],
  ["3600", "1 hour"],
];
const SAMPLERS: Array<[SearchAlgorithm, string]> = [
  [SearchAlgorithm.GRID, "every point (grid)"],
  [SearchAlgorithm.TPE, "TPE search (Bayesian)"],
  [SearchAlgorithm.RANDOM, "random search"],
  [SearchAlgorithm.NSGA2, "NSGA-II search (two objectives)"],
];

export interface Launched {
  run: (backtest: Backtest) => void;
  sweep: (name: string) => void;
  walkForward: (name: string) => void;
}

interface ParamInput {
  spec: ParamSpec;
  input: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
}

function datasetText(d: Dataset): string {
  const kind = (DataKind[d.kind] ?? "").toLowerCase();
  const rows = `${d.rowCount.toLocaleString()} rows`;
  return `${d.displayName} · ${d.instrument?.instrumentId ?? ""} · ${kind} · ${rows}`;
}

function localInput(seconds: number | null): string {
  return seconds === null ? "" : formatTime(seconds, false).replace(" ", "T");
}

export class LaunchForm {
  readonly element = h(
    "section",
    { class: "panel" },
    h("h2", { text: "Launch" }),
    h("div", {}, "Loading strategies and datasets…"),
  );
  private readonly form = h("form", { class: "launch", "data-testid": "launch" });
  private readonly mode = h(
    "select",
    { name: "mode", "aria-label": "Mode" },
    h("option", { value: "run", text: "Single run" }),
    h("option", { value: "sweep", text: "Sweep" }),
    h("option", { value: "walkforward", text: "Walk-forward" }),
  );
  private readonly dataset = h("select", { name: "dataset", required: true });
  private readonly strategy = h("select", { name: "strategy", required: true });
  private readonly description = h("div", { class: "hint full" });
  private readonly paramsSlot = h("div", { class: "full launch-params" });
  private readonly balance = h("input", {
    name: "balance",
    value: "100000",
    inputmode: "decimal",
    "aria-label": "Starting balance",
  });
  private readonly currency = h("input", { name: "currency", size: 6, "aria-label": "Currency" });
  private readonly interval = h(
    "select",
    { name: "interval" },
    ...INTERVALS.map(([value, text]) => h("option", { value, text })),
  );
  private readonly account = h(
    "select",
    { name: "account" },
    h("option", { value: String(AccountType.CASH), text: "cash" }),
    h("option", { value: String(AccountType.MARGIN), text: "margin" }),
  );
  private readonly from = h("input", {
    type: "datetime-local",
    name: "from",
    step: 60,
    "aria-label": "From (UTC)",
  });
  private readonly to = h("input", {
    type: "datetime-local",
    name: "to",
    step: 60,
    "aria-label": "To (UTC)",
  });
  private readonly metric = h(
    "select",
    { name: "metric" },
    ...METRICS.map((m) => h("option", { value: String(m), text: metricName(m) })),
  );
  private readonly sampler = h(
    "select",
    { name: "sampler", "aria-label": "Points" },
    ...SAMPLERS.map(([value, text]) => h("option", { value: String(value), text })),
  );
  private readonly against = h(
    "select",
    { name: "against", "aria-label": "Against" },
    ...METRICS.map((m) => h("option", { value: String(m), text: metricName(m) })),
  );
  private readonly budget = h("input", { name: "budget", value: "30", inputmode: "numeric" });
  private readonly parallel = h("input", { name: "parallel", value: "2", inputmode: "numeric" });
  private readonly seed = h("input", { name: "seed", value: "0", inputmode: "numeric" });
  private readonly folds = h("input", { name: "folds", value: "4", inputmode: "numeric" });
  private readonly anchored = h("input", { type: "checkbox", name: "anchored" });
  private readonly inSample = h("input", { name: "in-sample", value: "24", inputmode: "decimal" });
  private readonly outOfSample = h("input", {
    name: "out-of-sample",
    value: "8",
    inputmode: "decimal",
  });
  private readonly optionsError = h("div", { class: "full field-error" });
  // Shown for a sweep or a walk-forward.
  private readonly sweepRows = [
    h("label", { text: "Rank by" }),
    this.metric,
    h("label", { text: "Points" }),
    this.sampler,
  ];
  // NSGA-II optimises the ranked metric and this one together.
  private readonly againstRows = [h("label", { text: "Against" }), this.against];
  private readonly searchRows = [
    h("label", { text: "Trial budget" }),
    this.budget,
    h("label", { text: "Parallel trials" }),
    this.parallel,
    h("label", { text: "Seed" }),
    this.seed,
  ];
  private readonly walkRows = [
    h("label", { text: "Folds" }),
    this.folds,
    h("label", { text: "In-sample hours" }),
    h("div", {}, this.inSample, " ", h("label", {}, this.anchored, " anchored")),
    h("label", { text: "Out-of-sample hours" }),
    this.outOfSample,
  ];
  private readonly grid = h("div", { class: "hint", "data-testid": "grid-size" });
  private readonly submit = h("button", { type: "submit", class: "primary", text: "Launch run" });
  private readonly status = h("div", { class: "full", "data-testid": "launch-status" });
  // Why the signed-in role cannot launch, under the button.
  private readonly refused = h("div", { class: "full hint", "data-testid": "launch-refused" });
  private inputs: ParamInput[] = []; // of the chosen strategy
  private followed: { name: string; cached: boolean } | null = null; // the run launched last

  constructor(
    private readonly store: Store<RunsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
    private readonly launched: Launched,
  ) {
    this.paramsSlot.style.display = "contents";
    // Total return is defined for every finished run; Sharpe and Sortino need five daily returns.
    this.metric.value = String(RankMetric.TOTAL_RETURN);
    this.against.value = String(RankMetric.MAX_DRAWDOWN);
    // The status of the run launched last follows its state as the table learns it.
    scope.add(
      store.subscribe((next, previous) => {
        const followed = this.followed;
        if (followed === null || next.runs === previous.runs) return;
        const run = next.runs.get(followed.name);
        if (run !== undefined && run !== previous.runs.get(followed.name)) this.showRun(run);
      }),
    );
    this.dataset.addEventListener("change", () => this.onDataset());
    this.strategy.addEventListener("change", () => this.onStrategy());
    this.mode.addEventListener("change", () => this.onStrategy());
    this.sampler.addEventListener("change", () => {
      this.showSearchRows();
      this.validate();
    });
    this.metric.addEventListener("change", () => this.validate());
    this.against.addEventListener("change", () => this.validate());
    for (const input of [this.budget, this.parallel, this.seed, this.folds, this.inSample])
      input.addEventListener("input", () => this.validate());
    this.outOfSample.addEventListener("input", () => this.validate());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.launch();
    });
    this.form.append(
      h("label", { text: "Mode" }),
      this.mode,
      h("label", { text: "Dataset" }),
      this.dataset,
      h("label", { text: "Strategy" }),
      this.strategy,
      this.description,
      this.paramsSlot,
      h("label", { text: "Starting balance" }),
      h("div", {}, this.balance, " ", this.currency),
      h("label", { text: "Account" }),
      this.account,
      h("label", { text: "Bar interval" }),
      this.interval,
      h("label", { text: "From (UTC)" }),
      this.from,
      h("label", { text: "To (UTC)" }),
      this.to,
      ...this.sweepRows,
      ...this.againstRows,
      ...this.searchRows,
      ...this.walkRows,
      this.optionsError,
      h("span"),
      this.grid,
      h("span"),
      this.submit,
      this.refused,
      this.status,
    );
    scope.add(
      store.subscribe((next, previous) => {
        if (next.datasets !== previous.datasets || next.strategies !== previous.strategies)
          this.show(next.datasets, next.strategies);
      }),
    );
  }

  showError(error: unknown): void {
    const text = describeError(error);
    this.element.replaceChildren(
      h("h2", { text: "Launch" }),
      h("div", { class: "status error", role: "alert", text }),
    );
  }

  // A sweep or a walk-forward: parameters take several values.
  private get sweep(): boolean {
    return this.mode.value !== "run";
  }

  private get searching(): boolean {
    return this.sweep && Number(this.sampler.value) !== SearchAlgorithm.GRID;
  }

  private showSearchRows(): void {
    for (const el of this.searchRows) el.hidden = !this.searching;
    const nsga2 = this.searching && Number(this.sampler.value) === SearchAlgorithm.NSGA2;
    for (const el of this.againstRows) el.hidden = !nsga2;
  }

  private options() {
    const search = searchSpec({
      algorithm: this.sweep ? Number(this.sampler.value) : SearchAlgorithm.GRID,
      budget: this.budget.value,
      parallel: this.parallel.value,
      seed: this.seed.value,
      metric: Number(this.metric.value),
      against: Number(this.against.value),
    });
    const walk = walkForwardSpec({
      folds: this.folds.value,
      anchored: this.anchored.checked,
      inSampleHours: this.inSample.value,
      outOfSampleHours: this.outOfSample.value,
    });
    const errors = [
      ...(search.ok ? [] : search.errors.values()),
      ...(walk.ok || this.mode.value !== "walkforward" ? [] : walk.errors.values()),
    ];
    return { search, walk, errors };
  }

  private show(datasets: readonly Dataset[], strategies: readonly Strategy[]): void {
    this.dataset.replaceChildren(
      ...datasets.map((d) => h("option", { value: d.name, text: datasetText(d) })),
    );
    this.strategy.replaceChildren(
      ...strategies.map((s) => h("option", { value: s.name, text: s.displayName || s.name })),
    );
    const heading = h("h2", { text: "Launch" });
    if (datasets.length === 0) {
      const text =
        "No datasets yet. An operator imports tick data with ImportDataset; " +
        "then runs can be launched here.";
      this.element.replaceChildren(heading, h("div", { class: "status empty", text }), this.form);
    } else this.element.replaceChildren(heading, this.form);
    this.onDataset();
    this.onStrategy();
  }

  private onDataset(): void {
    const d = this.store.state.datasets.find((x) => x.name === this.dataset.value);
    this.currency.value = d?.instrument?.quoteCurrency ?? "USD";
    const start = timestampSeconds(d?.startTime);
    const end = timestampSeconds(d?.endTime);
    for (const input of [this.from, this.to]) {
      input.min = localInput(start);
      input.max = localInput(end);
    }
    this.from.placeholder = start === null ? "" : formatTime(start, false);
    this.to.placeholder = end === null ? "" : formatTime(end, false);
  }

  private onStrategy(): void {
    const strategy = this.store.state.strategies.find((s) => s.name === this.strategy.value);
    this.description.textContent = strategy?.description ?? "";
    this.paramsSlot.replaceChildren();
    this.inputs = [];
    const sweep = this.sweep;
    for (const p of strategy?.parameters ?? []) {
      const spec = toSpec(p);
      const name = `param-${p.name}`;
      let input: HTMLInputElement | HTMLSelectElement;
      if (!sweep && spec.type === "bool") {
        const options = ["false", "true"].map((v) => h("option", { value: v, text: v }));
        input = h("select", { name }, ...options);
      } else if (!sweep && spec.choices !== undefined && spec.choices.length > 0) {
        input = h(
          "select",
          { name },
          ...spec.choices.map((c) => h("option", { value: c, text: c })),
        );
      } else if (!sweep && (spec.type === "int" || spec.type === "double")) {
        const step = spec.type === "int" ? 1 : "any";
        input = h("input", { name, type: "number", step, min: spec.min, max: spec.max });
      } else {
        input = h("input", { name, placeholder: sweep ? "values: 10,20,30 or 10:50:10" : "" });
      }
      input.value = valueText(p.defaultValue);
      const bounded = spec.min !== undefined || spec.max !== undefined;
      const bounds = bounded ? `${spec.min ?? "−∞"} – ${spec.max ?? "∞"}, ` : "";
      const hint = `${p.description} (${bounds}default ${valueText(p.defaultValue)})`;
      const error = h("div", { class: "field-error" });
      input.addEventListener("input", () => this.validate());
      this.paramsSlot.append(
        h("label", { text: p.name, title: p.description }),
        input,
        h("div", { class: "hint", text: hint }),
        error,
      );
      this.inputs.push({ spec, input, error });
    }
    for (const el of this.sweepRows) el.hidden = !sweep;
    this.showSearchRows();
    for (const el of this.walkRows) el.hidden = this.mode.value !== "walkforward";
    this.submit.textContent =
      this.mode.value === "walkforward"
        ? "Launch walk-forward"
        : sweep
          ? "Launch sweep"
          : "Launch run";
    this.validate();
  }

  // Parses every input and shows each one's error beside it.
  private collect(): Collected {
    const texts = this.inputs.map(({ spec, input }) => ({ spec, text: input.value }));
    const collected = collectParams(texts, this.sweep);
    for (const { spec, input, error } of this.inputs) {
      const message = collected.errors.get(spec.name);
      input.setAttribute("aria-invalid", String(message !== undefined));
      error.textContent = message ?? "";
    }
    return collected;
  }

  private validate(): void {
    const collected = this.collect();
    const { errors } = this.options();
    this.optionsError.textContent = errors.join(" ");
    const ok = collected.errors.size === 0 && errors.length === 0;
    if (this.searching && ok)
      this.grid.textContent =
        collected.axes.length === 0
          ? "Give at least one parameter several values."
          : `${this.budget.value} trials sampled from ${gridSize(collected.axes.map((a) => a.values)).toLocaleString()} points`;
    else if (this.sweep && ok) {
      const size = gridSize(collected.axes.map((a) => a.values));
      const over = size > MAX_GRID ? " — at most 10,000" : "";
      this.grid.textContent =
        collected.axes.length === 0
          ? "Give at least one parameter several values."
          : `${size.toLocaleString()} runs in the grid${this.mode.value === "walkforward" ? " of each fold" : ""}${over}`;
    } else this.grid.textContent = "";
    const { datasets, strategies } = this.store.state;
    this.submit.disabled = !ok || datasets.length === 0 || strategies.length === 0;
    const allowed = gate(this.submit, Role.OPERATOR, "Launching");
    this.refused.textContent = allowed ? "" : (this.submit.dataset.refused ?? "");
  }

  private launch(): void {
    const collected = this.collect();
    if (collected.errors.size > 0) return;
    if (!isDecimal(this.balance.value)) {
      setStatus(this.status, "error", "Starting balance must be a decimal number.");
      return;
    }
    const spec = launchSpec(
      {
        dataset: this.dataset.value,
        strategy: this.strategy.value,
        balance: this.balance.value,
        currency: this.currency.value,
        accountType: Number(this.account.value) as AccountType,
        barSeconds: Number(this.interval.value),
        from: this.from.value,
        to: this.to.value,
      },
      collected.params,
    );
    this.submit.disabled = true;
    setStatus(this.status, "loading", "Submitting…");
    const sweep = this.sweep;
    const mode = this.mode.value;
    const { search, walk } = this.options();
    const signal = this.scope.signal;
    void (async () => {
      try {
        this.followed = null;
        if (sweep && collected.axes.length === 0)
          throw new Error("A sweep needs at least one parameter with several values.");
        if (!search.ok) throw new Error("Correct the fields marked above.");
        const metric = Number(this.metric.value) as RankMetric;
        const sweepRequest = { baseSpec: spec, axes: collected.axes, metric, search: search.value };
        if (mode === "walkforward") {
          if (!walk.ok) throw new Error("Correct the fields marked above.");
          const request = { ...sweepRequest, walkForward: walk.value };
          const { walkForward } = await this.clients.backtest.createWalkForward(request, {
            signal,
          });
          const name = walkForward?.name ?? "";
          const folds = walkForward?.folds.length ?? 0;
          setStatus(this.status, "ok", `Walk-forward ${shortId(name)} started: ${folds} folds.`);
          this.launched.walkForward(name);
        } else if (sweep) {
          const request = sweepRequest;
          const { sweep: created } = await this.clients.backtest.createSweep(request, { signal });
          const name = created?.name ?? "";
          const text = `Sweep ${shortId(name)} started: ${created?.totalRuns ?? 0} runs.`;
          setStatus(this.status, "ok", text);
          this.launched.sweep(name);
        } else {
          const { backtest, cached } = await this.clients.backtest.createBacktest(
            { spec },
            { signal },
          );
          if (backtest === undefined) throw new Error("the service returned no run");
          this.followed = { name: backtest.name, cached };
          this.showRun(backtest);
          this.launched.run(backtest);
        }
      } catch (error) {
        if (!signal.aborted) setStatus(this.status, "error", describeError(error));
      } finally {
        this.validate();
      }
    })();
  }

  // "Run <id> <state>", the id linking to its playback once it has succeeded.
  private showRun(run: Backtest): void {
    const phase = stateName(run.state);
    const id = shortId(run.name);
    const succeeded = run.state === BacktestState.SUCCEEDED;
    const link = succeeded
      ? h("a", { href: formatRoute("playback", run.name.split("/").pop() ?? ""), text: id })
      : h("code", { text: id });
    const cached = this.followed?.cached === true ? " (same spec: cached result)" : "";
    const text = run.state === BacktestState.FAILED ? `failed: ${run.errorMessage}` : phase;
    const kind = run.state === BacktestState.FAILED ? "error" : "ok";
    setStatus(this.status, kind, "");
    this.status.firstElementChild?.replaceChildren("Run ", link, ` ${text}${cached}.`);
    this.status.dataset.state = phase;
  }
}
