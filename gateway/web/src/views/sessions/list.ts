// The sessions list (LiveService.ListSessions), refreshed every few seconds while it is open:
// trader, instance, first and latest event, counts, open positions and realized PnL per currency.
import type { Session } from "../../gen/tapedeck/live/v1/live_pb";
import { describeError } from "../../errors";
import { formatRoute } from "../../lib/router";
import { moneyText, typeCountsText } from "../../lib/sessions";
import { formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";
import { gridRow, gridTable } from "./table";

const REFRESH_MS = 5000;
const PAGE_SIZE = 100;

export class SessionList {
  readonly element: HTMLElement;
  readonly refreshed = h("span", { class: "pill", "data-testid": "sessions-refreshed" });
  private readonly status = h("div");
  private readonly body: HTMLTableSectionElement;
  private timer = 0;

  // `listed` hears of every refresh (the selected session's detail follows its changes).
  constructor(
    private readonly clients: Clients,
    private readonly selected: string | null,
    private readonly scope: Scope,
    private readonly listed: (sessions: readonly Session[]) => void,
  ) {
    const table = gridTable(
      [
        ["Trader", "text"],
        ["Instance", "text"],
        ["Started", "text"],
        ["Last event", "text"],
        ["Events", "num"],
        ["By type", "text"],
        ["Open positions", "num"],
        ["Realized PnL", "num"],
      ],
      "sessions",
    );
    this.body = table.body;
    this.element = h(
      "section",
      { class: "panel" },
      h("h2", { text: "Sessions" }),
      this.status,
      table.element,
    );
    scope.add(() => window.clearTimeout(this.timer));
  }

  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    try {
      const response = await this.clients.live.listSessions(
        { pageSize: PAGE_SIZE },
        { signal: this.scope.signal },
      );
      this.render(response.sessions);
      setStatus(this.status, null);
      this.refreshed.dataset.state = "live";
      this.refreshed.textContent = `● refreshed ${formatTime(Date.now() / 1000)}`;
      this.listed(response.sessions);
    } catch (error) {
      if (this.scope.signal.aborted) return;
      setStatus(this.status, "error", describeError(error));
      this.refreshed.dataset.state = "error";
      this.refreshed.textContent = "not refreshed";
    }
    if (!this.scope.signal.aborted)
      this.timer = window.setTimeout(() => void this.refresh(), REFRESH_MS);
  }

  private render(sessions: readonly Session[]): void {
    if (sessions.length === 0) {
      setStatus(
        this.status,
        "empty",
        "No sessions yet: a NautilusTrader node with the Tapedeck bridge starts one (clients/nautilus).",
      );
    }
    this.body.replaceChildren(
      ...sessions.map((s) => {
        const row = gridRow(
          [
            { text: s.traderId || "—" },
            { text: (s.instanceId || s.runId).slice(0, 8) },
            { text: formatTime(timestampSeconds(s.startTime)) },
            { text: formatTime(timestampSeconds(s.lastTime)) },
            { text: s.eventCount.toString(), num: true },
            { text: typeCountsText(s.typeCounts) },
            { text: String(s.openPositions.length), num: true },
            { text: moneyText(s.realizedPnl), num: true },
          ],
          { class: "opens", "data-run-id": s.runId, title: `Open session ${s.runId}` },
        );
        row.cells[1]!.title = s.instanceId || s.runId;
        if (s.runId === this.selected) row.setAttribute("aria-current", "true");
        row.addEventListener("click", () => (location.hash = formatRoute("sessions", s.runId)));
        return row;
      }),
    );
  }
}
