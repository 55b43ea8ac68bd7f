// Live events: filters (type, run, reason, symbol), counts per block reason, and a live tail that
// resumes from its cursor after a break, so no event is shown twice or missed.
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { EventType, type Event, type EventFilterSchema } from "../gen/tapedeck/live/v1/live_pb";
import type { Clients } from "../transport";
import { describeError } from "../errors";
import { Tail, type TailStatus } from "../lib/tail";
import { formatTime, timestampSeconds } from "../lib/time";
import { formatRoute, type Route } from "../lib/router";
import { h, setStatus, type Scope } from "../ui/dom";
import { VirtualTable } from "../ui/vtable";

const MAX_ROWS = 50_000; // a day of heavy tailing; older rows go, history stays a click away

export function eventTypeName(type: EventType): string {
  return (EventType[type] ?? String(type)).toLowerCase();
}

const TYPES = Object.values(EventType).filter(
  (v): v is EventType => typeof v === "number" && v !== EventType.UNSPECIFIED,
);

export function renderLive(root: HTMLElement, clients: Clients, route: Route, scope: Scope): void {
  const p = route.params;
  const typeSelect = h(
    "select",
    { name: "type", "aria-label": "Event type" },
    h("option", { value: "", text: "all types" }),
  );
  for (const type of TYPES)
    typeSelect.append(h("option", { value: String(type), text: eventTypeName(type) }));
  typeSelect.value = p.get("type") ?? "";
  const input = (name: string, label: string) =>
    h("input", { name, placeholder: label, "aria-label": label, value: p.get(name) ?? "" });
  const run = input("run", "run id");
  const reason = input("reason", "reason");
  const symbol = input("symbol", "symbol");
  const form = h(
    "form",
    { class: "filters" },
    typeSelect,
    run,
    reason,
    symbol,
    h("button", { type: "submit", text: "Apply" }),
    h("button", {
      type: "button",
      class: "link",
      text: "Clear",
      onclick: () => (location.hash = formatRoute("live")),
    }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = formatRoute("live", null, {
      type: typeSelect.value,
      run: run.value.trim(),
      reason: reason.value.trim(),
      symbol: symbol.value.trim(),
    });
  });

  const filter: MessageInitShape<typeof EventFilterSchema> = {
    types: typeSelect.value === "" ? [] : [Number(typeSelect.value) as EventType],
    runId: p.get("run") ?? "",
    reason: p.get("reason") ?? "",
    symbol: p.get("symbol") ?? "",
  };

  const tailState = h("span", { class: "pill", "data-testid": "tail-state", text: "connecting…" });
  const counts = h("div", { class: "reasons", "data-testid": "reason-counts" });
  const countsStatus = h("div");
  const listStatus = h("div");
  const more = h("button", { type: "button", text: "Load older", hidden: true });
  let events: Event[] = [];
  const fresh = new Set<bigint>();
  const table = new VirtualTable<Event>(
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
      { key: "run", title: "Run", width: "10rem", render: (e) => e.runId || "—" },
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
      rowClass: (e) => (fresh.has(e.sequence) ? "fresh" : ""),
      empty: "No events match these filters yet. New ones appear here as they happen.",
      testId: "events",
      height: "55vh",
    },
  );

  scope.add(() => table.dispose());
  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Live events" }), tailState),
    form,
    h(
      "section",
      { class: "panel" },
      h("h2", { text: "Blocked trades by reason" }),
      countsStatus,
      counts,
    ),
    h("section", { class: "panel" }, listStatus, table.element, more),
  );

  let nextPage = "";
  async function loadPage(): Promise<void> {
    setStatus(listStatus, "loading", "Loading events…");
    try {
      const response = await clients.live.listEvents(
        { filter, pageSize: 500, pageToken: nextPage },
        { signal: scope.signal },
      );
      events = events.concat(response.events);
      nextPage = response.nextPageToken;
      more.hidden = nextPage === "";
      table.setRows(events);
      setStatus(listStatus, null);
    } catch (error) {
      if (!scope.signal.aborted) setStatus(listStatus, "error", describeError(error));
      throw error;
    }
  }
  more.addEventListener("click", () => void loadPage().catch(() => undefined));

  async function loadCounts(): Promise<void> {
    try {
      const response = await clients.live.listBlocks(
        { filter: { ...filter, types: [] }, pageSize: 1 },
        { signal: scope.signal },
      );
      counts.replaceChildren();
      const total = response.reasonCounts.reduce((sum, c) => sum + c.count, 0n);
      if (response.reasonCounts.length === 0)
        setStatus(countsStatus, "empty", "No blocked trades match these filters.");
      else setStatus(countsStatus, null);
      for (const count of response.reasonCounts) {
        const share = total === 0n ? 0 : Number((count.count * 1000n) / total) / 10;
        const bar = h("span", { class: "meter-fill" });
        bar.style.width = `${share}%`;
        counts.append(
          h(
            "a",
            {
              class: "reason",
              href: formatRoute("live", null, {
                type: String(EventType.TRADE_BLOCKED),
                reason: count.reason,
                run: filter.runId ?? "",
                symbol: filter.symbol ?? "",
              }),
              "data-reason": count.reason,
            },
            h("span", { class: "reason-name", text: count.reason || "(none)" }),
            h("span", { class: "meter" }, bar),
            h("span", { class: "num", text: count.count.toString() }),
          ),
        );
      }
    } catch (error) {
      if (!scope.signal.aborted) setStatus(countsStatus, "error", describeError(error));
    }
  }

  function showTail(status: TailStatus): void {
    tailState.dataset.state = status.kind;
    if (status.kind === "live") tailState.textContent = "● live";
    else if (status.kind === "connecting") tailState.textContent = "connecting…";
    else
      tailState.textContent = `reconnecting in ${Math.round(status.inMs / 1000)} s — ${describeError(status.error)}`;
  }

  function startTail(after: bigint): void {
    const tail = new Tail<Event>(
      {
        subscribe: (afterSequence, signal) =>
          (async function* () {
            for await (const message of clients.live.subscribeEvents(
              { filter, afterSequence },
              { signal },
            )) {
              yield { events: message.events, cursor: message.cursor };
            }
          })(),
        sequenceOf: (e) => e.sequence,
        onEvents: (arrived) => {
          // Newest first, as the list.
          for (const e of arrived) fresh.add(e.sequence);
          events = arrived.slice().reverse().concat(events);
          if (events.length > MAX_ROWS) events = events.slice(0, MAX_ROWS);
          table.setRows(events);
          if (arrived.some((e) => e.type === EventType.TRADE_BLOCKED)) void loadCounts();
        },
        onStatus: showTail,
        isFatal: (error) =>
          error instanceof ConnectError &&
          [
            Code.InvalidArgument,
            Code.PermissionDenied,
            Code.Unauthenticated,
            Code.Unimplemented,
          ].includes(error.code),
      },
      after,
    );
    scope.add(() => tail.stop());
    void tail.run().then((fatal) => {
      if (fatal !== null && fatal !== undefined) {
        tailState.dataset.state = "error";
        tailState.textContent = `tail stopped — ${describeError(fatal)}`;
      }
    });
  }

  void loadCounts();
  void loadPage()
    .then(() => {
      // Everything after the newest listed event comes through the tail: nothing missed, nothing twice.
      const newest = events.reduce((max, e) => (e.sequence > max ? e.sequence : max), 0n);
      startTail(newest);
    })
    .catch(() => {
      tailState.dataset.state = "error";
      tailState.textContent = "not tailing";
    });
}
