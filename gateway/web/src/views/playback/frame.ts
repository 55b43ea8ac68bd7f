// A chart's box: the notice shown over it while it has nothing to draw (loading, empty, an error),
// and the cursor line, moved by transform so the chart's canvases are not repainted.
import type { Notice } from "../../lib/playback";
import { setStatus } from "../../ui/dom";
import { h } from "../../ui/dom";

export class ChartFrame {
  readonly element: HTMLElement;
  private readonly overlay: HTMLElement;
  private readonly cursor: HTMLElement;

  constructor(className: string, testId: string) {
    this.overlay = h("div", { class: "chart-overlay", "data-testid": `${testId}-state` });
    this.cursor = h("div", { class: "cursor-line", hidden: true });
    this.element = h("div", { class: `chart ${className}`, "data-testid": testId });
    this.element.append(this.overlay, this.cursor);
  }

  showNotice(notice: Notice): void {
    this.overlay.hidden = notice === null;
    if (notice !== null) setStatus(this.overlay, notice.kind, notice.text);
  }

  // `x` in pixels from the plot's left edge; hidden when null or outside [0, width].
  placeCursor(x: number | null, width: number): void {
    this.cursor.hidden = x === null || x < 0 || x > width;
    if (x !== null) this.cursor.style.transform = `translateX(${x.toFixed(1)}px)`;
  }
}
