// The launch form: a run or a sweep, built from ListStrategies' parameter specs (bounds checked as
// the user types) and ListDatasets. The inputs live in the form; the parsing is lib/launch.ts.
import {
  AccountType,
  BacktestState,
  DataKind,
  RankMetric,
  type Backtest,
  type Dataset,
  type Strategy,
} from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { isDecimal } from "../../lib/decimal";
import { collectParams, launchSpec, toSpec, valueText, type Collected } from "../../lib/launch";
import { gridSize, type ParamSpec } from "../../lib/params";
import { Role } from "../../gen/tapedeck/common/v1/common_pb";
import { gate } from "../../lib/identity";
import { formatRoute } from "../../lib/router";
import { shortId, stateName, type RunsState } from "../../lib/runs";
import type { Store } from "../../lib/store";
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
const METRICS = Object.values(RankMetric).filter(
  (v): v is RankMetric => typeof v === "number" && v !== RankMetric.UNSPECIFIED,
);

export interface Launched {
  run: (backtest: Backtest) => void;
  sweep: (name: string) => void;
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
    h("option", { value: "sweep", text: "Sweep (grid)" }),
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
    ...METRICS.map((m) =>
      h("option", {
        value: String(m),
        text: (RankMetric[m] ?? "").toLowerCase().replace(/_/g, " "),
      }),
    ),
  );
  private readonly metricRow = [h("label", { text: "Rank by" }), this.metric];
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
      ...this.metricRow,
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

  private get sweep(): boolean {
    return this.mode.value === "sweep";
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
    for (const el of this.metricRow) el.hidden = !sweep;
    this.submit.textContent = sweep ? "Launch sweep" : "Launch run";
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
    const ok = collected.errors.size === 0;
    if (this.sweep && ok) {
      const size = gridSize(collected.axes.map((a) => a.values));
      const over = size > MAX_GRID ? " — at most 10,000" : "";
      this.grid.textContent =
        collected.axes.length === 0
          ? "Give at least one parameter several values."
          : `${size.toLocaleString()} runs in the grid${over}`;
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
    const signal = this.scope.signal;
    void (async () => {
      try {
        this.followed = null;
        if (sweep) {
          if (collected.axes.length === 0)
            throw new Error("A sweep needs at least one parameter with several values.");
          const metric = Number(this.metric.value) as RankMetric;
          const request = { baseSpec: spec, axes: collected.axes, metric };
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
