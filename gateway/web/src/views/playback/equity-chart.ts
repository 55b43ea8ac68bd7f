// The equity curve under the price chart, on the same times, with the cursor line; another run's
// curve beside it when comparing (both then as returns: runs with different capital compare).
import {
  createChart,
  LineSeries,
  PriceScaleMode,
  type IChartApi,
  type ISeriesApi,
} from "lightweight-charts";
import type { PlaybackState } from "../../lib/playback";
import type { CandleColumns } from "../../lib/series";
import type { Store } from "../../lib/store";
import type { ChartFrame } from "./frame";
import type { TimeRange } from "../../lib/timelink";
import { chartOptions, cursorX, fit, t } from "./chart-base";

function lineData(data: CandleColumns) {
  return data.times.map((time, i) => ({ time: t(time), value: data.close[i]! }));
}

export class EquityChart {
  private readonly api: IChartApi;
  private readonly series: ISeriesApi<"Line">;
  private readonly unsubscribe: () => void;

  // `frame` is in the page already: the chart sizes itself to it.
  constructor(
    private readonly frame: ChartFrame,
    private readonly store: Store<PlaybackState>,
    title: string,
    onRangeChange: (range: TimeRange | null) => void,
  ) {
    const element = this.frame.element;
    this.frame.showNotice(store.state.notices.equity);
    this.api = createChart(element, chartOptions(element.clientHeight || 180));
    this.series = this.api.addSeries(LineSeries, {
      color: "#2962ff",
      lineWidth: 2,
      priceLineVisible: false,
      title,
    });
    this.api.timeScale().subscribeVisibleTimeRangeChange((range) => {
      this.placeCursor();
      onRangeChange(range === null ? null : { from: Number(range.from), to: Number(range.to) });
    });
    this.unsubscribe = store.subscribe((next, previous) => this.render(next, previous));
  }

  dispose(): void {
    this.unsubscribe();
    this.api.remove();
  }

  private render(state: PlaybackState, previous: PlaybackState): void {
    if (state.notices.equity !== previous.notices.equity)
      this.frame.showNotice(state.notices.equity);
    if (state.equity !== previous.equity) {
      if (previous.equity.times.length === 0) {
        this.draw(state.equity);
        fit(this.api);
      } else {
        const range = this.api.timeScale().getVisibleRange();
        this.draw(state.equity);
        if (range !== null) this.api.timeScale().setVisibleRange(range);
      }
    }
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
      fit(this.api);
    }
    if (state.cursor !== previous.cursor || state.equity !== previous.equity) this.placeCursor();
  }

  private draw(data: CandleColumns): void {
    this.series.setData(lineData(data));
    this.frame.element.dataset.points = String(data.times.length);
  }

  private placeCursor(): void {
    const state = this.store.state;
    this.frame.placeCursor(
      cursorX(this.api, state.equity.times, state),
      this.api.timeScale().width(),
    );
  }

  setVisibleRange(range: TimeRange): void {
    this.api.timeScale().setVisibleRange({ from: t(range.from), to: t(range.to) });
  }

  width(): number {
    const width = this.api.timeScale().width() || this.frame.element.clientWidth || 800;
    return Math.max(100, Math.floor(width));
  }
}
