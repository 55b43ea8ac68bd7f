// A session's fills on a price chart like the playback's: a line through the fill prices and a
// buy or sell marker at each fill, with the app's time axis (UTC or local) and price format.
import {
  createChart,
  createSeriesMarkers,
  LineSeries,
  type IChartApi,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type Time,
} from "lightweight-charts";
import { fillMarks, priceDigits, priceLine, type Fill } from "../../lib/sessions";
import { h } from "../../ui/dom";
import { chartOptions, fillSeriesMarkers, t } from "../playback/chart-base";

const HEIGHT = 320;
// Labels on markers only when they fit; arrows always.

export class FillsChart {
  readonly element = h("div", { class: "chart fills-chart", "data-testid": "fills-chart" });
  private api: IChartApi | null = null;
  private line: ISeriesApi<"Line"> | null = null;
  private markers: ISeriesMarkersPluginApi<Time> | null = null;

  draw(fills: readonly Fill[]): void {
    if (this.api === null) {
      this.api = createChart(this.element, chartOptions(HEIGHT, priceDigits(fills)));
      this.line = this.api.addSeries(LineSeries, {
        color: "#546e7a",
        lineWidth: 1,
        priceLineVisible: false,
      });
      this.markers = createSeriesMarkers(this.line, []);
    } else this.api.applyOptions(chartOptions(HEIGHT, priceDigits(fills)));
    const points = priceLine(fills);
    this.line!.setData(points.map((p) => ({ time: t(p.time), value: p.value })));
    const marks = fillMarks(fills);
    this.markers!.setMarkers(fillSeriesMarkers(marks));
    this.element.dataset.points = String(points.length);
    this.element.dataset.markers = String(marks.length);
    this.api.timeScale().fitContent();
  }

  dispose(): void {
    this.api?.remove();
    this.api = null;
  }
}
