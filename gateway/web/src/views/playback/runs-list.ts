// Finished runs: the playback picker (no run chosen) and the runs to compare the equity with.
import { BacktestState, type Backtest } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { formatRoute } from "../../lib/router";
import { formatPercent, formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, type Scope } from "../../ui/dom";

export async function finishedRuns(clients: Clients, signal: AbortSignal): Promise<Backtest[]> {
  const request = { pageSize: 200, states: [BacktestState.SUCCEEDED] };
  return (await clients.backtest.listBacktests(request, { signal })).backtests;
}

export function runId(backtest: Backtest): string {
  return backtest.name.split("/").pop() ?? "";
}

export function strategyOf(backtest: Backtest): string {
  return backtest.spec?.strategy.replace(/^strategies\//, "") ?? "";
}

export function renderPicker(root: HTMLElement, clients: Clients, scope: Scope): void {
  const list = h("div", {}, h("div", { class: "status loading", text: "Loading finished runs…" }));
  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Playback" })),
    h("section", { class: "panel" }, h("h2", { text: "Choose a finished run" }), list),
  );
  void finishedRuns(clients, scope.signal)
    .then((backtests) => {
      if (backtests.length === 0) {
        const launch = h("a", { href: formatRoute("runs"), text: "Launch one" });
        list.replaceChildren(
          h("div", { class: "status empty" }, "No finished runs yet. ", launch, "."),
        );
        return;
      }
      const items = backtests.map((b) => {
        const id = runId(b);
        const result = b.stats ? formatPercent(b.stats.totalReturn) : "";
        const ended = formatTime(timestampSeconds(b.endTime), false);
        const link = h("a", { href: formatRoute("playback", id), text: id });
        return h("li", {}, link, ` ${strategyOf(b)} · ${result} · ${ended}`);
      });
      list.replaceChildren(h("ul", {}, ...items));
    })
    .catch((error: unknown) => {
      if (scope.signal.aborted) return;
      list.replaceChildren(
        h("div", { class: "status error", role: "alert", text: describeError(error) }),
      );
    });
}

// The select of runs whose equity can be drawn beside this one's; choosing one changes the URL.
export function compareSelect(
  clients: Clients,
  scope: Scope,
  current: { id: string; compare: string | null },
  route: (compare: string) => string,
): HTMLSelectElement {
  const select = h(
    "select",
    { name: "compare", "aria-label": "Compare equity with" },
    h("option", { value: "", text: "compare equity with…" }),
  );
  void finishedRuns(clients, scope.signal)
    .then((backtests) => {
      for (const b of backtests) {
        const id = runId(b);
        if (id === current.id) continue;
        const result = b.stats ? formatPercent(b.stats.totalReturn) : "";
        select.append(
          h("option", { value: id, text: `${id.slice(0, 8)} · ${strategyOf(b)} · ${result}` }),
        );
      }
      select.value = current.compare ?? "";
    })
    .catch(() => undefined);
  select.addEventListener("change", () => (location.hash = route(select.value)));
  return select;
}
