// The playback's data: the run, its candles, equity and fills, streamed with Connect-ES in
// chunks and put into the playback state as they arrive. Loading is lazy: an overview of the
// whole run sized to the screen, then a finer window around what is on screen as the user zooms
// or scrolls (lib/series.ts plans it); a newer window cancels the one still loading.
import {
  BacktestState,
  OrderSide,
  type Backtest,
  type PortfolioState,
} from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { instrumentProblem, type RunIdentity } from "../../lib/compare";
import { Superseding } from "../../lib/abort";
import { formatDecimal } from "../../lib/decimal";
import { INDICATORS } from "../../lib/indicators";
import { Lru } from "../../lib/lru";
import { stateName } from "../../lib/runs";
import {
  backToOverview,
  compareLoaded,
  DRAWDOWN,
  equityOverviewLoaded,
  equityWindowLoaded,
  fillsLoaded,
  instrumentKnown,
  noticed,
  overviewArriving,
  overviewLoaded,
  overviewReplaced,
  runDescribed,
  runUnfinished,
  windowLoaded,
  type PlaybackState,
} from "../../lib/playback";
import {
  appendChunk,
  capacity,
  emptyColumns,
  planWindow,
  type CandleColumns,
  type FillLike,
  type Visible,
} from "../../lib/series";
import type { Store } from "../../lib/store";
import { secondsToTimestamp, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import type { TimeRange } from "../../lib/timelink";

const SPACING = 6; // px per candle a window is sized for
const FILL_PAGES = 5; // of 10,000 fills; zoom in to see more
const CACHED_WINDOWS = 24;

interface Candles {
  data: CandleColumns;
  bucket: number; // seconds per candle
}

function timeRange(range: TimeRange | null) {
  if (range === null) return undefined;
  return { startTime: secondsToTimestamp(range.from), endTime: secondsToTimestamp(range.to) };
}

export class PlaybackLoader {
  // Windows of a finished run never change (its content version is fixed): keep the recent ones.
  private readonly windows = new Lru<string, Candles>(CACHED_WINDOWS);
  private readonly detail: Superseding;
  private readonly fillRequests: Superseding;

  constructor(
    private readonly clients: Clients,
    private readonly runName: string,
    private readonly store: Store<PlaybackState>,
    private readonly signal: AbortSignal,
  ) {
    this.detail = new Superseding(signal);
    this.fillRequests = new Superseding(signal);
  }

  dispose(): void {
    this.detail.cancel();
    this.fillRequests.cancel();
  }

  async describe(): Promise<Backtest> {
    const { backtest } = await this.clients.backtest.getBacktest(
      { name: this.runName },
      { signal: this.signal },
    );
    if (backtest === undefined) throw new Error("run not found");
    this.store.update((s) => runDescribed(s, backtest.contentVersion));
    return backtest;
  }

  // The run's instrument: prices and sizes are shown at its precision.
  async instrument(backtest: Backtest): Promise<void> {
    const name = backtest.spec?.dataset ?? "";
    const { dataset } = await this.clients.backtest.getDataset({ name }, { signal: this.signal });
    const instrument = dataset?.instrument;
    if (instrument === undefined) return;
    const precision = {
      price: instrument.pricePrecision,
      size: instrument.sizePrecision,
      quote: instrument.quoteCurrency,
    };
    this.store.update((s) => instrumentKnown(s, precision));
  }

  // The overview of a succeeded run's candles across `widthPx`, painted from its first chunk.
  async overview(backtest: Backtest, widthPx: number): Promise<void> {
    if (backtest.state !== BacktestState.SUCCEEDED) {
      this.store.update((s) => runUnfinished(s, stateName(backtest.state)));
      return;
    }
    const sourceBucket = Number(backtest.spec?.barInterval?.seconds ?? 60n) || 60;
    const request = { maxCandles: capacity(widthPx, SPACING / 1.5) };
    const overview = await this.candles(request, sourceBucket, this.signal, (data) =>
      this.store.update((s) => overviewArriving(s, data)),
    );
    this.store.update((s) => overviewLoaded(s, overview.data, overview.bucket, sourceBucket));
  }

  async equity(widthPx: number): Promise<void> {
    const data = await this.equityOf(this.runName, null, widthPx, this.signal);
    this.store.update((s) => equityOverviewLoaded(s, data));
  }

  // Another run's equity to draw beside this one's, unless it trades another market.
  async compare(id: string, own: Backtest, widthPx: number): Promise<void> {
    const name = `backtests/${id}`;
    const { backtest: other } = await this.clients.backtest.getBacktest(
      { name },
      { signal: this.signal },
    );
    if (other === undefined) throw new Error(`run ${id} not found`);
    const problem =
      own.spec?.dataset === other.spec?.dataset
        ? null
        : instrumentProblem(await this.identity(own), await this.identity(other));
    const data =
      problem === null ? await this.equityOf(name, null, widthPx, this.signal) : emptyColumns();
    this.store.update((s) => compareLoaded(s, id, data, problem));
  }

  private async identity(backtest: Backtest): Promise<RunIdentity> {
    const name = backtest.spec?.dataset ?? "";
    const { dataset } = await this.clients.backtest.getDataset({ name }, { signal: this.signal });
    const id = backtest.name.split("/").pop() ?? "";
    const shown = dataset?.displayName || name;
    return { id, dataset: shown, instrument: dataset?.instrument?.instrumentId ?? "" };
  }

  // The whole run again at `timeframe` seconds per candle (null: Auto, sized to `widthPx`).
  async resample(timeframe: number | null, widthPx: number): Promise<void> {
    const run = this.store.state.run;
    if (run === null) return;
    const signal = this.detail.next(); // a window still loading is stale now
    // A fixed timeframe is asked for exactly; the service aligns it as exchanges do.
    const request =
      timeframe === null
        ? { maxCandles: capacity(widthPx, SPACING / 1.5) }
        : { maxCandles: 0, timeframe: { seconds: BigInt(timeframe), nanos: 0 } };
    const { data, bucket } = await this.candles(request, run.sourceBucket, signal);
    if (signal.aborted) return;
    this.store.update((s) => overviewReplaced(s, data, bucket));
    void this.fills(null);
  }

  // What the screen needs for `view`: the overview again, the loaded window, or a new window
  // (candles, then the equity and fills inside it). A chosen timeframe needs nothing more.
  refine(view: Visible, equityWidthPx: number): void {
    const state = this.store.state;
    const run = state.run;
    if (run === null || state.timeframe !== null) return;
    const plan = planWindow(view, run, state.window, SPACING);
    if (plan.kind === "keep") return;
    const signal = this.detail.next();
    if (plan.kind === "overview") {
      if (state.window === null) return;
      this.store.update(backToOverview);
      void this.fills(null);
      return;
    }
    const window: TimeRange = { from: plan.from, to: plan.to };
    void (async () => {
      try {
        const key = `${state.contentVersion}:${plan.from}:${plan.to}:${plan.maxCandles}`;
        let cached = this.windows.get(key);
        if (cached === undefined) {
          const request = { timeRange: timeRange(window), maxCandles: plan.maxCandles };
          cached = await this.candles(request, run.sourceBucket, signal);
          if (signal.aborted) return;
          if (state.contentVersion !== "") this.windows.set(key, cached);
        }
        const { data, bucket } = cached;
        this.store.update((s) => windowLoaded(s, { ...window, bucket }, data));
        void this.equityWindow(window, 3 * equityWidthPx, signal);
        void this.fills(window);
      } catch (error) {
        if (!signal.aborted) this.notice("error", `Loading detail: ${describeError(error)}`);
      }
    })();
  }

  // The fills of the run, or of a window when zoomed in (at most FILL_PAGES pages).
  async fills(window: TimeRange | null): Promise<void> {
    const signal = this.fillRequests.next();
    try {
      const collected: FillLike[] = [];
      let token = "";
      let pages = 0;
      do {
        const page = await this.clients.backtest.listFills(
          {
            backtest: this.runName,
            timeRange: timeRange(window),
            pageSize: 10_000,
            pageToken: token,
          },
          { signal },
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
      } while (token !== "" && pages < FILL_PAGES);
      this.store.update((s) => fillsLoaded(s, collected));
      const more = token !== "";
      const where = window === null ? "in the run" : "in view";
      const count = `${collected.length.toLocaleString()}${more ? "+" : ""}`;
      const text = `${count} fills ${where}${more ? " (zoom in to see all)" : ""}`;
      this.notice("info", text);
    } catch (error) {
      if (!signal.aborted) this.notice("error", `Fills: ${describeError(error)}`);
    }
  }

  async portfolio(time: number): Promise<PortfolioState | undefined> {
    const request = { backtest: this.runName, time: secondsToTimestamp(time) };
    return (await this.clients.backtest.getPortfolioState(request, { signal: this.signal })).state;
  }

  private notice(kind: "info" | "error", text: string): void {
    this.store.update((s) => noticed(s, "fills", { kind, text }));
  }

  private async equityWindow(window: TimeRange, maxPoints: number, signal: AbortSignal) {
    try {
      const fine = await this.equityOf(this.runName, window, maxPoints, signal);
      if (signal.aborted) return;
      this.store.update((s) => equityWindowLoaded(s, fine, window.from, window.to));
    } catch {
      // the overview stays; the overview load reports errors
    }
  }

  private async candles(
    request: {
      timeRange?: ReturnType<typeof timeRange>;
      maxCandles: number;
      timeframe?: { seconds: bigint; nanos: number };
    },
    sourceBucket: number,
    signal: AbortSignal,
    onChunk?: (data: CandleColumns) => void,
  ): Promise<Candles> {
    const data = emptyColumns();
    let bucket = sourceBucket;
    const stream = this.clients.backtest.streamCandles(
      { backtest: this.runName, ...request, indicators: [...INDICATORS] },
      { signal },
    );
    for await (const message of stream) {
      if (message.chunk !== undefined) appendChunk(data, message.chunk);
      bucket = Number(message.bucketWidthNanos) / 1e9 || bucket;
      if (onChunk !== undefined && data.times.length > 0) onChunk(data);
    }
    return { data, bucket };
  }

  private async equityOf(
    name: string,
    window: TimeRange | null,
    maxPoints: number,
    signal: AbortSignal,
  ): Promise<CandleColumns> {
    const into = emptyColumns();
    // This run's points carry their drawdown (the pane under the equity); a compared run's not.
    const includeDrawdown = name === this.runName;
    const request = { backtest: name, timeRange: timeRange(window), maxPoints, includeDrawdown };
    for await (const message of this.clients.backtest.streamEquity(request, { signal })) {
      const chunk = message.chunk;
      if (chunk === undefined) continue;
      const equity = chunk.equity;
      appendChunk(into, {
        times: chunk.times,
        open: equity,
        high: equity,
        low: equity,
        close: equity,
        volume: [],
        indicators: includeDrawdown ? [{ indicator: DRAWDOWN, values: chunk.drawdown }] : [],
      });
    }
    return into;
  }
}
