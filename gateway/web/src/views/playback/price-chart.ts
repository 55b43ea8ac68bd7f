// The price chart: candles with volume, the overlays and indicator panes that are on, fills as
// markers, the legend of the bar under the pointer, and the cursor line. It draws the playback
// state's `candles` (never more bars than the screen can show, see lib/series.ts).
import {
  CandlestickSeries,
  createChart,
  createSeriesMarkers,
  HistogramSeries,
  LineSeries,
  type IChartApi,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type Time,
} from "lightweight-charts";
import { Indicator } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { legendItems, legendBar, OVERLAYS, type Toggles } from "../../lib/indicators";
import {
  lastBucket,
  openingView,
  shownBars,
  shownFills,
  type PlaybackState,
} from "../../lib/playback";
import { fillMarkers, type CandleColumns, type Visible } from "../../lib/series";
import type { Store } from "../../lib/store";
import { h } from "../../ui/dom";
import type { ChartFrame } from "./frame";
import type { TimeLink, TimeRange } from "../../lib/timelink";
import {
  chartOptions,
  cursorX,
  DOWN,
  fillSeriesMarkers,
  priceLocalization,
  Span,
  t,
  UP,
} from "./chart-base";

export interface PriceChartEvents {
  // The span in view moved (zoom, scroll, new data, or set by Tapedeck).
  onRangeChange: () => void;
  onClick: (time: number) => void;
}

// Labels on markers only when they fit; arrows always (hover the candle for the portfolio).
// A replay appends the bars the cursor passed one by one, up to this many or as many as are drawn
// already (whichever is more); a longer jump redraws.
const MIN_APPENDED_BARS = 64;

interface Series {
  api: IChartApi;
  candles: ISeriesApi<"Candlestick">;
  volume: ISeriesApi<"Histogram">;
  lines: Map<Indicator, ISeriesApi<"Line">>;
  macdHistogram: ISeriesApi<"Histogram"> | null;
  markers: ISeriesMarkersPluginApi<Time>;
}

const volumeColor = (data: CandleColumns, i: number) =>
  data.close[i]! >= data.open[i]! ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)";

// Bar i of each series, as lightweight-charts takes it (whitespace where an indicator is undefined).
function candleAt(data: CandleColumns, i: number) {
  const [open, high, low, close] = [data.open[i]!, data.high[i]!, data.low[i]!, data.close[i]!];
  return { time: t(data.times[i]!), open, high, low, close };
}

function volumeAt(data: CandleColumns, i: number) {
  return { time: t(data.times[i]!), value: data.volume[i]!, color: volumeColor(data, i) };
}

function lineAt(data: CandleColumns, indicator: Indicator, i: number) {
  const value = data.indicators.get(indicator)?.[i];
  const time = t(data.times[i]!);
  return value !== undefined && Number.isFinite(value) ? { time, value } : { time };
}

function macdAt(data: CandleColumns, i: number) {
  const value = data.indicators.get(Indicator.MACD_HISTOGRAM)?.[i];
  const time = t(data.times[i]!);
  if (value === undefined || !Number.isFinite(value)) return { time };
  return { time, value, color: value >= 0 ? "rgba(38,166,154,0.6)" : "rgba(239,83,80,0.6)" };
}

function bars<T>(n: number, at: (i: number) => T): T[] {
  const out = new Array<T>(n);
  for (let i = 0; i < n; i++) out[i] = at(i);
  return out;
}

export class PriceChart {
  private readonly legend = h("div", { class: "legend", "data-testid": "legend" });
  private series: Series;
  private shown = 0; // bars drawn: a prefix of the state's candles in replay
  private marked = -1; // fills marked
  private hovering = false;
  private readonly span = new Span(() => this.series.api);
  private readonly unsubscribe: () => void;

  // `frame` is in the page already: the chart sizes itself to it.
  constructor(
    private readonly frame: ChartFrame,
    private readonly store: Store<PlaybackState>,
    private readonly link: TimeLink,
    private readonly events: PriceChartEvents,
  ) {
    this.frame.element.append(this.legend);
    this.frame.showNotice(store.state.notices.candles);
    this.series = this.build(store.state.toggles);
    this.unsubscribe = store.subscribe((next, previous) => this.render(next, previous));
  }

  private get element(): HTMLElement {
    return this.frame.element;
  }

  dispose(): void {
    this.unsubscribe();
    this.series.api.remove();
  }

