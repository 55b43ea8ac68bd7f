import type { Clients } from "../transport";
import { describeError } from "../errors";
import type { Scope } from "../ui/dom";
import type { GetStackStatusResponse } from "../gen/tapedeck/stack/v1/stack_pb";

const REFRESH_MS = 2000;

export function formatRate(perSecond: number): string {
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(2);
}

export function formatSeconds(seconds: number): string {
  if (seconds === 0) return "—";
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}

export function formatRatio(ratio: number): string {
  return `${(ratio * 100).toFixed(ratio > 0 && ratio < 0.01 ? 2 : 1)} %`;
}

// The stack at a glance, from the front service's reading of every service's metrics,
// refreshed every two seconds while the page is open.
export function renderOverview(root: HTMLElement, clients: Clients, scope: Scope): void {
  root.replaceChildren();
  const heading = document.createElement("h1");
  heading.textContent = "Stack";
  const table = document.createElement("table");
  table.className = "grid";
  table.innerHTML =
    "<thead><tr><th>Service</th><th>Health</th><th>Requests/s</th><th>p99</th>" +
    "<th>Errors</th></tr></thead>";
  const body = document.createElement("tbody");
  table.append(body);
  const queues = document.createElement("p");
  queues.className = "stack-queues";
  const updated = document.createElement("p");
  updated.className = "stack-updated";
  root.append(heading, table, queues, updated);

  const show = (status: GetStackStatusResponse): void => {
    body.replaceChildren(
      ...status.services.map((service) => {
        const row = document.createElement("tr");
        row.dataset.service = service.service;
        row.dataset.state = service.serving ? "up" : "down";
        row.dataset.rate = String(service.requestRate);
        const cells = [
          service.service,
          service.serving ? "serving" : "not serving",
          service.metricsError === "" ? formatRate(service.requestRate) : "—",
          formatSeconds(service.p99LatencySeconds),
          formatRatio(service.errorRatio),
        ];
        for (const text of cells) row.insertCell().textContent = text;
        if (service.metricsError !== "") row.title = service.metricsError;
        return row;
      }),
    );
    queues.dataset.runQueue = String(status.runQueueDepth);
    queues.dataset.subscribers = String(status.subscribers);
    queues.textContent =
      `Run queue: ${status.runQueueDepth} · Oldest outbox event: ` +
      `${formatSeconds(status.outboxOldestAgeSeconds)} · Live subscribers: ${status.subscribers}`;
    const read = status.readTime === undefined ? null : Number(status.readTime.seconds) * 1000;
    updated.dataset.readTime = read === null ? "" : String(read);
    updated.textContent = read === null ? "" : `Read ${new Date(read).toLocaleTimeString()}`;
  };

  const refresh = async (): Promise<void> => {
    try {
      show(await clients.stack.getStackStatus({}, { signal: scope.signal }));
      root.dataset.error = "";
    } catch (error) {
      if (scope.signal.aborted) return;
      root.dataset.error = "true";
      updated.textContent = describeError(error);
    }
  };
  void refresh();
  const timer = window.setInterval(() => void refresh(), REFRESH_MS);
  scope.add(() => window.clearInterval(timer));
}
