// Playback of a finished run: candles with volume, overlays and indicator panes, fills as
// markers, a time cursor with play/pause and speed, the portfolio at the cursor, the equity curve
// and its drawdown in sync, and the run's analysis: its statistics, trades and downloads.
// The view composes its components around one PlaybackState (lib/playback.ts): the loader puts
// data into it, the transport and the charts move its cursor, and each component draws its part.
import { describeError } from "../../errors";
import { toggleParams } from "../../lib/indicators";
import {
  compareProblem,
  initialPlayback,
  moveCursor,
  noticed,
  pause,
  rangeFollowing,
  setMode,
  shownFills,
  TIMEFRAMES,
  timeframeChosen,
  timeframeFits,
  type PlaybackState,
} from "../../lib/playback";
import { formatRoute, type Route } from "../../lib/router";
import { stateName } from "../../lib/runs";
import { formatDuration } from "../../lib/time";
import { Store } from "../../lib/store";
import { Debounce, Throttle } from "../../lib/throttle";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";
import { EquityChart } from "./equity-chart";
import { ChartFrame } from "./frame";
import { TimeLink } from "../../lib/timelink";
import { PlaybackLoader } from "./loader";
import { downloadsPanel, TradesTable } from "./analysis";
import { indicatorsPanel, statsPanel } from "./panels";
import { PortfolioPanel } from "./portfolio";
import { PriceChart } from "./price-chart";
import { compareSelect, renderPicker, strategyOf } from "./runs-list";
import { Transport } from "./transport";

// Finer detail is asked at most this often while the view moves (zoom, scroll, play).
const REFINE_EVERY_MS = 250;
// The URL takes the cursor's time once it rests this long.
const URL_AFTER_MS = 300;