  private render(state: PlaybackState, previous: PlaybackState): void {
    if (state.notices.candles !== previous.notices.candles)
      this.frame.showNotice(state.notices.candles);
    if (state.precision !== previous.precision) {
      const localization = priceLocalization(state.precision.price);
      this.series.api.applyOptions({ localization });
      if (!this.hovering) this.showLegend(null);
    }
    if (state.toggles !== previous.toggles) this.rebuild(state, previous);
    else if (state.candles !== previous.candles || state.mode !== previous.mode) {
      // Once the run is known a new data set (a window, or the overview again) keeps the view.
      if (previous.run !== null) this.keepingView(previous, () => this.draw(state));
      else this.draw(state);
      // The run is known: open on the same span every time.
      if (previous.run === null && state.run !== null && state.cursor !== null)
        this.setVisibleRange(openingView(state.run, state.cursor));
    } else if (state.cursor !== previous.cursor || state.fills !== previous.fills) {
      if (shownBars(state) !== this.shown) this.replayTo(state, previous);
      if (state.fills !== previous.fills || shownFills(state) !== this.marked)
        this.drawMarkers(state);
      this.placeCursor();
      // Playing moves the cursor every frame: redraw the legend only when it reaches a new bar.
      const bar = legendBar(state.candles, state.cursor);
      if (!this.hovering && String(bar?.time ?? "") !== this.legend.dataset.time)
        this.showLegend(null);
    }
  }

  // The replay's cursor moved: append the bars it passed (series.update, no redraw), or redraw
  // after a jump back, or forward by more bars than are drawn already.
  private replayTo(state: PlaybackState, previous: PlaybackState): void {
    const n = shownBars(state);
    if (n < this.shown || n - this.shown > Math.max(MIN_APPENDED_BARS, this.shown)) {
      this.keepingView(previous, () => this.draw(state));
      return;
    }
    const data = state.candles;
    const { api, candles, volume, lines, macdHistogram } = this.series;
    const range = this.span.current(previous.candles.times, lastBucket(previous));
    const before = api.timeScale().getVisibleLogicalRange();
    this.link.quietly(() => {
      for (let i = this.shown; i < n; i++) {
        candles.update(candleAt(data, i));
        volume.update(volumeAt(data, i));
        for (const [indicator, series] of lines) series.update(lineAt(data, indicator, i));
        macdHistogram?.update(macdAt(data, i));
      }
      // Should the chart have shifted as bars arrived, it goes back to the span it showed (at
      // most once per frame: the cursor moves once per frame).
      const after = api.timeScale().getVisibleLogicalRange();
      const moved = before?.from !== after?.from || before?.to !== after?.to;
      if (range !== null && moved) this.span.show(data.times, lastBucket(state), range);
    });
    this.shown = n;
    this.element.dataset.points = String(n);
    this.element.dataset.last = String(data.times[n - 1] ?? "");
  }

