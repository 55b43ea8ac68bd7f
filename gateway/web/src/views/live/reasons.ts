// Blocked trades counted per reason (ListBlocks), each a link to the events with that reason.
import { EventType } from "../../gen/tapedeck/live/v1/live_pb";
import { describeError } from "../../errors";
import type { EventFilter } from "../../lib/live";
import { formatRoute } from "../../lib/router";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";

export class ReasonCounts {
  private readonly status = h("div");
  private readonly counts = h("div", { class: "reasons", "data-testid": "reason-counts" });
  readonly element = h(
    "section",
    { class: "panel" },
    h("h2", { text: "Blocked trades by reason" }),
    this.status,
    this.counts,
  );

  constructor(
    private readonly clients: Clients,
    private readonly filter: EventFilter,
    private readonly scope: Scope,
  ) {}

  async load(): Promise<void> {
    try {
      const response = await this.clients.live.listBlocks(
        { filter: { ...this.filter, types: [] }, pageSize: 1 },
        { signal: this.scope.signal },
      );
      const reasons = response.reasonCounts;
      const total = reasons.reduce((sum, c) => sum + c.count, 0n);
      if (reasons.length === 0)
        setStatus(this.status, "empty", "No blocked trades match these filters.");
      else setStatus(this.status, null);
      this.counts.replaceChildren(
        ...reasons.map((count) => {
          const share = total === 0n ? 0 : Number((count.count * 1000n) / total) / 10;
          const bar = h("span", { class: "meter-fill" });
          bar.style.width = `${share}%`;
          const href = formatRoute("live", null, {
            type: String(EventType.TRADE_BLOCKED),
            reason: count.reason,
            run: this.filter.runId,
            symbol: this.filter.symbol,
          });
          return h(
            "a",
            { class: "reason", href, "data-reason": count.reason },
            h("span", { class: "reason-name", text: count.reason || "(none)" }),
            h("span", { class: "meter" }, bar),
            h("span", { class: "num", text: count.count.toString() }),
          );
        }),
      );
    } catch (error) {
      if (!this.scope.signal.aborted) setStatus(this.status, "error", describeError(error));
    }
  }
}
