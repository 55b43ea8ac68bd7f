// Runs: the list with live progress, a launch form (run or sweep) built from the strategies' parameter
// specs and the datasets, sweep results as a sortable table, and a way into playback for each run.
import { create } from "@bufbuild/protobuf";
import {
  AccountType,
  BacktestState,
  DataKind,
  ParameterType,
  RankMetric,
  SweepState,
  ParameterValueSchema,
  type Backtest,
  type Dataset,
  type ParameterSpec,
  type ParameterValue,
  type Strategy,
  type Sweep,
  type SweepResult,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import type { Clients } from "../transport";
import { describeError } from "../errors";
import { formatDecimal, isDecimal } from "../lib/decimal";
import { parseAxis, parseParam, gridSize, type ParamSpec, type ParamValue } from "../lib/params";
import {
  formatNumber,
  formatPercent,
  formatTime,
  secondsToTimestamp,
  timestampSeconds,
} from "../lib/time";
import { paramsText, progressView, shortId, type RunPhase } from "../lib/runs";
import { nextDirection, sortRows, type Direction, type SortKey } from "../lib/sort";
import { formatRoute, type Route } from "../lib/router";
import { h, setStatus, type Scope } from "../ui/dom";

const FINAL = new Set([BacktestState.SUCCEEDED, BacktestState.FAILED, BacktestState.CANCELLED]);
// Browsers give one origin six HTTP/1.1 connections; each watch holds one. The rest are polled.
const MAX_WATCHES = 3;

export function stateName(state: BacktestState): string {
  return (BacktestState[state] ?? "unspecified").toLowerCase();
}

function toSpec(spec: ParameterSpec): ParamSpec {
  const num = (v: ParameterValue | undefined): number | undefined => {
    if (v === undefined) return undefined;
    if (v.kind.case === "intValue") return Number(v.kind.value);
    if (v.kind.case === "doubleValue") return v.kind.value;
    return undefined;
  };
  const type =
    spec.type === ParameterType.INT
      ? "int"
      : spec.type === ParameterType.DOUBLE
        ? "double"
        : spec.type === ParameterType.BOOL
          ? "bool"
          : "string";
  return {
    name: spec.name,
    type,
    min: num(spec.minValue),
    max: num(spec.maxValue),
    choices: spec.choices,
  };
}

function valueText(v: ParameterValue | undefined): string {
  return v === undefined || v.kind.case === undefined ? "" : String(v.kind.value);
}

function paramValue(v: ParamValue): ParameterValue {
  return create(ParameterValueSchema, { kind: v });
}

function paramsOf(params: Record<string, ParameterValue>): string {
  return paramsText(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, valueText(v)])));
}

function progressBar(run: Backtest): HTMLElement {
  const eta = run.progress?.eta;
  const view = progressView(
    stateName(run.state) as RunPhase,
    run.progress?.percent ?? 0,
    eta === undefined ? null : Number(eta.seconds),
  );
  const fill = h("span");
  fill.style.width = `${view.percent}%`;
  return h(
    "div",
    { class: "progress-wrap" },
    h(
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
    ),
    h("span", { class: "progress-label", text: view.label }),
  );
}

