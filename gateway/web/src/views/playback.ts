// Playback of a finished run: candles with volume, overlays and indicator panes, fills as markers, a
// time cursor with play/pause and speed, the portfolio at the cursor, and the equity curve in sync.
// Data is loaded lazily: an overview of the whole run sized to the screen, then a finer window around
// what is on screen as the user zooms or scrolls (see lib/series.ts); the chart never gets more.
import {
  CandlestickSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  HistogramSeries,
  LineSeries,
  PriceScaleMode,
  type IChartApi,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import {
  BacktestState,
  Indicator,
  OrderSide,
  type Backtest,
  type PortfolioState,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import type { Clients } from "../transport";
import { describeError } from "../errors";
import { formatDecimal } from "../lib/decimal";
import {
  advanceCursor,
  appendChunk,
  bucketIndex,
  capacity,
  emptyColumns,
  fillMarkers,
  planWindow,
  spliceWindow,
  timeToX,
  type CandleColumns,
  type FillLike,
  type Loaded,
  type RunSpan,
} from "../lib/series";
import { Latest } from "../lib/latest";
import { Lru } from "../lib/lru";
import { Throttle } from "../lib/throttle";
import { formatPercent, formatTime, secondsToTimestamp, timestampSeconds } from "../lib/time";
import { formatRoute, type Route } from "../lib/router";
import { h, setStatus, type Scope } from "../ui/dom";

const INDICATORS = [
  Indicator.SMA_20,
  Indicator.SMA_50,
  Indicator.EMA_20,
  Indicator.BOLLINGER_UPPER,
  Indicator.BOLLINGER_MIDDLE,
  Indicator.BOLLINGER_LOWER,
  Indicator.RSI_14,
  Indicator.MACD,
  Indicator.MACD_SIGNAL,
  Indicator.MACD_HISTOGRAM,
  Indicator.ATR_14,
];
const OVERLAYS: Array<{ key: string; title: string; lines: Array<[Indicator, string]> }> = [
  { key: "sma20", title: "SMA 20", lines: [[Indicator.SMA_20, "#f5a623"]] },
  { key: "sma50", title: "SMA 50", lines: [[Indicator.SMA_50, "#9b51e0"]] },
  { key: "ema20", title: "EMA 20", lines: [[Indicator.EMA_20, "#00a3a3"]] },
  {
    key: "bb",
    title: "Bollinger",
    lines: [
      [Indicator.BOLLINGER_UPPER, "#7f8c8d"],
      [Indicator.BOLLINGER_MIDDLE, "#95a5a6"],
      [Indicator.BOLLINGER_LOWER, "#7f8c8d"],
    ],
  },
];
const PANES = ["rsi", "macd", "atr"] as const;
type Pane = (typeof PANES)[number];
const SPEEDS: Array<[number, string]> = [
  [60, "1 min/s"],
  [600, "10 min/s"],
  [3600, "1 h/s"],
  [6 * 3600, "6 h/s"],
  [86400, "1 day/s"],
];
const SPACING = 6; // px per candle the window is sized for
const UP = "#26a69a";
const DOWN = "#ef5350";

const t = (seconds: number): UTCTimestamp => seconds as UTCTimestamp;

function dark(): boolean {
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}

function chartOptions(height: number) {
  const isDark = dark();
  return {
    height,
    layout: {
      background: { type: ColorType.Solid, color: isDark ? "#12161c" : "#ffffff" },
      textColor: isDark ? "#d8dde4" : "#1d232b",
      fontSize: 11,
      panes: { separatorColor: isDark ? "#2b3340" : "#dde1e6" },
    },
    grid: {
      vertLines: { color: isDark ? "#1e2530" : "#f0f2f5" },
      horzLines: { color: isDark ? "#1e2530" : "#f0f2f5" },
    },
    timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 2, minBarSpacing: 0.5 },
    rightPriceScale: { borderVisible: false },
    autoSize: true,
  } as const;
}

interface Toggles {
  overlays: Set<string>;
  panes: Set<Pane>;
}

function readToggles(params: URLSearchParams): Toggles {
  const overlays = params.get("overlays");
  const panes = params.get("panes");
  return {
    overlays: new Set(
      overlays === null ? ["sma20", "sma50", "bb"] : overlays.split(",").filter(Boolean),
    ),
    panes: new Set((panes === null ? ["rsi", "macd"] : panes.split(",").filter(Boolean)) as Pane[]),
  };
}

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
  const runName = `backtests/${route.id}`;
  const compareId = route.params.get("compare");
  const toggles = readToggles(route.params);

  const header = h(
    "div",
    { class: "view-head" },
    h("h1", { text: "Playback" }),
    h("code", { text: route.id }),
    h("span", { class: "muted", "data-testid": "run-summary", text: "loading run…" }),
  );
  const compareSelect = h(
    "select",
    { name: "compare", "aria-label": "Compare equity with" },
    h("option", { value: "", text: "compare equity with…" }),
  );
  const mainEl = h("div", { class: "chart main", "data-testid": "candles" });
  const equityEl = h("div", { class: "chart equity", "data-testid": "equity" });
  const mainOverlay = h(
    "div",
    { class: "chart-overlay", "data-testid": "candles-state" },
    h("div", { class: "status loading", text: "Loading candles…" }),
  );
  const equityOverlay = h(
    "div",
    { class: "chart-overlay", "data-testid": "equity-state" },
    h("div", { class: "status loading", text: "Loading equity…" }),
  );
  const cursorMain = h("div", { class: "cursor-line", hidden: true });
  const cursorEquity = h("div", { class: "cursor-line", hidden: true });
  const legend = h("div", { class: "legend", "data-testid": "legend" });
  mainEl.append(mainOverlay, cursorMain, legend);
  equityEl.append(equityOverlay, cursorEquity);
  const play = h("button", {
    type: "button",
    "data-testid": "play",
    text: "▶ Play",
    disabled: true,
  });
  const speed = h(
    "select",
    { name: "speed", "aria-label": "Speed" },
    ...SPEEDS.map(([v, label]) => h("option", { value: String(v), text: label })),
  );
  speed.value = route.params.get("speed") ?? "3600";
  const scrubber = h("input", {
    type: "range",
    name: "cursor",
    "aria-label": "Time cursor",
    title: "Space: play/pause · ←/→: one bar",
    disabled: true,
    "data-testid": "scrubber",
  });
  const cursorLabel = h("span", { class: "num", "data-testid": "cursor-time", text: "—" });
  const portfolio = h(
    "section",
    { class: "panel portfolio", "data-testid": "portfolio" },
    h("h2", { text: "Portfolio at cursor" }),
    h("div", {
      class: "status info",
      text: "Move the cursor (click the chart or drag the scrubber).",
    }),
  );
  const statsPanel = h("section", { class: "panel", "data-testid": "stats" });
  const togglePanel = h("section", { class: "panel" }, h("h2", { text: "Indicators" }));
  const fillsState = h("div", { class: "muted", "data-testid": "fills-state" });

  const overlayBoxes = OVERLAYS.map((o) => {
    const box = h("input", { type: "checkbox", name: o.key, checked: toggles.overlays.has(o.key) });
    box.addEventListener(
      "change",
      () => (box.checked ? toggles.overlays.add(o.key) : toggles.overlays.delete(o.key), rebuild()),
    );
    return h("label", {}, box, ` ${o.title}`);
  });
  const paneBoxes = PANES.map((p) => {
    const box = h("input", { type: "checkbox", name: p, checked: toggles.panes.has(p) });
    box.addEventListener(
      "change",
      () => (box.checked ? toggles.panes.add(p) : toggles.panes.delete(p), rebuild()),
    );
    return h("label", {}, box, ` ${p.toUpperCase()}`);
  });
  togglePanel.append(
    h("div", { class: "toggles" }, ...overlayBoxes),
    h("div", { class: "toggles" }, ...paneBoxes),
  );

  root.replaceChildren(
    header,
    h("div", { class: "transport" }, play, speed, scrubber, cursorLabel, compareSelect),
    h(
      "div",
      { class: "playback" },
      h("div", { class: "charts" }, mainEl, fillsState, equityEl),
      h("div", {}, portfolio, statsPanel, togglePanel),
    ),
  );

  // ---- state ----
  let run: RunSpan | null = null;
  let overview = emptyColumns();
  let shown: CandleColumns = overview;
  let loaded: Loaded | null = null;
  let fills: FillLike[] = [];
  let cursor: number | null = null;
  let playing = false;
  let windowAbort: AbortController | null = null;
  let equityOverview = emptyColumns();
  let equityShown = equityOverview;
  let syncing = false;
  let firstPaint = true;
  let contentVersion = "";
  const windows = new Lru<string, { fine: CandleColumns; bucket: number }>(24);

  // ---- charts ----
  const equityChart: IChartApi = createChart(equityEl, chartOptions(equityEl.clientHeight || 180));
  const equitySeries = equityChart.addSeries(LineSeries, {
    color: "#2962ff",
    lineWidth: 2,
    priceLineVisible: false,
    title: route.id.slice(0, 8),
  });
  let compareSeries: ISeriesApi<"Line"> | null = null;
  scope.add(() => equityChart.remove());

  let chart: IChartApi;
  let candles: ISeriesApi<"Candlestick">;
  let volume: ISeriesApi<"Histogram">;
  let lines = new Map<Indicator, ISeriesApi<"Line">>();
  let macdHist: ISeriesApi<"Histogram"> | null = null;
  let markers: ISeriesMarkersPluginApi<Time>;

  function build(): void {
    chart = createChart(mainEl, chartOptions(mainEl.clientHeight || 420));
    candles = chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      borderVisible: false,
      priceLineVisible: false,
    });
    volume = chart.addSeries(HistogramSeries, {
      priceScaleId: "volume",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    lines = new Map();
    macdHist = null;
    for (const overlay of OVERLAYS) {
      if (!toggles.overlays.has(overlay.key)) continue;
      for (const [indicator, color] of overlay.lines)
        lines.set(
          indicator,
          chart.addSeries(LineSeries, {
            color,
            lineWidth: 1,
            priceLineVisible: false,
            lastValueVisible: false,
            crosshairMarkerVisible: false,
          }),
        );
    }
    let pane = 1;
    if (toggles.panes.has("rsi")) {
      const rsi = chart.addSeries(
        LineSeries,
        { color: "#8e44ad", lineWidth: 1, priceLineVisible: false, title: "RSI 14" },
        pane++,
      );
      rsi.createPriceLine({
        price: 70,
        color: "#999",
        lineWidth: 1,
        lineStyle: 2,
        axisLabelVisible: false,
        title: "",
      });
      rsi.createPriceLine({
        price: 30,
        color: "#999",
        lineWidth: 1,
        lineStyle: 2,
        axisLabelVisible: false,
        title: "",
      });
      lines.set(Indicator.RSI_14, rsi);
    }
    if (toggles.panes.has("macd")) {
      macdHist = chart.addSeries(
        HistogramSeries,
        { priceLineVisible: false, lastValueVisible: false },
        pane,
      );
      lines.set(
        Indicator.MACD,
        chart.addSeries(
          LineSeries,
          { color: "#2962ff", lineWidth: 1, priceLineVisible: false, title: "MACD" },
          pane,
        ),
      );
      lines.set(
        Indicator.MACD_SIGNAL,
        chart.addSeries(
          LineSeries,
          { color: "#ff6d00", lineWidth: 1, priceLineVisible: false, title: "signal" },
          pane,
        ),
      );
      pane++;
    }
    if (toggles.panes.has("atr"))
      lines.set(
        Indicator.ATR_14,
        chart.addSeries(
          LineSeries,
          { color: "#546e7a", lineWidth: 1, priceLineVisible: false, title: "ATR 14" },
          pane++,
        ),
      );
    for (const [index, p] of chart.panes().entries()) p.setStretchFactor(index === 0 ? 3 : 1);
    markers = createSeriesMarkers(candles, []);
    chart.timeScale().subscribeVisibleTimeRangeChange(onRangeChange);
    chart.timeScale().subscribeVisibleLogicalRangeChange(placeCursor);
    chart.subscribeCrosshairMove((param) =>
      showLegend(param.time === undefined ? null : Number(param.time)),
    );
    chart.subscribeClick((param) => {
      if (param.time !== undefined) setCursor(Number(param.time), true);
    });
  }

  // OHLCV and indicator values of the bar under the pointer (the last bar otherwise).
  function showLegend(time: number | null): void {
    const data = shown;
    if (data.times.length === 0) return legend.replaceChildren();
    const i = time === null ? data.times.length - 1 : Math.max(0, bucketIndex(data.times, time));
    const price = (v: number | undefined) =>
      v === undefined || !Number.isFinite(v)
        ? "—"
        : v.toLocaleString(undefined, { maximumFractionDigits: 8 });
    const parts: Array<[string, string, string?]> = [
      ["", formatTime(data.times[i]!, false)],
      ["O", price(data.open[i])],
      ["H", price(data.high[i])],
      ["L", price(data.low[i])],
      ["C", price(data.close[i])],
      ["V", price(data.volume[i])],
    ];
    for (const overlay of OVERLAYS)
      if (toggles.overlays.has(overlay.key))
        for (const [indicator, color] of overlay.lines.slice(0, overlay.key === "bb" ? 3 : 1))
          parts.push([
            (Indicator[indicator] ?? "")
              .replace(/_/g, " ")
              .replace("BOLLINGER ", "BB ")
              .toLowerCase(),
            price(data.indicators.get(indicator)?.[i]),
            color,
          ]);
    legend.replaceChildren(
      ...parts.map(([k, v, color]) => {
        const span = h("span", {}, k ? h("b", { text: `${k} ` }) : "", v);
        if (color !== undefined) span.style.color = color;
        return span;
      }),
    );
  }

  // autoSize learns the chart's width on a later frame: fit now and again once it is known.
  function fit(api: IChartApi): void {
    api.timeScale().fitContent();
    requestAnimationFrame(() => requestAnimationFrame(() => api.timeScale().fitContent()));
  }

  function rebuild(): void {
    const range = chart.timeScale().getVisibleRange();
    chart.remove();
    build();
    draw(shown);
    if (range !== null) chart.timeScale().setVisibleRange(range);
    const params: Record<string, string> = {
      overlays: [...toggles.overlays].join(","),
      panes: [...toggles.panes].join(","),
    };
    if (compareId) params.compare = compareId;
    history.replaceState(null, "", formatRoute("playback", route.id, params));
  }

  build();
  scope.add(() => chart.remove());

  // ---- drawing ----
  function draw(data: CandleColumns): void {
    const started = performance.now();
    shown = data;
    const n = data.times.length;
    const candleData = new Array(n);
    const volumeData = new Array(n);
    for (let i = 0; i < n; i++) {
      const time = t(data.times[i]!);
      const up = data.close[i]! >= data.open[i]!;
      candleData[i] = {
        time,
        open: data.open[i]!,
        high: data.high[i]!,
        low: data.low[i]!,
        close: data.close[i]!,
      };
      volumeData[i] = {
        time,
        value: data.volume[i]!,
        color: up ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
      };
    }
    candles.setData(candleData);
    volume.setData(volumeData);
    for (const [indicator, series] of lines) series.setData(lineData(data, indicator));
    if (macdHist !== null) {
      const values = data.indicators.get(Indicator.MACD_HISTOGRAM) ?? [];
      macdHist.setData(
        data.times.map((time, i) =>
          Number.isFinite(values[i])
            ? {
                time: t(time),
                value: values[i]!,
                color: values[i]! >= 0 ? "rgba(38,166,154,0.6)" : "rgba(239,83,80,0.6)",
              }
            : { time: t(time) },
        ),
      );
    }
    drawMarkers();
    showLegend(null);
    mainEl.dataset.points = String(n);
    placeCursor();
    // User timing, read by bench/web: what handing the chart a new data set costs.
    performance.measure("tapedeck:draw", { start: started });
  }

  function lineData(data: CandleColumns, indicator: Indicator) {
    const values = data.indicators.get(indicator) ?? [];
    return data.times.map((time, i) =>
      Number.isFinite(values[i]) ? { time: t(time), value: values[i]! } : { time: t(time) },
    );
  }

  function drawMarkers(): void {
    const all = fillMarkers(fills, shown.times);
    // Labels only when they fit; arrows always (hover the candle for the portfolio).
    const labelled = all.length <= 40;
    const list: SeriesMarker<Time>[] = all.map((m) => ({
      time: t(m.time),
      position: m.side === "buy" ? "belowBar" : "aboveBar",
      shape: m.side === "buy" ? "arrowUp" : "arrowDown",
      color: m.side === "buy" ? UP : DOWN,
      text: labelled ? m.text : "",
      size: 0.8,
    }));
    mainEl.dataset.markers = String(list.length);
    markers.setMarkers(list);
  }

  function drawEquity(data: CandleColumns): void {
    equityShown = data;
    equitySeries.setData(data.times.map((time, i) => ({ time: t(time), value: data.close[i]! })));
    equityEl.dataset.points = String(data.times.length);
  }

  // ---- lazy loading ----
  let rangeTimer = 0;
  function onRangeChange(): void {
    const view = visible();
    if (view !== null) mainEl.dataset.visible = `${Math.round(view.from)}-${Math.round(view.to)}`;
    if (!syncing) {
      const range = chart.timeScale().getVisibleRange();
      if (range !== null && equityShown.times.length > 0) {
        syncing = true;
        equityChart.timeScale().setVisibleRange(range);
        syncing = false;
      }
    }
    placeCursor();
    window.clearTimeout(rangeTimer);
    rangeTimer = window.setTimeout(refine, 120);
  }
  scope.add(() => window.clearTimeout(rangeTimer));

  function visible(): { from: number; to: number; widthPx: number } | null {
    const range = chart.timeScale().getVisibleLogicalRange();
    if (range === null || shown.times.length === 0) return null;
    // Logical indexes over mixed-resolution data: map both ends to times by interpolation.
    const at = (logical: number): number => {
      const i = Math.max(0, Math.min(shown.times.length - 1, Math.floor(logical)));
      const next = shown.times[i + 1] ?? shown.times[i]! + (run?.overviewBucket ?? 60);
      return shown.times[i]! + (next - shown.times[i]!) * Math.max(0, Math.min(1, logical - i));
    };
    return { from: at(range.from), to: at(range.to), widthPx: chart.timeScale().width() };
  }

  function refine(): void {
    if (run === null) return;
    const view = visible();
    if (view === null) return;
    const plan = planWindow(view, run, loaded, SPACING);
    if (plan.kind === "keep") return;
    windowAbort?.abort();
    windowAbort = null;
    if (plan.kind === "overview") {
      if (loaded === null) return;
      loaded = null;
      replaceKeepingView(overview);
      drawEquity(equityOverview);
      void loadFills(null);
      return;
    }
    const abort = new AbortController();
    windowAbort = abort;
    scope.signal.addEventListener("abort", () => abort.abort());
    void (async () => {
      try {
        const key = `${contentVersion}:${plan.from}:${plan.to}:${plan.maxCandles}`;
        let cached = windows.get(key);
        if (cached === undefined) {
          const fine = emptyColumns();
          let bucket = run.sourceBucket;
          const range = {
            startTime: secondsToTimestamp(plan.from),
            endTime: secondsToTimestamp(plan.to),
          };
          for await (const message of clients.backtest.streamCandles(
            {
              backtest: runName,
              timeRange: range,
              maxCandles: plan.maxCandles,
              indicators: INDICATORS,
            },
            { signal: abort.signal },
          )) {
            if (message.chunk !== undefined) appendChunk(fine, message.chunk);
            bucket = Number(message.bucketWidthNanos) / 1e9 || bucket;
          }
          if (abort.signal.aborted) return;
          cached = { fine, bucket };
          // Only a finished run's data is immutable; its content version is fixed.
          if (contentVersion !== "") windows.set(key, cached);
        }
        const { fine, bucket } = cached;
        loaded = { from: plan.from, to: plan.to, bucket };
        replaceKeepingView(spliceWindow(overview, fine, plan.from, plan.to));
        void loadEquityWindow(plan.from, plan.to, abort.signal);
        void loadFills({ from: plan.from, to: plan.to });
      } catch (error) {
        if (!abort.signal.aborted)
          setStatus(fillsState, "error", `Loading detail: ${describeError(error)}`);
      }
    })();
  }

  function replaceKeepingView(data: CandleColumns): void {
    const range = chart.timeScale().getVisibleRange();
    syncing = true;
    draw(data);
    if (range !== null) chart.timeScale().setVisibleRange(range);
    syncing = false;
  }

  async function loadEquityWindow(from: number, to: number, signal: AbortSignal): Promise<void> {
    try {
      const fine = emptyColumns();
      await streamEquity(
        runName,
        fine,
        { from, to },
        3 * Math.max(100, Math.floor(equityChart.timeScale().width())),
        signal,
      );
      if (signal.aborted) return;
      const range = equityChart.timeScale().getVisibleRange();
      drawEquity(spliceWindow(equityOverview, fine, from, to));
      if (range !== null) equityChart.timeScale().setVisibleRange(range);
    } catch {
      // the overview stays; the overview load reports errors
    }
  }

  async function streamEquity(
    name: string,
    into: CandleColumns,
    window: { from: number; to: number } | null,
    maxPoints: number,
    signal: AbortSignal,
  ): Promise<void> {
    const timeRange =
      window === null
        ? undefined
        : { startTime: secondsToTimestamp(window.from), endTime: secondsToTimestamp(window.to) };
    for await (const message of clients.backtest.streamEquity(
      { backtest: name, timeRange, maxPoints },
      { signal },
    )) {
      const chunk = message.chunk;
      if (chunk === undefined) continue;
      appendChunk(into, {
        times: chunk.times,
        open: chunk.equity,
        high: chunk.equity,
        low: chunk.equity,
        close: chunk.equity,
        volume: [],
        indicators: [],
      });
    }
  }

  let fillsAbort: AbortController | null = null;
  async function loadFills(window: { from: number; to: number } | null): Promise<void> {
    fillsAbort?.abort();
    const abort = new AbortController();
    fillsAbort = abort;
    try {
      const collected: FillLike[] = [];
      let token = "";
      let pages = 0;
      const timeRange =
        window === null
          ? undefined
          : { startTime: secondsToTimestamp(window.from), endTime: secondsToTimestamp(window.to) };
      do {
        const page = await clients.backtest.listFills(
          { backtest: runName, timeRange, pageSize: 10_000, pageToken: token },
          { signal: abort.signal },
        );
        for (const fill of page.fills)
          collected.push({
            time: timestampSeconds(fill.time) ?? 0,
            side: fill.side === OrderSide.SELL ? "sell" : "buy",
            quantity: formatDecimal(fill.quantity, { group: false }),
            price: formatDecimal(fill.price, { maxFractionDigits: 8 }),
          });
        token = page.nextPageToken;
        pages++;
      } while (token !== "" && pages < 5);
      fills = collected;
      drawMarkers();
      setStatus(
        fillsState,
        "info",
        `${collected.length.toLocaleString()}${token !== "" ? "+" : ""} fills ${window === null ? "in the run" : "in view"}${token !== "" ? " (zoom in to see all)" : ""}`,
      );
    } catch (error) {
      if (!abort.signal.aborted) setStatus(fillsState, "error", `Fills: ${describeError(error)}`);
    }
  }

  // ---- cursor ----
  const portfolioRequests = new Latest<number, PortfolioState | undefined>(
    async (time) =>
      (
        await clients.backtest.getPortfolioState(
          { backtest: runName, time: secondsToTimestamp(time) },
          { signal: scope.signal },
        )
      ).state,
    (time, result) => showPortfolio(time, result),
  );

  // A person reads the panel a few times a second: ask at most every 100 ms while the cursor
  // moves, and always for where it stops.
  const portfolioAsks = new Throttle(100, () => {
    if (cursor !== null) portfolioRequests.request(cursor);
  });
  scope.add(() => portfolioAsks.cancel());

  function setCursor(time: number, fetch: boolean): void {
    if (run === null) return;
    cursor = Math.max(run.start, Math.min(run.end, time));
    const value = String(cursor);
    if (scrubber.value !== value) scrubber.value = value;
    const label = formatTime(cursor);
    if (cursorLabel.textContent !== label) cursorLabel.textContent = label;
    placeCursor();
    if (fetch) portfolioAsks.trigger();
  }

  function coordinate(api: IChartApi, data: CandleColumns, time: number): number | null {
    const range = api.timeScale().getVisibleLogicalRange();
    if (range === null) return null;
    return timeToX(
      data.times,
      time,
      { from: range.from, to: range.to },
      api.timeScale().width(),
      loaded?.bucket ?? run?.overviewBucket ?? 60,
    );
  }

  function placeCursor(): void {
    for (const [api, data, line] of [
      [chart, shown, cursorMain],
      [equityChart, equityShown, cursorEquity],
    ] as const) {
      const x = cursor === null ? null : coordinate(api, data, cursor);
      line.hidden = x === null || x < 0 || x > api.timeScale().width();
      // transform, not left: moving the line is compositing only, the charts' canvases are not repainted.
      if (x !== null) line.style.transform = `translateX(${x.toFixed(1)}px)`;
    }
  }

  function showPortfolio(
    time: number,
    result: { ok: true; value: PortfolioState | undefined } | { ok: false; error: unknown },
  ): void {
    const heading = h("h2", { text: "Portfolio at cursor" });
    if (!result.ok) {
      portfolio.replaceChildren(
        heading,
        h("div", { class: "status error", role: "alert", text: describeError(result.error) }),
      );
      return;
    }
    const state = result.value;
    if (state === undefined) {
      portfolio.replaceChildren(
        heading,
        h("div", { class: "status empty", text: "No portfolio at this instant." }),
      );
      return;
    }
    const money = (s: string) => formatDecimal(s, { maxFractionDigits: 2, minFractionDigits: 2 });
    const item = (label: string, field: string, value: string, cls = "", raw = value) => [
      h("dt", { text: label }),
      h("dd", { "data-field": field, "data-raw": raw, class: cls, text: value }),
    ];
    const signed = (s: string) => (s.startsWith("-") ? "mismatch" : "ok");
    const positions = h(
      "table",
      { class: "grid", "data-testid": "positions" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Qty", "Avg", "Mark", "Unreal."].map((x) => h("th", { class: "num", text: x })),
        ),
      ),
    );
    const body = h("tbody");
    for (const p of state.positions) {
      body.append(h("tr", {}, h("td", { colspan: 4, class: "instrument", text: p.instrumentId })));
      body.append(
        h(
          "tr",
          {},
          h("td", { class: "num", text: formatDecimal(p.quantity) }),
          h("td", { class: "num", text: money(p.averagePrice) }),
          h("td", { class: "num", text: money(p.markPrice) }),
          h("td", { class: `num ${signed(p.unrealizedPnl)}`, text: money(p.unrealizedPnl) }),
        ),
      );
    }
    if (state.positions.length === 0)
      body.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "no open position" })));
    positions.append(body);
    const list = h(
      "dl",
      {},
      ...item("Time", "time", formatTime(timestampSeconds(state.time) ?? time)),
      ...item("Equity", "equity", money(state.equity), "", state.equity),
      ...state.cash.flatMap((c) =>
        item(
          `Cash ${c.currency}`,
          `cash-${c.currency}`,
          formatDecimal(c.amount, { maxFractionDigits: 8 }),
        ),
      ),
      ...item(
        "Realized PnL",
        "realized",
        money(state.realizedPnl),
        signed(state.realizedPnl),
        state.realizedPnl,
      ),
      ...item(
        "Unrealized PnL",
        "unrealized",
        money(state.unrealizedPnl),
        signed(state.unrealizedPnl),
        state.unrealizedPnl,
      ),
      ...item("Fees", "fees", money(state.fees), "", state.fees),
      ...item("Fills", "fills", state.fillCount.toString()),
    );
    // Patch the panel in place when its shape is unchanged: no layout churn while playing.
    const current = portfolio.querySelector("dl");
    const currentRows = portfolio.querySelector("tbody");
    if (
      current !== null &&
      currentRows !== null &&
      current.children.length === list.children.length &&
      currentRows.children.length === body.children.length
    ) {
      patch(current, list);
      patch(currentRows, body);
      return;
    }
    portfolio.replaceChildren(heading, list, positions);
  }

  function patch(target: Element, source: Element): void {
    const from = source.querySelectorAll("dd, td");
    const to = target.querySelectorAll("dd, td");
    from.forEach((cell, i) => {
      const old = to[i];
      if (old === undefined) return;
      if (old.textContent !== cell.textContent) old.textContent = cell.textContent;
      if (old.className !== cell.className) old.className = cell.className;
      const raw = cell.getAttribute("data-raw");
      if (raw !== null && old.getAttribute("data-raw") !== raw) old.setAttribute("data-raw", raw);
    });
  }

  scrubber.addEventListener("input", () => {
    setCursor(Number(scrubber.value), true);
    keepCursorInView();
  });

  function keepCursorInView(): void {
    const view = visible();
    if (view === null || cursor === null) return;
    const span = view.to - view.from;
    if (cursor < view.from || cursor > view.from + span * 0.9) {
      chart
        .timeScale()
        .setVisibleRange({ from: t(cursor - span * 0.1), to: t(cursor + span * 0.9) });
    }
  }

  // ---- play ----
  let frame = 0;
  let last = 0;
  function tick(now: number): void {
    if (!playing || run === null || cursor === null) return;
    const elapsed = last === 0 ? 0 : now - last;
    last = now;
    const next = advanceCursor(cursor, elapsed, Number(speed.value), run.end);
    setCursor(next, true);
    keepCursorInView();
    if (next >= run.end) stop();
    else frame = requestAnimationFrame(tick);
  }
  function stop(): void {
    playing = false;
    cancelAnimationFrame(frame);
    play.textContent = "▶ Play";
    play.setAttribute("aria-pressed", "false");
  }
  play.addEventListener("click", () => {
    if (run === null) return;
    if (playing) return stop();
    if (cursor === null || cursor >= run.end) setCursor(run.start, true);
    playing = true;
    last = 0;
    play.textContent = "❚❚ Pause";
    play.setAttribute("aria-pressed", "true");
    frame = requestAnimationFrame(tick);
  });
  const keys = (event: KeyboardEvent) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement)
      return;
    if (event.key === " ") {
      event.preventDefault();
      play.click();
    } else if (
      (event.key === "ArrowLeft" || event.key === "ArrowRight") &&
      run !== null &&
      cursor !== null
    ) {
      // One bar of the finest loaded resolution per press.
      event.preventDefault();
      const step = loaded?.bucket ?? run.sourceBucket;
      setCursor(cursor + (event.key === "ArrowRight" ? step : -step), true);
      keepCursorInView();
    }
  };
  window.addEventListener("keydown", keys);
  scope.add(() => {
    stop();
    window.removeEventListener("keydown", keys);
    windowAbort?.abort();
    fillsAbort?.abort();
  });

  // ---- loading ----
  function showStats(backtest: Backtest): void {
    const s = backtest.stats;
    const summary = root.querySelector<HTMLElement>("[data-testid=run-summary]");
    if (summary !== null)
      summary.textContent = `${backtest.spec?.strategy.replace(/^strategies\//, "") ?? ""} · ${(BacktestState[backtest.state] ?? "").toLowerCase()}`;
    if (s === undefined) {
      statsPanel.replaceChildren(
        h("h2", { text: "Run" }),
        h("div", {
          class: "status empty",
          text:
            backtest.state === BacktestState.SUCCEEDED
              ? "No statistics stored for this run."
              : "No statistics until the run has finished.",
        }),
      );
      return;
    }
    const rows: Array<[string, string]> = [
      ["Return", formatPercent(s.totalReturn)],
      ["PnL", formatDecimal(s.pnl, { maxFractionDigits: 2 })],
      ["Sharpe", s.sharpeRatio.toFixed(2)],
      ["Max drawdown", formatPercent(s.maxDrawdown)],
      ["Win rate", formatPercent(s.winRate)],
      ["Trades", s.tradeCount.toString()],
      ["Fees", formatDecimal(s.fees, { maxFractionDigits: 2 })],
    ];
    statsPanel.replaceChildren(
      h("h2", { text: "Run" }),
      h(
        "dl",
        { class: "portfolio" },
        ...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]),
      ),
    );
    statsPanel.classList.add("portfolio");
  }

  async function loadOverview(): Promise<void> {
    const { backtest } = await clients.backtest.getBacktest(
      { name: runName },
      { signal: scope.signal },
    );
    if (backtest === undefined) throw new Error("run not found");
    showStats(backtest);
    contentVersion = backtest.contentVersion;
    if (backtest.state !== BacktestState.SUCCEEDED) {
      mainOverlay.replaceChildren(
        h("div", {
          class: "status info",
          text: `This run is ${(BacktestState[backtest.state] ?? "").toLowerCase()}: playback opens once it has succeeded.`,
        }),
      );
      equityOverlay.hidden = true;
      return;
    }
    const sourceBucket = Number(backtest.spec?.barInterval?.seconds ?? 60n) || 60;
    const width = chart.timeScale().width() || mainEl.clientWidth || 800;
    let bucket = sourceBucket;
    const data = emptyColumns();
    for await (const message of clients.backtest.streamCandles(
      { backtest: runName, maxCandles: capacity(width, SPACING / 1.5), indicators: INDICATORS },
      { signal: scope.signal },
    )) {
      if (message.chunk !== undefined) appendChunk(data, message.chunk);
      bucket = Number(message.bucketWidthNanos) / 1e9 || bucket;
      if (firstPaint && data.times.length > 0) {
        // Paint the first chunk at once; later chunks extend it.
        draw(data);
        mainOverlay.hidden = true;
      }
    }
    overview = data;
    if (data.times.length === 0) {
      mainOverlay.hidden = false;
      mainOverlay.replaceChildren(
        h("div", { class: "status empty", text: "This run has no candles." }),
      );
      return;
    }
    run = {
      start: data.times[0]!,
      end: data.times[data.times.length - 1]! + bucket,
      overviewBucket: bucket,
      sourceBucket,
    };
    draw(overview);
    fit(chart);
    mainOverlay.hidden = true;
    if (firstPaint) {
      firstPaint = false;
      requestAnimationFrame(() => performance.mark("tapedeck:chart-painted"));
    }
    scrubber.min = String(run.start);
    scrubber.max = String(run.end);
    scrubber.step = String(sourceBucket);
    scrubber.disabled = false;
    play.disabled = false;
    setCursor(run.start, true);
    void loadFills(null);
  }

  async function loadEquity(): Promise<void> {
    const data = emptyColumns();
    await streamEquity(
      runName,
      data,
      null,
      Math.max(100, Math.floor(equityEl.clientWidth || 800)),
      scope.signal,
    );
    equityOverview = data;
    drawEquity(data);
    fit(equityChart);
    equityOverlay.hidden = true;
    if (data.times.length === 0) {
      equityOverlay.hidden = false;
      equityOverlay.replaceChildren(
        h("div", { class: "status empty", text: "This run has no equity points." }),
      );
    }
  }

  async function loadCompare(otherId: string): Promise<void> {
    const data = emptyColumns();
    await streamEquity(
      `backtests/${otherId}`,
      data,
      null,
      Math.max(100, Math.floor(equityEl.clientWidth || 800)),
      scope.signal,
    );
    compareSeries = equityChart.addSeries(LineSeries, {
      color: "#ff6d00",
      lineWidth: 2,
      priceLineVisible: false,
      title: otherId.slice(0, 8),
    });
    compareSeries.setData(data.times.map((time, i) => ({ time: t(time), value: data.close[i]! })));
    equityEl.dataset.compare = otherId;
    // Two runs with different capital compare as returns.
    equityChart.priceScale("right").applyOptions({ mode: PriceScaleMode.Percentage });
    fit(equityChart);
  }

  equityChart.timeScale().subscribeVisibleTimeRangeChange((range) => {
    placeCursor();
    if (syncing || range === null || shown.times.length === 0) return;
    syncing = true;
    chart.timeScale().setVisibleRange(range);
    syncing = false;
  });

  void loadOverview().catch((error: unknown) => {
    if (scope.signal.aborted) return;
    mainOverlay.hidden = false;
    mainOverlay.replaceChildren(
      h("div", { class: "status error", role: "alert", text: `Candles: ${describeError(error)}` }),
    );
  });
  void loadEquity().catch((error: unknown) => {
    if (scope.signal.aborted) return;
    equityOverlay.hidden = false;
    equityOverlay.replaceChildren(
      h("div", { class: "status error", role: "alert", text: `Equity: ${describeError(error)}` }),
    );
  });
  if (compareId)
    void loadCompare(compareId).catch((error: unknown) => {
      if (!scope.signal.aborted) setStatus(fillsState, "error", `Compare: ${describeError(error)}`);
    });

  // Runs to compare with.
  void clients.backtest
    .listBacktests({ pageSize: 200, states: [BacktestState.SUCCEEDED] }, { signal: scope.signal })
    .then(({ backtests }) => {
      for (const b of backtests) {
        const id = b.name.split("/").pop() ?? "";
        if (id === route.id) continue;
        compareSelect.append(
          h("option", {
            value: id,
            text: `${id.slice(0, 8)} · ${b.spec?.strategy.replace(/^strategies\//, "") ?? ""} · ${b.stats ? formatPercent(b.stats.totalReturn) : ""}`,
          }),
        );
      }
      compareSelect.value = compareId ?? "";
    })
    .catch(() => undefined);
  compareSelect.addEventListener("change", () => {
    location.hash = formatRoute("playback", route.id, {
      compare: compareSelect.value,
      overlays: [...toggles.overlays].join(","),
      panes: [...toggles.panes].join(","),
    });
  });
}

