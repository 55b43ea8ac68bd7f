// The equity curve under the price chart, on the same times, with the cursor line, and the
// drawdown in a pane under it on the same time scale. Another run's curve beside it when
// comparing: both then as returns from each run's own start (runs with different capital
// compare), the other drawn on this run's times.
import {
  createChart,
  LineSeries,
  type IChartApi,
  type ISeriesApi,
  type LineData,
  type PriceFormatCustom,
  type WhitespaceData,
} from "lightweight-charts";
import { alignedTo, fromStart } from "../../lib/compare";
import { compareProblem, DRAWDOWN, shownEquity, type PlaybackState } from "../../lib/playback";
import type { Store } from "../../lib/store";
import { formatNumber, formatPercent } from "../../lib/time";
import type { ChartFrame } from "./frame";
import type { TimeLink, TimeRange } from "../../lib/timelink";
import { chartOptions, cursorX, priceLocalization, Span, t } from "./chart-base";

type Point = LineData | WhitespaceData;

const MONEY_FORMAT: PriceFormatCustom = {
  type: "custom",
  formatter: (v: number) => formatNumber(v),
  minMove: 0.01,
};
const PERCENT_FORMAT: PriceFormatCustom = {
  type: "custom",
  formatter: (v: number) => formatPercent(v),
  minMove: 1e-4,
};

const point = (time: number, value: number): Point =>
  Number.isFinite(value) ? { time: t(time), value } : { time: t(time) };

// Seconds between the last two points: how far the last point reaches.
function spacing(times: readonly number[]): number {
  return (times.at(-1) ?? 0) - (times.at(-2) ?? 0) || 60;
}

export class EquityChart {
  private readonly api: IChartApi;
  private readonly series: ISeriesApi<"Line">;
  private readonly drawdown: ISeriesApi<"Line">;
  private other: ISeriesApi<"Line"> | null = null;
  private shown = 0; // points drawn: a prefix of the state's equity in replay
  private base: number | null = null; // the run's starting equity while comparing, else null
  private deepest = 0; // the lowest drawdown drawn (negative fraction)
  private readonly span = new Span(() => this.api);
  private readonly unsubscribe: () => void;

  // `frame` is in the page already: the chart sizes itself to it. It shows the time span
  // `leader` returns (the price chart's) whenever its data changes.
  constructor(
    private readonly frame: ChartFrame,
    private readonly store: Store<PlaybackState>,
    private readonly title: string,
    private readonly link: TimeLink,
    private readonly leader: () => TimeRange | null,
  ) {
    const element = this.frame.element;
    this.frame.showNotice(store.state.notices.equity);
    // It follows the price chart's time scale, like a pane under it; it is not scrolled itself.
    // Each series formats its own scale (money, or percent), so no chart-wide price formatter.
    const options = chartOptions(element.clientHeight || 240, 2);
    this.api = createChart(element, {
      ...options,
      localization: { timeFormatter: priceLocalization(2).timeFormatter },
      handleScroll: false,
      handleScale: false,
    });
    this.series = this.api.addSeries(LineSeries, {
      color: "#2962ff",
      lineWidth: 2,
      priceLineVisible: false,
      priceFormat: MONEY_FORMAT,
      title,
    });
    this.drawdown = this.api.addSeries(
      LineSeries,
      {
        color: "#ef5350",
        lineWidth: 1,
        priceLineVisible: false,
        lastValueVisible: false,
        priceFormat: PERCENT_FORMAT,
        title: "drawdown",
      },
      1,
    );
    this.api.panes()[0]?.setStretchFactor(2);
    this.api.timeScale().subscribeVisibleLogicalRangeChange(() => this.placeCursor());
    this.unsubscribe = store.subscribe((next, previous) => this.render(next, previous));
  }

  dispose(): void {
    this.unsubscribe();
    this.api.remove();
  }

  private render(state: PlaybackState, previous: PlaybackState): void {
    if (state.notices.equity !== previous.notices.equity)
      this.frame.showNotice(state.notices.equity);
    const n = shownEquity(state);
    const redraw =
      state.equity !== previous.equity ||
      state.mode !== previous.mode ||
      state.compare !== previous.compare;
    if (redraw || n < this.shown) this.draw(state, n);
    else if (n > this.shown) {
      const { times, close } = state.equity;
      const drawdown = state.equity.indicators.get(DRAWDOWN);
      for (let i = this.shown; i < n; i++) {
        this.series.update(point(times[i]!, this.value(close[i]!)));
        this.addDrawdown(times[i]!, drawdown?.[i]);
      }
      this.shown = n;
      this.mark(n);
    }
    if (state.cursor !== previous.cursor || state.equity !== previous.equity) this.placeCursor();
  }

  private value(equity: number): number {
    return this.base === null ? equity : equity / this.base - 1;
  }

  private addDrawdown(time: number, drawdown: number | undefined): void {
    const value = drawdown === undefined ? Number.NaN : -drawdown;
    if (value < this.deepest) this.deepest = value;
    this.drawdown.update(point(time, value));
  }

  private draw(state: PlaybackState, n: number): void {
    const { times, close } = state.equity;
    const comparing = state.compare !== null && compareProblem(state) === null;
    this.base = comparing ? (close[0] ?? null) : null;
    this.series.applyOptions({ priceFormat: this.base === null ? MONEY_FORMAT : PERCENT_FORMAT });
    this.series.setData(times.slice(0, n).map((time, i) => point(time, this.value(close[i]!))));
    const drawdown = state.equity.indicators.get(DRAWDOWN);
    this.deepest = 0;
    const depths = times.slice(0, n).map((time, i) => {
      const value = -(drawdown?.[i] ?? Number.NaN);
      if (value < this.deepest) this.deepest = value;
      return point(time, value);
    });
    this.drawdown.setData(depths);
    this.drawOther(state, comparing);
    this.shown = n;
    this.mark(n);
    this.follow();
  }

  // The compared run on this run's times, as its return from its own start.
  private drawOther(state: PlaybackState, comparing: boolean): void {
    const compare = state.compare;
    this.frame.element.dataset.compare = comparing && compare !== null ? compare.id : "";
    if (!comparing || compare === null) {
      if (this.other !== null) this.api.removeSeries(this.other);
      this.other = null;
      return;
    }
    this.other ??= this.api.addSeries(LineSeries, {
      color: "#ff6d00",
      lineWidth: 2,
      priceLineVisible: false,
      priceFormat: PERCENT_FORMAT,
      title: compare.id.slice(0, 8),
    });
    const { times } = state.equity;
    const values = alignedTo(times, compare.equity.times, fromStart(compare.equity.close));
    this.other.setData(times.map((time, i) => point(time, values[i]!)));
  }

  // What a test reads: points drawn and the deepest drawdown among them.
  private mark(n: number): void {
    this.frame.element.dataset.points = String(n);
    this.frame.element.dataset.drawdownMin = String(this.deepest);
    this.frame.element.dataset.title = this.title;
  }

  private follow(): void {
    const range = this.leader();
    if (range !== null) this.link.quietly(() => this.setVisibleRange(range));
  }

  private placeCursor(): void {
    const state = this.store.state;
    this.frame.placeCursor(
      cursorX(this.api, state.equity.times, state),
      this.api.timeScale().width(),
    );
  }

  setVisibleRange(range: TimeRange): void {
    const times = this.store.state.equity.times;
    this.span.show(times, spacing(times), range);
  }

  width(): number {
    const width = this.api.timeScale().width() || this.frame.element.clientWidth || 800;
    return Math.max(100, Math.floor(width));
  }
}