export function renderRuns(root: HTMLElement, clients: Clients, route: Route, scope: Scope): void {
  const runs = new Map<string, Backtest>();
  const watching = new Set<string>();
  let datasets: Dataset[] = [];
  let strategies: Strategy[] = [];
  const datasetNames = new Map<string, string>();

  const listStatus = h("div");
  const older = h("button", { type: "button", text: "Load older runs", hidden: true });
  const runsBody = h("tbody");
  const runsTable = h(
    "table",
    { class: "grid runs", "data-testid": "runs" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...[
          "Run",
          "Strategy",
          "Dataset",
          "Parameters",
          "State",
          "Progress",
          "Return",
          "Sharpe",
          "Trades",
          "Created",
          "",
        ].map((t) => h("th", { text: t })),
      ),
    ),
    runsBody,
  );
  const formSlot = h(
    "section",
    { class: "panel" },
    h("h2", { text: "Launch" }),
    h("div", {}, "Loading strategies and datasets…"),
  );
  const sweepsSlot = h(
    "section",
    { class: "panel", "data-testid": "sweeps" },
    h("h2", { text: "Sweeps" }),
  );
  const sweepsStatus = h("div");
  const sweepsList = h("div", { class: "toolbar" });
  const sweepDetail = h("div");
  sweepsSlot.append(sweepsStatus, sweepsList, sweepDetail);

  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Backtest runs" })),
    h(
      "div",
      { class: "layout-2" },
      formSlot,
      h(
        "section",
        { class: "panel" },
        h("h2", { text: "Runs" }),
        listStatus,
        h("div", { class: "table-scroll" }, runsTable),
        older,
      ),
    ),
    sweepsSlot,
  );

  function renderRow(run: Backtest): HTMLTableRowElement {
    const id = run.name.split("/").pop() ?? run.name;
    const strategy = run.spec?.strategy.replace(/^strategies\//, "") ?? "";
    const stats = run.stats;
    const actions = h("td", {});
    if (run.state === BacktestState.SUCCEEDED)
      actions.append(h("a", { href: formatRoute("playback", id), text: "Open" }));
    if (!FINAL.has(run.state)) {
      const cancel = h("button", { type: "button", class: "link", text: "Cancel" });
      cancel.addEventListener("click", () => {
        cancel.disabled = true;
        clients.backtest
          .cancelBacktest({ name: run.name }, { signal: scope.signal })
          .then((r) => r.backtest !== undefined && upsert(r.backtest))
          .catch((error: unknown) => {
            actions.replaceChildren(h("span", { class: "error", text: describeError(error) }));
          });
      });
      actions.append(cancel);
    }
    const state = h("span", { class: `state ${stateName(run.state)}`, text: stateName(run.state) });
    if (run.state === BacktestState.FAILED) state.title = run.errorMessage;
    const row = h(
      "tr",
      { "data-run": id, "data-state": stateName(run.state) },
      h("td", {}, h("code", { text: shortId(run.name), title: run.name })),
      h("td", { text: strategy }),
      h("td", {
        text: datasetNames.get(run.spec?.dataset ?? "") ?? shortId(run.spec?.dataset ?? ""),
      }),
      h("td", {
        class: "params",
        text: paramsOf(run.spec?.parameters ?? {}),
        title: paramsOf(run.spec?.parameters ?? {}),
      }),
      h(
        "td",
        {},
        state,
        run.state === BacktestState.FAILED
          ? h("div", { class: "error", text: run.errorMessage })
          : null,
      ),
      h("td", {}, progressBar(run)),
      h("td", { class: "num", text: stats ? formatPercent(stats.totalReturn) : "" }),
      h("td", { class: "num", text: stats ? formatNumber(stats.sharpeRatio) : "" }),
      h("td", { class: "num", text: stats ? stats.tradeCount.toString() : "" }),
      h("td", { text: formatTime(timestampSeconds(run.createTime), false) }),
      actions,
    );
    return row;
  }

  function renderList(): void {
    const sorted = [...runs.values()].sort(
      (a, b) => (timestampSeconds(b.createTime) ?? 0) - (timestampSeconds(a.createTime) ?? 0),
    );
    runsBody.replaceChildren(...sorted.map(renderRow));
    if (sorted.length === 0)
      setStatus(listStatus, "empty", "No runs yet. Launch one with the form.");
    else if (listStatus.querySelector("[data-status=empty]") !== null) setStatus(listStatus, null);
  }

  function upsert(run: Backtest): void {
    runs.set(run.name, run);
    renderList();
    if (!FINAL.has(run.state)) watch(run.name);
  }

  function watch(name: string): void {
    if (watching.has(name) || watching.size >= MAX_WATCHES) return;
    watching.add(name);
    void (async () => {
      try {
        for await (const message of clients.backtest.watchBacktest(
          { name },
          { signal: scope.signal },
        )) {
          if (message.backtest !== undefined) {
            runs.set(name, message.backtest);
            // Progress updates replace one row, not the table.
            const id = name.split("/").pop() ?? name;
            const existing = runsBody.querySelector(`tr[data-run="${CSS.escape(id)}"]`);
            if (existing !== null) existing.replaceWith(renderRow(message.backtest));
            else renderList();
          }
        }
      } catch (error) {
        if (!scope.signal.aborted)
          setStatus(listStatus, "error", `Watching ${shortId(name)}: ${describeError(error)}`);
      } finally {
        watching.delete(name);
        // Hand the connection to another active run.
        if (!scope.signal.aborted)
          for (const run of runs.values()) if (!FINAL.has(run.state)) watch(run.name);
      }
    })();
  }

  // The newest page is refreshed; older pages are fetched on demand and kept.
  let olderToken: string | null = null;
  older.addEventListener("click", () => {
    if (olderToken === null || olderToken === "") return;
    older.disabled = true;
    clients.backtest
      .listBacktests({ pageSize: 200, pageToken: olderToken }, { signal: scope.signal })
      .then((response) => {
        for (const run of response.backtests) runs.set(run.name, run);
        olderToken = response.nextPageToken;
        older.hidden = olderToken === "";
        renderList();
      })
      .catch((error: unknown) => setStatus(listStatus, "error", describeError(error)))
      .finally(() => (older.disabled = false));
  });

  async function loadRuns(): Promise<void> {
    const response = await clients.backtest.listBacktests(
      { pageSize: 200 },
      { signal: scope.signal },
    );
    for (const run of response.backtests) runs.set(run.name, run);
    if (olderToken === null) {
      olderToken = response.nextPageToken;
      older.hidden = olderToken === "";
    }
    renderList();
    for (const run of response.backtests) if (!FINAL.has(run.state)) watch(run.name);
  }

  // Active runs beyond the watched ones are polled.
  const poll = window.setInterval(() => {
    const unwatched = [...runs.values()].some((r) => !FINAL.has(r.state) && !watching.has(r.name));
    if (unwatched) void loadRuns().catch(() => undefined);
  }, 3000);
  scope.add(() => window.clearInterval(poll));

  // ---- sweeps ----
  let sweepSort: { key: string | null; direction: Direction } = { key: null, direction: "desc" };
  let currentSweep: Sweep | null = null;

  function showSweep(sweep: Sweep): void {
    currentSweep = sweep;
    const axes = sweep.axes.map((a) => a.name);
    const metrics: Array<
      [string, string, (r: SweepResult) => SortKey, (r: SweepResult) => string]
    > = [
      [
        "rank",
        "Rank",
        (r) => (r.rank > 0 ? r.rank : null),
        (r) => (r.rank > 0 ? String(r.rank) : ""),
      ],
      ...axes.map(
        (axis): [string, string, (r: SweepResult) => SortKey, (r: SweepResult) => string] => [
          `p:${axis}`,
          axis,
          (r) => {
            const v = r.parameters[axis]?.kind;
            return v === undefined || v.case === undefined
              ? null
              : typeof v.value === "bigint"
                ? Number(v.value)
                : typeof v.value === "boolean"
                  ? String(v.value)
                  : v.value;
          },
          (r) => valueText(r.parameters[axis]),
        ],
      ),
      ["state", "State", (r) => stateName(r.state), (r) => stateName(r.state)],
      [
        "return",
        "Return",
        (r) => r.stats?.totalReturn,
        (r) => (r.stats ? formatPercent(r.stats.totalReturn) : ""),
      ],
      [
        "sharpe",
        "Sharpe",
        (r) => r.stats?.sharpeRatio,
        (r) => (r.stats ? formatNumber(r.stats.sharpeRatio) : ""),
      ],
      [
        "sortino",
        "Sortino",
        (r) => r.stats?.sortinoRatio,
        (r) => (r.stats ? formatNumber(r.stats.sortinoRatio) : ""),
      ],
      [
        "dd",
        "Max DD",
        (r) => r.stats?.maxDrawdown,
        (r) => (r.stats ? formatPercent(r.stats.maxDrawdown) : ""),
      ],
      [
        "win",
        "Win rate",
        (r) => r.stats?.winRate,
        (r) => (r.stats ? formatPercent(r.stats.winRate) : ""),
      ],
      [
        "pf",
        "Profit factor",
        (r) => r.stats?.profitFactor,
        (r) => (r.stats ? formatNumber(r.stats.profitFactor) : ""),
      ],
      [
        "trades",
        "Trades",
        (r) => (r.stats ? Number(r.stats.tradeCount) : null),
        (r) => (r.stats ? r.stats.tradeCount.toString() : ""),
      ],
      [
        "pnl",
        "PnL",
        (r) => (r.stats ? Number(r.stats.pnl) : null),
        (r) => (r.stats ? formatDecimal(r.stats.pnl, { maxFractionDigits: 2 }) : ""),
      ],
    ];
    const column = metrics.find(([key]) => key === sweepSort.key);
    const results =
      column === undefined
        ? sweep.results
        : sortRows(sweep.results, column[2], sweepSort.direction);
    const head = h("tr", {});
    for (const [key, title] of metrics) {
      const th = h("th", {
        class: "sortable",
        text: title,
        tabindex: 0,
        "aria-sort":
          sweepSort.key === key
            ? sweepSort.direction === "asc"
              ? "ascending"
              : "descending"
            : undefined,
        "data-key": key,
      });
      const sort = () => {
        sweepSort = { key, direction: nextDirection(sweepSort.key, sweepSort.direction, key) };
        showSweep(sweep);
        sweepDetail.querySelector<HTMLElement>(`th[data-key="${key}"]`)?.focus();
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sort();
        }
      });
      head.append(th);
    }
    head.append(h("th", {}));
    const body = h("tbody");
    for (const result of results) {
      const id = result.backtest.split("/").pop() ?? "";
      const tr = h("tr", {
        "data-run": id,
        class: result.state === BacktestState.FAILED ? "mismatch" : "",
      });
      for (const [, , , render] of metrics)
        tr.append(h("td", { class: "num", text: render(result) }));
      tr.append(
        h(
          "td",
          {},
          result.state === BacktestState.SUCCEEDED
            ? h("a", { href: formatRoute("playback", id), text: "Open" })
            : result.errorMessage
              ? h("span", { class: "error", text: result.errorMessage })
              : "",
        ),
      );
      body.append(tr);
    }
    const metric = (RankMetric[sweep.metric] ?? "").toLowerCase().replace(/_/g, " ");
    sweepDetail.replaceChildren(
      h(
        "p",
        {},
        h("code", { text: shortId(sweep.name) }),
        ` ${(SweepState[sweep.state] ?? "").toLowerCase()} · ${sweep.finishedRuns} of ${sweep.totalRuns} runs finished · ranked by ${metric || "sharpe ratio"}`,
      ),
      sweep.results.length === 0
        ? h("div", { class: "status empty", text: "No results yet; they appear as runs finish." })
        : h(
            "div",
            { class: "table-scroll" },
            h(
              "table",
              { class: "grid", "data-testid": "sweep-results" },
              h("thead", {}, head),
              body,
            ),
          ),
    );
  }

  async function openSweep(name: string): Promise<void> {
    sweepDetail.replaceChildren(h("div", { class: "status loading", text: "Loading sweep…" }));
    try {
      const { sweep } = await clients.backtest.getSweep({ name }, { signal: scope.signal });
      if (sweep === undefined) return;
      showSweep(sweep);
      if (sweep.state === SweepState.RUNNING) {
        for await (const message of clients.backtest.watchSweep(
          { name },
          { signal: scope.signal },
        )) {
          if (currentSweep?.name !== name) break;
          if (message.event.case === "result") {
            const result = message.event.value;
            const results = currentSweep.results
              .filter((r) => r.backtest !== result.backtest)
              .concat(result);
            showSweep({
              ...currentSweep,
              results,
              finishedRuns: results.filter((r) => FINAL.has(r.state)).length,
            });
          } else if (message.event.case === "sweep") showSweep(message.event.value);
        }
        void loadSweeps(undefined, false);
        void loadRuns().catch(() => undefined);
      }
    } catch (error) {
      if (!scope.signal.aborted)
        sweepDetail.replaceChildren(
          h("div", { class: "status error", role: "alert", text: describeError(error) }),
        );
    }
  }

  async function loadSweeps(select?: string, open = true): Promise<void> {
    try {
      const { sweeps } = await clients.backtest.listSweeps(
        { pageSize: 50 },
        { signal: scope.signal },
      );
      sweepsList.replaceChildren(
        ...sweeps.map((s) => {
          const button = h("button", {
            type: "button",
            text: `${shortId(s.name)} · ${s.finishedRuns}/${s.totalRuns} · ${(SweepState[s.state] ?? "").toLowerCase()}`,
          });
          button.addEventListener("click", () => void openSweep(s.name));
          return button;
        }),
      );
      setStatus(
        sweepsStatus,
        sweeps.length === 0 ? "empty" : null,
        "No sweeps yet. Switch the form to Sweep to run a parameter grid.",
      );
      const wanted = select ?? route.params.get("sweep");
      if (wanted && open)
        void openSweep(wanted.startsWith("sweeps/") ? wanted : `sweeps/${wanted}`);
    } catch (error) {
      if (!scope.signal.aborted) setStatus(sweepsStatus, "error", describeError(error));
    }
  }

  // ---- launch form ----
  function renderForm(): void {
    const form = h("form", { class: "launch", "data-testid": "launch" });
    const mode = h(
      "select",
      { name: "mode", "aria-label": "Mode" },
      h("option", { value: "run", text: "Single run" }),
      h("option", { value: "sweep", text: "Sweep (grid)" }),
    );
    const datasetSelect = h("select", { name: "dataset", required: true });
    for (const d of datasets)
      datasetSelect.append(
        h("option", {
          value: d.name,
          text: `${d.displayName} · ${d.instrument?.instrumentId ?? ""} · ${(DataKind[d.kind] ?? "").toLowerCase()} · ${d.rowCount.toLocaleString()} rows`,
        }),
      );
    const strategySelect = h("select", { name: "strategy", required: true });
    for (const s of strategies)
      strategySelect.append(h("option", { value: s.name, text: s.displayName || s.name }));
    const description = h("div", { class: "hint full" });
    const paramsSlot = h("div", { class: "full launch-params" });
    paramsSlot.style.display = "contents";
    const balance = h("input", {
      name: "balance",
      value: "100000",
      inputmode: "decimal",
      "aria-label": "Starting balance",
    });
    const currency = h("input", { name: "currency", size: 6, "aria-label": "Currency" });
    const interval = h(
      "select",
      { name: "interval" },
      ...[
        ["60", "1 minute"],
        ["300", "5 minutes"],
        ["900", "15 minutes"],
        ["3600", "1 hour"],
      ].map(([v, t]) => h("option", { value: v, text: t })),
    );
    const account = h(
      "select",
      { name: "account" },
      h("option", { value: String(AccountType.CASH), text: "cash" }),
      h("option", { value: String(AccountType.MARGIN), text: "margin" }),
    );
    const from = h("input", {
      type: "datetime-local",
      name: "from",
      step: 60,
      "aria-label": "From (UTC)",
    });
    const to = h("input", {
      type: "datetime-local",
      name: "to",
      step: 60,
      "aria-label": "To (UTC)",
    });
    const metric = h(
      "select",
      { name: "metric" },
      ...Object.values(RankMetric)
        .filter((v): v is RankMetric => typeof v === "number" && v !== RankMetric.UNSPECIFIED)
        .map((m) =>
          h("option", {
            value: String(m),
            text: (RankMetric[m] ?? "").toLowerCase().replace(/_/g, " "),
          }),
        ),
    );
    const metricRow = [h("label", { text: "Rank by" }), metric];
    const grid = h("div", { class: "hint", "data-testid": "grid-size" });
    const submit = h("button", { type: "submit", class: "primary", text: "Launch run" });
    const formStatus = h("div", { class: "full", "data-testid": "launch-status" });
    let inputs = new Map<
      string,
      { spec: ParamSpec; input: HTMLInputElement | HTMLSelectElement; error: HTMLElement }
    >();

    function onDataset(): void {
      const d = datasets.find((x) => x.name === datasetSelect.value);
      currency.value = d?.instrument?.quoteCurrency ?? "USD";
      const start = timestampSeconds(d?.startTime);
      const end = timestampSeconds(d?.endTime);
      for (const input of [from, to]) {
        input.min = start === null ? "" : formatTime(start, false).replace(" ", "T");
        input.max = end === null ? "" : formatTime(end, false).replace(" ", "T");
      }
      from.placeholder = input_hint(start);
      to.placeholder = input_hint(end);
    }
    const input_hint = (s: number | null) => (s === null ? "" : formatTime(s, false));

    function onStrategy(): void {
      const strategy = strategies.find((s) => s.name === strategySelect.value);
      description.textContent = strategy?.description ?? "";
      paramsSlot.replaceChildren();
      inputs = new Map();
      const sweep = mode.value === "sweep";
      for (const p of strategy?.parameters ?? []) {
        const spec = toSpec(p);
        let input: HTMLInputElement | HTMLSelectElement;
        if (!sweep && spec.type === "bool") {
          input = h(
            "select",
            { name: `param-${p.name}` },
            h("option", { value: "false", text: "false" }),
            h("option", { value: "true", text: "true" }),
          );
        } else if (!sweep && spec.choices !== undefined && spec.choices.length > 0) {
          input = h(
            "select",
            { name: `param-${p.name}` },
            ...spec.choices.map((c) => h("option", { value: c, text: c })),
          );
        } else if (!sweep && (spec.type === "int" || spec.type === "double")) {
          input = h("input", {
            name: `param-${p.name}`,
            type: "number",
            step: spec.type === "int" ? 1 : "any",
            min: spec.min,
            max: spec.max,
          });
        } else {
          input = h("input", {
            name: `param-${p.name}`,
            placeholder: sweep ? "values: 10,20,30 or 10:50:10" : "",
          });
        }
        input.value = valueText(p.defaultValue);
        const bounds =
          spec.min !== undefined || spec.max !== undefined
            ? `${spec.min ?? "−∞"} – ${spec.max ?? "∞"}, `
            : "";
        const error = h("div", { class: "field-error" });
        input.addEventListener("input", validate);
        paramsSlot.append(
          h("label", { text: p.name, title: p.description }),
          input,
          h("div", {
            class: "hint",
            text: `${p.description} (${bounds}default ${valueText(p.defaultValue)})`,
          }),
          error,
        );
        inputs.set(p.name, { spec, input, error });
      }
      for (const el of metricRow) el.hidden = !sweep;
      submit.textContent = sweep ? "Launch sweep" : "Launch run";
      validate();
    }

    function collect(): {
      params: Record<string, ParameterValue>;
      axes: Array<{ name: string; values: ParameterValue[] }>;
    } | null {
      const sweep = mode.value === "sweep";
      const params: Record<string, ParameterValue> = {};
      const axes: Array<{ name: string; values: ParameterValue[] }> = [];
      let ok = true;
      for (const [name, { spec, input, error }] of inputs) {
        const parsed = sweep ? parseAxis(spec, input.value) : parseParam(spec, input.value);
        input.setAttribute("aria-invalid", String(!parsed.ok));
        error.textContent = parsed.ok ? "" : parsed.error;
        if (!parsed.ok) {
          ok = false;
          continue;
        }
        if (Array.isArray(parsed.value)) {
          const values = parsed.value as ParamValue[];
          if (values.length > 1) axes.push({ name, values: values.map(paramValue) });
          else if (values[0] !== undefined) params[name] = paramValue(values[0]);
        } else params[name] = paramValue(parsed.value as ParamValue);
      }
      return ok ? { params, axes } : null;
    }

    function validate(): void {
      const collected = collect();
      const sweep = mode.value === "sweep";
      if (sweep && collected !== null) {
        const size = gridSize(collected.axes.map((a) => a.values));
        grid.textContent =
          collected.axes.length === 0
            ? "Give at least one parameter several values."
            : `${size.toLocaleString()} runs in the grid${size > 10_000 ? " — at most 10,000" : ""}`;
      } else grid.textContent = "";
      submit.disabled = collected === null || datasets.length === 0 || strategies.length === 0;
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const collected = collect();
      if (collected === null) return;
      if (!isDecimal(balance.value)) {
        setStatus(formStatus, "error", "Starting balance must be a decimal number.");
        return;
      }
      const range = {
        startTime: from.value ? secondsToTimestamp(Date.parse(`${from.value}Z`) / 1000) : undefined,
        endTime: to.value ? secondsToTimestamp(Date.parse(`${to.value}Z`) / 1000) : undefined,
      };
      const spec = {
        dataset: datasetSelect.value,
        strategy: strategySelect.value,
        parameters: collected.params,
        timeRange: range.startTime || range.endTime ? range : undefined,
        startingBalances: [{ currency: currency.value.trim(), amount: balance.value.trim() }],
        accountType: Number(account.value) as AccountType,
        barInterval: { seconds: BigInt(interval.value), nanos: 0 },
      };
      submit.disabled = true;
      setStatus(formStatus, "loading", "Submitting…");
      const sweep = mode.value === "sweep";
      void (async () => {
        try {
          if (sweep) {
            if (collected.axes.length === 0)
              throw new Error("A sweep needs at least one parameter with several values.");
            const { sweep: created } = await clients.backtest.createSweep(
              { baseSpec: spec, axes: collected.axes, metric: Number(metric.value) as RankMetric },
              { signal: scope.signal },
            );
            setStatus(
              formStatus,
              "ok",
              `Sweep ${shortId(created?.name ?? "")} started: ${created?.totalRuns ?? 0} runs.`,
            );
            await loadSweeps(created?.name);
            void loadRuns().catch(() => undefined);
          } else {
            const { backtest, cached } = await clients.backtest.createBacktest(
              { spec },
              { signal: scope.signal },
            );
            if (backtest === undefined) throw new Error("the service returned no run");
            setStatus(
              formStatus,
              "ok",
              cached
                ? `Same spec already ran: ${shortId(backtest.name)} (cached result).`
                : `Run ${shortId(backtest.name)} queued.`,
            );
            upsert(backtest);
          }
        } catch (error) {
          if (!scope.signal.aborted) setStatus(formStatus, "error", describeError(error));
        } finally {
          validate();
        }
      })();
    });

    datasetSelect.addEventListener("change", onDataset);
    strategySelect.addEventListener("change", onStrategy);
    mode.addEventListener("change", onStrategy);
    form.append(
      h("label", { text: "Mode" }),
      mode,
      h("label", { text: "Dataset" }),
      datasetSelect,
      h("label", { text: "Strategy" }),
      strategySelect,
      description,
      paramsSlot,
      h("label", { text: "Starting balance" }),
      h("div", {}, balance, " ", currency),
      h("label", { text: "Account" }),
      account,
      h("label", { text: "Bar interval" }),
      interval,
      h("label", { text: "From (UTC)" }),
      from,
      h("label", { text: "To (UTC)" }),
      to,
      ...metricRow,
      h("span"),
      grid,
      h("span"),
      submit,
      formStatus,
    );
    const heading = h("h2", { text: "Launch" });
    if (datasets.length === 0)
      formSlot.replaceChildren(
        heading,
        h("div", {
          class: "status empty",
          text: "No datasets yet. An operator imports tick data with ImportDataset; then runs can be launched here.",
        }),
        form,
      );
    else formSlot.replaceChildren(heading, form);
    onDataset();
    onStrategy();
  }

  async function loadForm(): Promise<void> {
    try {
      const [d, s] = await Promise.all([
        clients.backtest.listDatasets({ pageSize: 1000 }, { signal: scope.signal }),
        clients.backtest.listStrategies({ pageSize: 1000 }, { signal: scope.signal }),
      ]);
      datasets = d.datasets;
      strategies = s.strategies;
      for (const x of datasets) datasetNames.set(x.name, x.displayName);
      renderForm();
      renderList();
    } catch (error) {
      if (!scope.signal.aborted)
        formSlot.replaceChildren(
          h("h2", { text: "Launch" }),
          h("div", { class: "status error", role: "alert", text: describeError(error) }),
        );
    }
  }

  setStatus(listStatus, "loading", "Loading runs…");
  void loadForm();
  void loadRuns()
    .then(() => {
      if (runs.size > 0) setStatus(listStatus, null);
    })
    .catch((error: unknown) => {
      if (!scope.signal.aborted) setStatus(listStatus, "error", describeError(error));
    });
  void loadSweeps();
}