function renderPicker(root: HTMLElement, clients: Clients, scope: Scope): void {
  const list = h("div", {}, h("div", { class: "status loading", text: "Loading finished runs…" }));
  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Playback" })),
    h("section", { class: "panel" }, h("h2", { text: "Choose a finished run" }), list),
  );
  void clients.backtest
    .listBacktests({ pageSize: 200, states: [BacktestState.SUCCEEDED] }, { signal: scope.signal })
    .then(({ backtests }) => {
      if (backtests.length === 0) {
        list.replaceChildren(
          h(
            "div",
            { class: "status empty" },
            "No finished runs yet. ",
            h("a", { href: formatRoute("runs"), text: "Launch one" }),
            ".",
          ),
        );
        return;
      }
      list.replaceChildren(
        h(
          "ul",
          {},
          ...backtests.map((b) => {
            const id = b.name.split("/").pop() ?? "";
            return h(
              "li",
              {},
              h("a", { href: formatRoute("playback", id), text: id }),
              ` ${b.spec?.strategy.replace(/^strategies\//, "") ?? ""} · ${b.stats ? formatPercent(b.stats.totalReturn) : ""} · ${formatTime(timestampSeconds(b.endTime), false)}`,
            );
          }),
        ),
      );
    })
    .catch((error: unknown) => {
      if (!scope.signal.aborted)
        list.replaceChildren(
          h("div", { class: "status error", role: "alert", text: describeError(error) }),
        );
    });
}
