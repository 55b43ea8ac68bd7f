// The small panels beside the charts: the run's statistics and the indicator toggles.
import { BacktestState, type Backtest } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { OVERLAYS, PANES } from "../../lib/indicators";
import { toggleOverlay, togglePane, type PlaybackState } from "../../lib/playback";
import type { Store } from "../../lib/store";
import { statsRows } from "../../lib/stats";
import { h } from "../../ui/dom";

export function statsPanel(backtest: Backtest): HTMLElement {
  const panel = h("section", { class: "panel", "data-testid": "stats" }, h("h2", { text: "Run" }));
  const s = backtest.stats;
  if (s === undefined) {
    const text =
      backtest.state === BacktestState.SUCCEEDED
        ? "No statistics stored for this run."
        : "No statistics until the run has finished.";
    panel.append(h("div", { class: "status empty", text }));
    return panel;
  }
  const list = statsRows(s).flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]);
  panel.append(h("dl", { class: "portfolio" }, ...list));
  panel.classList.add("portfolio");
  return panel;
}

// Overlays and panes, each a checkbox that changes the state's toggles.
export function indicatorsPanel(store: Store<PlaybackState>): HTMLElement {
  const { overlays, panes } = store.state.toggles;
  const overlayBoxes = OVERLAYS.map((o) => {
    const box = h("input", { type: "checkbox", name: o.key, checked: overlays.has(o.key) });
    box.addEventListener("change", () => store.update((s) => toggleOverlay(s, o.key, box.checked)));
    return h("label", {}, box, ` ${o.title}`);
  });
  const paneBoxes = PANES.map((p) => {
    const box = h("input", { type: "checkbox", name: p, checked: panes.has(p) });
    box.addEventListener("change", () => store.update((s) => togglePane(s, p, box.checked)));
    return h("label", {}, box, ` ${p.toUpperCase()}`);
  });
  return h(
    "section",
    { class: "panel" },
    h("h2", { text: "Indicators" }),
    h("div", { class: "toggles" }, ...overlayBoxes),
    h("div", { class: "toggles" }, ...paneBoxes),
  );
}