export function renderPlayback(
  root: HTMLElement,
  clients: Clients,
  route: Route,
  scope: Scope,
): void {
  if (route.id === null) {
    renderPicker(root, clients, scope);
    return;
  }
  const id = route.id;
  const compareId = route.params.get("compare");
  const store = new Store<PlaybackState>(initialPlayback(route.params));
  const loader = new PlaybackLoader(clients, `backtests/${id}`, store, scope.signal);
  scope.add(() => loader.dispose());
  // What the URL keeps: the compared run, the toggles, the mode and the cursor's time.
  const params = (state: PlaybackState, compare: string | null): Record<string, string> => ({
    ...(compare ? { compare } : {}),
    ...toggleParams(state.toggles),
    ...(state.mode === "analysis" ? { mode: "analysis" } : {}),
    ...(state.timeframe === null ? {} : { tf: String(state.timeframe) }),
    ...(state.cursor === null ? {} : { t: String(Math.round(state.cursor)) }),
  });

  const summary = h("span", { class: "muted", "data-testid": "run-summary", text: "loading run…" });
  const priceFrame = new ChartFrame("main", "candles");
  const equityFrame = new ChartFrame("equity", "equity");
  const fillsNote = h("div", { class: "muted", "data-testid": "fills-state" });
  const compareNote = h("div", { "data-testid": "compare-state" });
  const statsSlot = h("section", { class: "panel", "data-testid": "stats" });
  const transport = new Transport(store, () => reveal());
  const compare = compareSelect(clients, scope, { id, compare: compareId }, (other) =>
    formatRoute("playback", id, params(store.state, other)),
  );
  const analysis = h("input", {
    type: "checkbox",
    name: "analysis",
    "data-testid": "analysis",
    checked: store.state.mode === "analysis",
  });
  analysis.addEventListener("change", () =>
    store.update((s) => setMode(s, analysis.checked ? "analysis" : "replay")),
  );
  const modeToggle = h(
    "label",
    { title: "Replay draws the run up to the cursor; analysis draws all of it" },
    analysis,
    " Analysis (whole run)",
  );
  // Auto (the resolution follows the zoom) or a standard timeframe for the whole run.
  const timeframe = h(
    "select",
    { name: "timeframe", "aria-label": "Timeframe", "data-testid": "timeframe" },
    h("option", { value: "", text: "Auto" }),
    ...TIMEFRAMES.map(([seconds, label]) => h("option", { value: String(seconds), text: label })),
  );
  timeframe.value = String(store.state.timeframe ?? "");
  timeframe.addEventListener("change", () => {
    const chosen = timeframe.value === "" ? null : Number(timeframe.value);
    store.update((s) => timeframeChosen(s, chosen));
    void loader.resample(chosen, price.width()).catch(fail("candles", "Candles"));
  });
  const portfolio = new PortfolioPanel(store, (time) => loader.portfolio(time));
  // A trade clicked: the cursor goes to its entry, and the charts bring it into view.
  const trades = new TradesTable(clients, `backtests/${id}`, store, scope.signal, (entry) => {
    store.update((s) => moveCursor(pause(s), entry));
    reveal();
  });
  scope.add(() => trades.dispose());
  scope.add(() => transport.dispose());
  scope.add(() => portfolio.dispose());

  root.replaceChildren(
    h(
      "div",
      { class: "view-head" },
      h("h1", { text: "Playback" }),
      h("code", { text: id }),
      summary,
    ),
    h(
      "div",
      { class: "transport" },
      transport.play,
      transport.speed,
      transport.scrubber,
      transport.cursorTime,
      timeframe,
      modeToggle,
      compare,
    ),
    h(
      "div",
      { class: "playback" },
      h(
        "div",
        { class: "charts" },
        priceFrame.element,
        fillsNote,
        compareNote,
        equityFrame.element,
      ),
      h(
        "div",
        {},
        portfolio.element,
        statsSlot,
        indicatorsPanel(store),
        downloadsPanel(clients, `backtests/${id}`, scope.signal),
      ),
    ),
    trades.element,
  );

  // The charts size themselves to their frames, which are in the page now.
  const link = new TimeLink();
  const equity = new EquityChart(equityFrame, store, id.slice(0, 8), link, () => price.visible());
  const refine = new Throttle(REFINE_EVERY_MS, () => {
    const view = price.visible();
    if (view !== null) loader.refine(view, equity.width());
  });
  const price = new PriceChart(priceFrame, store, link, {
    onRangeChange: () => {
      if (store.state.equity.times.length > 0) link.follow(price.visible(), equity);
      refine.trigger();
    },
    onClick: (time) => store.update((s) => moveCursor(s, time)),
  });
  scope.add(() => equity.dispose());
  scope.add(() => price.dispose());
  scope.add(() => refine.cancel());

  // The transport moved the cursor: keep it on screen.
  function reveal(): void {
    const view = price.visible();
    const cursor = store.state.cursor;
    if (view === null || cursor === null) return;
    const range = rangeFollowing(view, cursor, store.state.mode);
    if (range !== null) price.setVisibleRange(range);
  }

  const writeUrl = new Debounce(URL_AFTER_MS, () =>
    history.replaceState(null, "", formatRoute("playback", id, params(store.state, compareId))),
  );
  scope.add(() => writeUrl.cancel());
  store.subscribe((next, previous) => {
    const fills = next.notices.fills;
    // In a replay the note also counts the fills the cursor has passed.
    const passed = next.mode === "replay" && fills?.kind === "info";
    const text = `${fills?.text ?? ""}${passed ? ` · ${shownFills(next).toLocaleString("en-US")} by the cursor` : ""}`;
    if (fills !== previous.notices.fills || fillsNote.textContent !== text)
      setStatus(fillsNote, fills === null ? null : fills.kind, text);
    if (next.compare !== previous.compare || next.equityOverview !== previous.equityOverview) {
      const problem = compareProblem(next);
      setStatus(compareNote, problem === null ? null : "error", problem ?? "");
    }
    if (next.toggles !== previous.toggles || next.mode !== previous.mode) writeUrl.trigger();
    if (next.timeframe !== previous.timeframe) writeUrl.trigger();
    if (next.run !== previous.run) {
      for (const option of timeframe.options)
        option.disabled = option.value !== "" && !timeframeFits(next.run, Number(option.value));
      // The candles' real width, when the server's buckets differ from the choice.
      const bucket = next.run?.overviewBucket;
      timeframe.dataset.bucket = String(bucket ?? "");
      timeframe.title = bucket === undefined ? "" : `candles of ${formatDuration(bucket)}`;
    }
    if (next.cursor !== previous.cursor && !next.playing) writeUrl.trigger();
    if (next.playing !== previous.playing) writeUrl.trigger();
  });

  const fail = (key: "candles" | "equity" | "fills", what: string) => (error: unknown) => {
    if (scope.signal.aborted) return;
    store.update((s) =>
      noticed(s, key, { kind: "error", text: `${what}: ${describeError(error)}` }),
    );
  };
  const described = loader.describe();
  void (async () => {
    const backtest = await described;
    summary.textContent = `${strategyOf(backtest)} · ${stateName(backtest.state)}`;
    statsSlot.replaceWith(statsPanel(backtest));
    void loader.instrument(backtest).catch(() => undefined); // default precision stays
    await loader.overview(backtest, price.width());
    if (store.state.run === null) return;
    // A link with a timeframe opens at it.
    if (store.state.timeframe !== null) await loader.resample(store.state.timeframe, price.width());
    requestAnimationFrame(() => performance.mark("tapedeck:chart-painted"));
    void loader.fills(null);
  })().catch(fail("candles", "Candles"));
  void loader.equity(equity.width()).catch(fail("equity", "Equity"));
  if (compareId)
    void described
      .then((backtest) => loader.compare(compareId, backtest, equity.width()))
      .catch((error: unknown) => {
        if (!scope.signal.aborted)
          setStatus(compareNote, "error", `Compare: ${describeError(error)}`);
      });
}
