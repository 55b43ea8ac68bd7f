import { Code, ConnectError } from "@connectrpc/connect";
import type { Clients } from "../transport";
import { describeError } from "../errors";

interface Probe {
  service: string;
  what: string;
  run: () => Promise<number>;
}

// The stack at a glance: each service answers a cheap list call, or says why not.
export async function renderOverview(root: HTMLElement, clients: Clients): Promise<void> {
  const probes: Probe[] = [
    {
      service: "Backtest",
      what: "runs",
      run: async () => (await clients.backtest.listBacktests({ pageSize: 50 })).backtests.length,
    },
    {
      service: "Wallets",
      what: "wallets",
      run: async () => (await clients.wallets.listWallets({ pageSize: 50 })).wallets.length,
    },
    {
      service: "Live",
      what: "events",
      run: async () => (await clients.live.listEvents({ pageSize: 50 })).events.length,
    },
  ];
  root.replaceChildren();
  const heading = document.createElement("h1");
  heading.textContent = "Stack";
  const table = document.createElement("table");
  table.className = "grid";
  table.innerHTML = "<thead><tr><th>Service</th><th>Status</th></tr></thead>";
  const body = document.createElement("tbody");
  table.append(body);
  root.append(heading, table);
  await Promise.all(
    probes.map(async (probe) => {
      const row = body.insertRow();
      row.dataset.service = probe.service.toLowerCase();
      row.insertCell().textContent = probe.service;
      const status = row.insertCell();
      status.textContent = "loading…";
      try {
        const count = await probe.run();
        status.textContent = `up — ${count === 50 ? "50+" : count} ${probe.what}`;
        row.dataset.state = "up";
      } catch (error) {
        const unimplemented = error instanceof ConnectError && error.code === Code.Unimplemented;
        row.dataset.state = unimplemented ? "up" : "error";
        status.textContent = unimplemented ? "up — not built yet" : describeError(error);
      }
    }),
  );
}
