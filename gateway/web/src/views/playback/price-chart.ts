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
  type SeriesMarker,
  type Time,
} from "lightweight-charts";
import { Indicator } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { legendItems, OVERLAYS, type Toggles } from "../../lib/indicators";
import type { PlaybackState } from "../../lib/playback";
import { fillMarkers, type CandleColumns, type Visible } from "../../lib/series";
import type { Store } from "../../lib/store";
import { h } from "../../ui/dom";
import type { ChartFrame } from "./frame";
import type { TimeLink, TimeRange } from "../../lib/timelink";
import { chartOptions, cursorX, DOWN, fit, t, UP } from "./chart-base";

export interface PriceChartEvents {
  // The visible range moved (zoom, scroll, new data).
  onRangeChange: () => void;
  onClick: (time: number) => void;
}

// Labels on markers only when they fit; arrows always (hover the candle for the portfolio).
const MAX_LABELLED_MARKERS = 40;

interface Series {
  api: IChartApi;
  candles: ISeriesApi<"Candlestick">;
  volume: ISeriesApi<"Histogram">;
  lines: Map<Indicator, ISeriesApi<"Line">>;
  macdHistogram: ISeriesApi<"Histogram"> | null;
  markers: ISeriesMarkersPluginApi<Time>;
}

function lineData(data: CandleColumns, indicator: Indicator) {
  const values = data.indicators.get(indicator) ?? [];
  return data.times.map((time, i) =>
    Number.isFinite(values[i]) ? { time: t(time), value: values[i]! } : { time: t(time) },
  );
}

export class PriceChart {
  private readonly legend = h("div", { class: "legend", "data-testid": "legend" });
  private series: Series;
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
    if (state.toggles !== previous.toggles) this.rebuild(state);
    else if (state.candles !== previous.candles) {
      // Once the run is known a new data set (a window, or the overview again) keeps the view.
      if (previous.run !== null) this.link.quietly(() => this.keepingView(() => this.draw(state)));
      else this.draw(state);
      // The whole run is in: show all of it.
      if (previous.run === null && state.run !== null) fit(this.series.api);
    } else {
      if (state.fills !== previous.fills) this.drawMarkers(state);
      if (state.cursor !== previous.cursor) this.placeCursor();
    }
  }

  private build(toggles: Toggles): Series {
    const api = createChart(this.element, chartOptions(this.element.clientHeight || 420));
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
    api.timeScale().subscribeVisibleTimeRangeChange(() => {
      const view = this.visible();
      if (view !== null)
        this.element.dataset.visible = `${Math.round(view.from)}-${Math.round(view.to)}`;
      this.placeCursor();
      this.events.onRangeChange();
    });
    api.timeScale().subscribeVisibleLogicalRangeChange(() => this.placeCursor());
    api.subscribeCrosshairMove((param) =>
      this.showLegend(param.time === undefined ? null : Number(param.time)),
    );
    api.subscribeClick((param) => {
      if (param.time !== undefined) this.events.onClick(Number(param.time));
    });
    return { api, candles, volume, lines, macdHistogram, markers };
  }

  // Toggling an overlay or a pane builds the chart anew, on the same times.
  private rebuild(state: PlaybackState): void {
    this.keepingView(() => {
      this.series.api.remove();
      this.series = this.build(state.toggles);
      this.draw(state);
    });
  }

  private keepingView(change: () => void): void {
    const range = this.series.api.timeScale().getVisibleRange();
    change();
    if (range !== null) this.series.api.timeScale().setVisibleRange(range);
  }

  private draw(state: PlaybackState): void {
    const started = performance.now();
    const data = state.candles;
    const { candles, volume, lines, macdHistogram } = this.series;
    const n = data.times.length;
    const candleData = new Array(n);
    const volumeData = new Array(n);
    for (let i = 0; i < n; i++) {
      const time = t(data.times[i]!);
      const up = data.close[i]! >= data.open[i]!;
      const [open, high, low, close] = [data.open[i]!, data.high[i]!, data.low[i]!, data.close[i]!];
      candleData[i] = { time, open, high, low, close };
      const color = up ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)";
      volumeData[i] = { time, value: data.volume[i]!, color };
    }
    candles.setData(candleData);
    volume.setData(volumeData);
    for (const [indicator, series] of lines) series.setData(lineData(data, indicator));
    if (macdHistogram !== null) {
      const values = data.indicators.get(Indicator.MACD_HISTOGRAM) ?? [];
      macdHistogram.setData(
        data.times.map((time, i) => {
          const value = values[i]!;
          if (!Number.isFinite(value)) return { time: t(time) };
          const color = value >= 0 ? "rgba(38,166,154,0.6)" : "rgba(239,83,80,0.6)";
          return { time: t(time), value, color };
        }),
      );
    }
    this.drawMarkers(state);
    this.showLegend(null);
    this.element.dataset.points = String(n);
    this.placeCursor();
    // User timing, read by bench/web: what handing the chart a new data set costs.
    performance.measure("tapedeck:draw", { start: started });
  }

  private drawMarkers(state: PlaybackState): void {
    const all = fillMarkers(state.fills, state.candles.times);
    const labelled = all.length <= MAX_LABELLED_MARKERS;
    const list: SeriesMarker<Time>[] = all.map((m) => ({
      time: t(m.time),
      position: m.side === "buy" ? "belowBar" : "aboveBar",
      shape: m.side === "buy" ? "arrowUp" : "arrowDown",
      color: m.side === "buy" ? UP : DOWN,
      text: labelled ? m.text : "",
      size: 0.8,
    }));
    this.element.dataset.markers = String(list.length);
    this.series.markers.setMarkers(list);
  }

  // OHLCV and indicator values of the bar under the pointer (the last bar otherwise).
  private showLegend(time: number | null): void {
    const state = this.store.state;
    const items = legendItems(state.candles, time, state.toggles);
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
    this.frame.placeCursor(
      cursorX(this.series.api, state.candles.times, state),
      this.series.api.timeScale().width(),
    );
  }

  // The visible time span, interpolated over the logical indexes of mixed-resolution data.
  visible(): Visible | null {
    const { candles, run } = this.store.state;
    const times = candles.times;
    const range = this.series.api.timeScale().getVisibleLogicalRange();
    if (range === null || times.length === 0) return null;
    const at = (logical: number): number => {
      const i = Math.max(0, Math.min(times.length - 1, Math.floor(logical)));
      const next = times[i + 1] ?? times[i]! + (run?.overviewBucket ?? 60);
      return times[i]! + (next - times[i]!) * Math.max(0, Math.min(1, logical - i));
    };
    return { from: at(range.from), to: at(range.to), widthPx: this.series.api.timeScale().width() };
  }

  visibleRange(): TimeRange | null {
    const range = this.series.api.timeScale().getVisibleRange();
    return range === null ? null : { from: Number(range.from), to: Number(range.to) };
  }

  setVisibleRange(range: TimeRange): void {
    this.series.api.timeScale().setVisibleRange({ from: t(range.from), to: t(range.to) });
  }

  width(): number {
    return this.series.api.timeScale().width() || this.element.clientWidth || 800;
  }
}
