// The equity curve under the price chart, on the same times, with the cursor line; another run's
// curve beside it when comparing (both then as returns: runs with different capital compare).
import {
  createChart,
  LineSeries,
  PriceScaleMode,
  type IChartApi,
  type ISeriesApi,
} from "lightweight-charts";
import { shownEquity, type PlaybackState } from "../../lib/playback";
import type { CandleColumns } from "../../lib/series";
import type { Store } from "../../lib/store";
import type { ChartFrame } from "./frame";
import type { TimeLink, TimeRange } from "../../lib/timelink";
import { chartOptions, cursorX, Span, t } from "./chart-base";

function lineData(data: CandleColumns, n = data.times.length) {
  return data.times.slice(0, n).map((time, i) => ({ time: t(time), value: data.close[i]! }));
}

// Seconds between the last two points: how far the last point reaches.
function spacing(times: readonly number[]): number {
  return (times.at(-1) ?? 0) - (times.at(-2) ?? 0) || 60;
}

export class EquityChart {
  private readonly api: IChartApi;
  private readonly series: ISeriesApi<"Line">;
  private shown = 0; // points drawn: a prefix of the state's equity in replay
  private readonly span = new Span(() => this.api);
  private readonly unsubscribe: () => void;

  // `frame` is in the page already: the chart sizes itself to it. It shows the time span
  // `leader` returns (the price chart's) whenever its data changes.
  constructor(
    private readonly frame: ChartFrame,
    private readonly store: Store<PlaybackState>,
    title: string,
    private readonly link: TimeLink,
    private readonly leader: () => TimeRange | null,
  ) {
    const element = this.frame.element;
    this.frame.showNotice(store.state.notices.equity);
    // It follows the price chart's time scale, like a pane under it; it is not scrolled itself.
    this.api = createChart(element, {
      ...chartOptions(element.clientHeight || 180, 2),
      handleScroll: false,
      handleScale: false,
    });
    this.series = this.api.addSeries(LineSeries, {
      color: "#2962ff",
      lineWidth: 2,
      priceLineVisible: false,
      title,
    });
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
    if (state.equity !== previous.equity || state.mode !== previous.mode) this.draw(state, n);
    else if (n > this.shown) {
      for (let i = this.shown; i < n; i++)
        this.series.update({ time: t(state.equity.times[i]!), value: state.equity.close[i]! });
      this.shown = n;
    } else if (n < this.shown) this.draw(state, n);
    if (state.compare !== previous.compare && state.compare !== null) {
      const { id, equity } = state.compare;
      const title = id.slice(0, 8);
      const series = this.api.addSeries(LineSeries, {
        color: "#ff6d00",
        lineWidth: 2,
        priceLineVisible: false,
        title,
      });
      series.setData(lineData(equity));
      this.frame.element.dataset.compare = id;
      this.api.priceScale("right").applyOptions({ mode: PriceScaleMode.Percentage });
      this.follow();
    }
    if (state.cursor !== previous.cursor || state.equity !== previous.equity) this.placeCursor();
  }

  private draw(state: PlaybackState, n: number): void {
    this.series.setData(lineData(state.equity, n));
    this.shown = n;
    this.frame.element.dataset.points = String(n);
    this.follow();
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
