// Live trading sessions: the list (refreshed while open) and, for the session in the URL
// (#/sessions/<run_id>?backtest=<run>&gap=<s>), its fills on a price chart, its open positions,
// its round trips, and its drift from a backtest.
import type { Session } from "../../gen/tapedeck/live/v1/live_pb";
import type { Route } from "../../lib/router";
import type { Clients } from "../../transport";
import { h, type Scope } from "../../ui/dom";
import { SessionDetail } from "./detail";
import { DriftPanel } from "./drift";
import { SessionList } from "./list";

export function renderSessions(
  root: HTMLElement,
  clients: Clients,
  route: Route,
  scope: Scope,
): void {
  const selected = route.id;
  const detail = selected === null ? null : new SessionDetail(clients, selected, scope);
  // The detail reloads when its session's summary changes (new events, positions, PnL).
  let seen: Session | null | undefined = null;
  const list = new SessionList(clients, selected, scope, (sessions) => {
    if (detail === null || selected === null) return;
    void sessionNamed(clients, selected, sessions, scope.signal)
      .then((session) => {
        const changed =
          seen === null ||
          session?.eventCount !== seen?.eventCount ||
          session?.lastTime?.seconds !== seen?.lastTime?.seconds ||
          session?.lastTime?.nanos !== seen?.lastTime?.nanos;
        seen = session;
        if (changed) detail.reload(session);
      })
      // The next refresh asks again; the list shows the service's error meanwhile.
      .catch(() => undefined);
  });
  const drift = selected === null ? null : new DriftPanel(clients, selected, route.params, scope);
  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Live sessions" }), list.refreshed),
    list.element,
    selected === null
      ? h("p", { class: "muted", text: "Pick a session to see its fills, round trips and drift." })
      : h("h2", { class: "session-title", "data-testid": "session-title", text: selected }),
  );
  if (detail !== null) root.append(detail.element);
  if (drift !== null) root.append(drift.element);
  void list.refresh();
  void drift?.start();
}

// The session `runId` among those listed, or else among its trader's (the list shows the newest
// sessions only); undefined when there is no such session.
async function sessionNamed(
  clients: Clients,
  runId: string,
  listed: readonly Session[],
  signal: AbortSignal,
): Promise<Session | undefined> {
  const found = listed.find((s) => s.runId === runId);
  const trader = runId.split(":")[0] ?? "";
  if (found !== undefined || !runId.includes(":")) return found;
  let token = "";
  do {
    const page = await clients.live.listSessions(
      { traderId: trader, pageSize: 500, pageToken: token },
      { signal },
    );
    const session = page.sessions.find((s) => s.runId === runId);
    if (session !== undefined) return session;
    token = page.nextPageToken;
  } while (token !== "");
  return undefined;
}
