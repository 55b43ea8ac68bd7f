// Walk-forwards: the newest ones (ListWalkForwards), one row each with its state, dataset, folds
// run out of sample and efficiency; its link opens it in the walk-forward panel.
import { describeError } from "../../errors";
import { formatRoute } from "../../lib/router";
import { datasetLabel, walkForwardsListed, type RunsState } from "../../lib/runs";
import type { Store } from "../../lib/store";
import { walkForwardListRow } from "../../lib/walkforward";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";

const PAGE = 20;

export class WalkForwardList {
  private readonly status = h("div");
  private readonly table = h("div", { class: "table-scroll" });
  readonly element = h(
    "section",
    { class: "panel", "data-testid": "walk-forwards" },
    h("h2", { text: "Walk-forwards" }),
    this.status,
    this.table,
  );

  constructor(
    private readonly store: Store<RunsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
  ) {
    scope.add(store.subscribe((next, previous) => this.render(next, previous)));
  }

  // The newest walk-forwards, again.
  async load(): Promise<void> {
    try {
      const { walkForwards } = await this.clients.backtest.listWalkForwards(
        { pageSize: PAGE },
        { signal: this.scope.signal },
      );
      this.store.update((s) => walkForwardsListed(s, walkForwards));
      const text = "No walk-forwards yet. Switch the form to Walk-forward to start one.";
      setStatus(this.status, walkForwards.length === 0 ? "empty" : null, text);
    } catch (error) {
      if (!this.scope.signal.aborted) setStatus(this.status, "error", describeError(error));
    }
  }

  private render(state: RunsState, previous: RunsState): void {
    if (state.walkForwards === previous.walkForwards && state.datasets === previous.datasets)
      return;
    if (state.walkForwards.length === 0) {
      this.table.replaceChildren();
      return;
    }
    const head = h(
      "tr",
      {},
      ...["Walk-forward", "Created", "State", "Dataset", "Folds run", "Efficiency"].map((text) =>
        h("th", { text }),
      ),
    );
    const body = h("tbody");
    for (const walk of state.walkForwards) {
      const row = walkForwardListRow(walk);
      body.append(
        h(
          "tr",
          { "data-walk-forward": row.id, "data-state": row.phase, "data-dataset": row.dataset },
          h(
            "td",
            {},
            h("a", {
              href: formatRoute("runs", null, { walkForward: row.id }),
              text: row.id.slice(0, 8),
            }),
          ),
          h("td", { text: row.created }),
          h("td", { text: row.phase }),
          h("td", { text: row.dataset === "" ? "" : datasetLabel(state, row.dataset) }),
          h("td", { class: "num", text: row.folds }),
          h("td", { class: "num", text: row.efficiencyText }),
        ),
      );
    }
    this.table.replaceChildren(h("table", { class: "grid" }, h("thead", {}, head), body));
  }
}
