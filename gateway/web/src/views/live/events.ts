// The events matching the filter: pages of history (newest first), then a live tail that resumes
// from its cursor after a break (lib/tail.ts), so no event is shown twice or missed.
import { Code, ConnectError } from "@connectrpc/connect";
import { EventType, type Event } from "../../gen/tapedeck/live/v1/live_pb";
import { describeError } from "../../errors";
import {
  eventsArrived,
  eventTypeName,
  newestSequence,
  pageListed,
  tailChanged,
  tailLabel,
  type EventFilter,
  type LiveState,
} from "../../lib/live";
import type { Store } from "../../lib/store";
import { Tail } from "../../lib/tail";
import { formatRoute } from "../../lib/router";
import { formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";
import { VirtualTable } from "../../ui/vtable";

const MAX_ROWS = 50_000; // a day of heavy tailing; older rows go, history stays a click away
const PAGE_SIZE = 500;
const FATAL = [
  Code.InvalidArgument,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
];

export class EventList {
  readonly tailState = h("span", { class: "pill", "data-testid": "tail-state" });
  private readonly status = h("div");
  private readonly more = h("button", { type: "button", text: "Load older", hidden: true });
  private readonly table: VirtualTable<Event>;
  // The full payload of the row clicked, under the table (rows are one line high).
  private readonly detail = h("pre", {
    class: "event-detail",
    "data-testid": "event-detail",
    hidden: true,
  });
  private open: bigint | null = null; // the sequence of the row expanded
  readonly element: HTMLElement;

  // `blocked` runs when a blocked trade arrives through the tail (the counts change).
  constructor(
    private readonly store: Store<LiveState>,
    private readonly clients: Clients,
    private readonly filter: EventFilter,
    private readonly scope: Scope,
    private readonly blocked: () => void,
  ) {
    this.table = new VirtualTable<Event>(
      [
        {
          key: "seq",
          title: "#",
          width: "5rem",
          align: "right",
          render: (e) => e.sequence.toString(),
        },
        {
          key: "time",
          title: "Time (UTC)",
          width: "12.5rem",
          render: (e) => formatTime(timestampSeconds(e.time)),
        },
        {
          key: "type",
          title: "Type",
          width: "13rem",
          render: (e) => eventTypeName(e.type),
          className: (e) => `type-${eventTypeName(e.type)}`,
        },
        { key: "run", title: "Run", width: "10rem", render: runLink },
        { key: "symbol", title: "Symbol", width: "10rem", render: (e) => e.symbol || "—" },
        { key: "reason", title: "Reason", width: "11rem", render: (e) => e.reason || "—" },
        {
          key: "payload",
          title: "Details",
          width: "minmax(10rem, 1fr)",
          render: (e) => (e.payload === undefined ? "" : JSON.stringify(e.payload)),
        },
      ],
      {
        rowKey: (e) => e.sequence.toString(),
        rowClass: (e) =>
          `${store.state.fresh.has(e.sequence) ? "fresh" : ""}${e.sequence === this.open ? " selected" : ""}`,
        onRowClick: (e) => this.expand(e),
        empty: "No events match these filters yet. New ones appear here as they happen.",
        testId: "events",
        height: "55vh",
      },
    );
    scope.add(() => this.table.dispose());
    this.element = h(
      "section",
      { class: "panel" },
      this.status,
      this.table.element,
      this.detail,
      this.more,
    );
    this.more.addEventListener("click", () => void this.loadPage().catch(() => undefined));
    this.showTail(store.state);
    scope.add(
      store.subscribe((next, previous) => {
        if (next.events !== previous.events) this.table.setRows(next.events);
        if (next.nextPage !== previous.nextPage) this.more.hidden = next.nextPage === "";
        if (next.tail !== previous.tail) this.showTail(next);
      }),
    );
  }

  // Clicking a row shows its whole payload; clicking it again hides it.
  private expand(event: Event): void {
    this.open = this.open === event.sequence ? null : event.sequence;
    this.detail.hidden = this.open === null;
    this.detail.dataset.sequence = this.open === null ? "" : this.open.toString();
    this.detail.textContent =
      this.open === null
        ? ""
        : `#${event.sequence} ${eventTypeName(event.type)}\n${JSON.stringify(event.payload ?? {}, null, 2)}`;
    this.table.setRows(this.store.state.events);
  }

  // The newest page, then the tail from the newest event listed.
  start(): void {
    void this.loadPage()
      .then(() => this.tail(newestSequence(this.store.state.events)))
      .catch(() => this.store.update((s) => tailChanged(s, { kind: "off" })));
  }

  private async loadPage(): Promise<void> {
    setStatus(this.status, "loading", "Loading events…");
    try {
      const response = await this.clients.live.listEvents(
        { filter: this.filter, pageSize: PAGE_SIZE, pageToken: this.store.state.nextPage },
        { signal: this.scope.signal },
      );
      this.store.update((s) => pageListed(s, response.events, response.nextPageToken));
      setStatus(this.status, null);
    } catch (error) {
      if (!this.scope.signal.aborted) setStatus(this.status, "error", describeError(error));
      throw error;
    }
  }

  private showTail(state: LiveState): void {
    const { state: kind, text } = tailLabel(state.tail);
    this.tailState.dataset.state = kind;
    this.tailState.textContent = text;
  }

  private tail(after: bigint): void {
    const { clients, filter, store } = this;
    const tail = new Tail<Event>(
      {
        subscribe: (afterSequence, signal) =>
          (async function* () {
            const stream = clients.live.subscribeEvents({ filter, afterSequence }, { signal });
            for await (const message of stream)
              yield { events: message.events, cursor: message.cursor };
          })(),
        sequenceOf: (e) => e.sequence,
        onEvents: (arrived) => {
          store.update((s) => eventsArrived(s, arrived, MAX_ROWS));
          if (arrived.some((e) => e.type === EventType.TRADE_BLOCKED)) this.blocked();
        },
        onStatus: (status) => store.update((s) => tailChanged(s, status)),
        isFatal: (error) => error instanceof ConnectError && FATAL.includes(error.code),
      },
      after,
    );
    this.scope.add(() => tail.stop());
    void tail.run().then((fatal) => {
      if (fatal !== null && fatal !== undefined)
        store.update((s) => tailChanged(s, { kind: "stopped", error: fatal }));
    });
  }
}

// A run id opens its playback at the event's time (the click does not expand the row).
function runLink(event: Event): string | Node {
  if (event.runId === "") return "—";
  const time = timestampSeconds(event.time);
  const params: Record<string, string> = time === null ? {} : { t: String(Math.round(time)) };
  const link = h("a", {
    href: formatRoute("playback", event.runId, params),
    text: event.runId,
    title: `Playback of ${event.runId} at this event`,
    "data-testid": "run-link",
  });
  link.addEventListener("click", (click) => click.stopPropagation());
  return link;
}
