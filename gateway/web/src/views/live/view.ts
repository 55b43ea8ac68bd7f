// Live events: filters (type, run, reason, symbol), counts per block reason, and a live tail. The
// view composes the filter form, the reason counts and the event list around one LiveState
// (lib/live.ts).
import { filterOf, initialLive, type LiveState } from "../../lib/live";
import type { Route } from "../../lib/router";
import { Store } from "../../lib/store";
import type { Clients } from "../../transport";
import { h, type Scope } from "../../ui/dom";
import { EventList } from "./events";
import { filterForm } from "./filters";
import { ReasonCounts } from "./reasons";

export function renderLive(root: HTMLElement, clients: Clients, route: Route, scope: Scope): void {
  const filter = filterOf(route.params);
  const store = new Store<LiveState>(initialLive());
  const reasons = new ReasonCounts(clients, filter, scope);
  const events = new EventList(store, clients, filter, scope, () => void reasons.load());
  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Live events" }), events.tailState),
    filterForm(route.params),
    reasons.element,
    events.element,
  );
  void reasons.load();
  events.start();
}