  private build(toggles: Toggles): Series {
    const height = this.element.clientHeight || 420;
    const api = createChart(this.element, chartOptions(height, this.store.state.precision.price));
    const candles = api.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      borderVisible: false,
      priceLineVisible: false,
    });
    const volume = api.addSeries(HistogramSeries, {
      priceScaleId: "volume",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    api.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    const lines = new Map<Indicator, ISeriesApi<"Line">>();
    let macdHistogram: ISeriesApi<"Histogram"> | null = null;
    const line = { lineWidth: 1, priceLineVisible: false } as const;
    for (const overlay of OVERLAYS) {
      if (!toggles.overlays.has(overlay.key)) continue;
      for (const [indicator, color] of overlay.lines)
        lines.set(
          indicator,
          api.addSeries(LineSeries, {
            ...line,
            color,
            lastValueVisible: false,
            crosshairMarkerVisible: false,
          }),
        );
    }
    let pane = 1;
    if (toggles.panes.has("rsi")) {
      const rsi = api.addSeries(LineSeries, { ...line, color: "#8e44ad", title: "RSI 14" }, pane++);
      for (const price of [70, 30])
        rsi.createPriceLine({
          price,
          color: "#999",
          lineWidth: 1,
          lineStyle: 2,
          axisLabelVisible: false,
          title: "",
        });
      lines.set(Indicator.RSI_14, rsi);
    }
    if (toggles.panes.has("macd")) {
      macdHistogram = api.addSeries(
        HistogramSeries,
        { priceLineVisible: false, lastValueVisible: false },
        pane,
      );
      lines.set(
        Indicator.MACD,
        api.addSeries(LineSeries, { ...line, color: "#2962ff", title: "MACD" }, pane),
      );
      lines.set(
        Indicator.MACD_SIGNAL,
        api.addSeries(LineSeries, { ...line, color: "#ff6d00", title: "signal" }, pane),
      );
      pane++;
    }
    if (toggles.panes.has("atr"))
      lines.set(
        Indicator.ATR_14,
        api.addSeries(LineSeries, { ...line, color: "#546e7a", title: "ATR 14" }, pane++),
      );
    for (const [index, p] of api.panes().entries()) p.setStretchFactor(index === 0 ? 3 : 1);
    const markers = createSeriesMarkers(candles, []);
    api.timeScale().subscribeVisibleLogicalRangeChange(() => {
      const view = this.visible();
      if (view !== null)
        this.element.dataset.visible = `${Math.round(view.from)}-${Math.round(view.to)}`;
      this.placeCursor();
      this.events.onRangeChange();
    });
    api.subscribeCrosshairMove((param) => {
      const time = param.time === undefined ? null : Number(param.time);
      this.hovering = time !== null;
      this.element.dataset.crosshair = time === null ? "" : String(time);
      this.showLegend(time);
    });
    api.subscribeClick((param) => {
      if (param.time !== undefined) this.events.onClick(Number(param.time));
    });
    return { api, candles, volume, lines, macdHistogram, markers };
  }

  // Toggling an overlay or a pane builds the chart anew, on the same times.
  private rebuild(state: PlaybackState, previous: PlaybackState): void {
    this.keepingView(previous, () => {
      this.series.api.remove();
      this.series = this.build(state.toggles);
      this.draw(state);
    });
  }

  // Redraws keeping the same span of time in view, to the fraction of a bar, however the bars
  // under it changed (finer, coarser, fewer in a replay).
  private keepingView(previous: PlaybackState, change: () => void): void {
    const range = this.span.current(previous.candles.times, lastBucket(previous));
    this.link.quietly(() => {
      change();
      if (range !== null) this.setVisibleRange(range);
    });
  }

  private draw(state: PlaybackState): void {
    const started = performance.now();
    const data = state.candles;
    const { candles, volume, lines, macdHistogram } = this.series;
    const n = shownBars(state);
    candles.setData(bars(n, (i) => candleAt(data, i)));
    volume.setData(bars(n, (i) => volumeAt(data, i)));
    for (const [indicator, series] of lines)
      series.setData(bars(n, (i) => lineAt(data, indicator, i)));
    macdHistogram?.setData(bars(n, (i) => macdAt(data, i)));
    this.shown = n;
    this.drawMarkers(state);
    this.showLegend(null);
    this.element.dataset.points = String(n);
    this.element.dataset.last = String(data.times[n - 1] ?? "");
    this.placeCursor();
    // User timing, read by bench/web: what handing the chart a new data set costs.
    performance.measure("tapedeck:draw", { start: started });
  }

  private drawMarkers(state: PlaybackState): void {
    this.marked = shownFills(state);
    const list = fillSeriesMarkers(
      fillMarkers(state.fills.slice(0, this.marked), state.candles.times),
    );
    this.element.dataset.markers = String(list.length);
    this.series.markers.setMarkers(list);
  }

  // OHLCV and indicator values of the bar under the pointer (the cursor's bar otherwise).
  private showLegend(time: number | null): void {
    const state = this.store.state;
    const at = time ?? state.cursor;
    const items = legendItems(state.candles, at, state.toggles, state.precision);
    const bar = legendBar(state.candles, at);
    this.legend.dataset.time = bar === null ? "" : String(bar.time);
    this.legend.dataset.bar = bar === null ? "" : String(bar.width);
    this.legend.replaceChildren(
      ...items.map(({ label, value, color }) => {
        const span = h("span", {}, label ? h("b", { text: `${label} ` }) : "", value);
        if (color !== undefined) span.style.color = color;
        return span;
      }),
    );
  }

  private placeCursor(): void {
    const state = this.store.state;
    this.element.dataset.cursor = String(state.cursor ?? "");
    this.frame.placeCursor(
      cursorX(this.series.api, state.candles.times, state),
      this.series.api.timeScale().width(),
    );
  }

  // The visible time span, to the fraction of a bar, in the state's candles (see Span).
  visible(): Visible | null {
    const state = this.store.state;
    const range = this.span.current(state.candles.times, lastBucket(state));
    return range === null ? null : { ...range, widthPx: this.width() };
  }

  setVisibleRange(range: TimeRange): void {
    const state = this.store.state;
    this.span.show(state.candles.times, lastBucket(state), range);
    this.events.onRangeChange();
  }

  width(): number {
    return this.series.api.timeScale().width() || this.element.clientWidth || 800;
  }
}
