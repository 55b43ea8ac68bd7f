// Run analysis under the charts: the run's trades (ListTrades, a page at a time; a click moves the
// cursor to the trade's entry) and a download button for each file of its export
// (ExportBacktest), each checked against the size and SHA-256 the stream declares.
import type { Trade } from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { describeError } from "../../errors";
import { collectExport, EXPORT_FORMATS, EXPORT_PARTS } from "../../lib/exports";
import type { PlaybackState } from "../../lib/playback";
import type { Store } from "../../lib/store";
import { PageTokens, TRADE_COLUMNS, tradeRow } from "../../lib/trades";
import type { Clients } from "../../transport";
import { h, setStatus } from "../../ui/dom";

const TRADES_PER_PAGE = 50;

export class TradesTable {
  readonly element: HTMLElement;
  private readonly body = h("tbody");
  private readonly note = h("div", { "data-testid": "trades-state" });
  private readonly previous = h("button", { type: "button", text: "‹ Previous", disabled: true });
  private readonly next = h("button", { type: "button", text: "Next ›", disabled: true });
  private readonly pageLabel = h("span", { class: "muted" });
  private readonly tokens = new PageTokens();
  private trades: readonly Trade[] = [];
  private readonly unsubscribe: () => void;

  // `pick` gets a clicked trade's entry time (seconds).
  constructor(
    private readonly clients: Clients,
    private readonly runName: string,
    private readonly store: Store<PlaybackState>,
    private readonly signal: AbortSignal,
    private readonly pick: (entry: number) => void,
  ) {
    const head = h(
      "tr",
      {},
      ...TRADE_COLUMNS.map(([title, kind]) =>
        h("th", { class: kind === "num" ? "num" : "", text: title }),
      ),
    );
    this.previous.addEventListener("click", () => void this.load(this.tokens.back()));
    this.next.addEventListener("click", () => void this.load(this.tokens.forward()));
    this.body.addEventListener("click", (event) => {
      const row = (event.target as HTMLElement).closest("tr");
      if (!row?.dataset.entry) return;
      for (const picked of this.body.querySelectorAll("tr[aria-current]"))
        picked.removeAttribute("aria-current");
      row.setAttribute("aria-current", "true");
      this.pick(Number(row.dataset.entry));
    });
    this.element = h(
      "section",
      { class: "panel trades", "data-testid": "trades" },
      h("h2", { text: "Trades" }),
      this.note,
      h(
        "div",
        { class: "table-scroll" },
        h("table", { class: "grid" }, h("thead", {}, head), this.body),
      ),
      h("div", { class: "pager" }, this.previous, this.pageLabel, this.next),
    );
    // Prices and sizes take the instrument's precision once it is known.
    this.unsubscribe = store.subscribe((next, before) => {
      if (next.precision !== before.precision) this.render();
    });
    void this.load("");
  }

  dispose(): void {
    this.unsubscribe();
  }

  private async load(token: string): Promise<void> {
    setStatus(this.note, "loading", "Loading trades…");
    try {
      const page = await this.clients.backtest.listTrades(
        { backtest: this.runName, pageSize: TRADES_PER_PAGE, pageToken: token },
        { signal: this.signal },
      );
      this.tokens.arrived(page.nextPageToken);
      this.trades = page.trades;
      const none = this.trades.length === 0 && this.tokens.page === 1;
      setStatus(this.note, none ? "empty" : null, "This run closed no trades.");
      this.render();
    } catch (error) {
      if (!this.signal.aborted) setStatus(this.note, "error", `Trades: ${describeError(error)}`);
    }
  }

  private render(): void {
    const precision = this.store.state.precision;
    this.body.replaceChildren(
      ...this.trades.map((trade) => {
        const row = tradeRow(trade, precision);
        const pnl = row.pnlSign < 0 ? "mismatch" : row.pnlSign > 0 ? "ok" : "";
        return h(
          "tr",
          {
            class: "opens",
            "data-trade-id": row.id,
            "data-entry": String(row.entry),
            title: "Move the cursor to this trade's entry",
          },
          ...row.cells.map((text, i) =>
            h("td", {
              class:
                `${TRADE_COLUMNS[i]![1] === "num" ? "num" : ""} ${i === 6 || i === 7 ? pnl : ""}`.trim(),
              text,
            }),
          ),
        );
      }),
    );
    this.previous.disabled = !this.tokens.hasPrevious;
    this.next.disabled = !this.tokens.hasNext;
    this.pageLabel.textContent = `page ${this.tokens.page}`;
  }
}

// One button per file of the run's export; tables in the chosen format. The browser saves the
// file only once its bytes match what the server declared for it.
export function downloadsPanel(
  clients: Clients,
  runName: string,
  signal: AbortSignal,
): HTMLElement {
  const format = h(
    "select",
    { name: "export-format", "aria-label": "Table format", "data-testid": "export-format" },
    ...EXPORT_FORMATS.map(([value, label]) => h("option", { value: String(value), text: label })),
  );
  const note = h("div", { "data-testid": "download-state" });
  const buttons = EXPORT_PARTS.map(([part, label, kind]) => {
    const button = h("button", {
      type: "button",
      text: label,
      "data-part": label.toLowerCase(),
      title: kind === "table" ? `${label} as the chosen format` : `${label} as JSON`,
    });
    button.addEventListener("click", () => {
      void (async () => {
        button.disabled = true;
        setStatus(note, "loading", `Exporting ${label.toLowerCase()}…`);
        try {
          const stream = clients.backtest.exportBacktest(
            { backtest: runName, format: Number(format.value), parts: [part] },
            { signal },
          );
          for (const file of await collectExport(stream)) {
            save(file.blob, file.name);
            const size = file.size.toLocaleString("en-US");
            setStatus(note, "ok", `${file.name} · ${size} bytes · SHA-256 ${file.sha256} checked`);
            Object.assign(note.dataset, { file: file.name, sha256: file.sha256 });
          }
        } catch (error) {
          if (!signal.aborted) setStatus(note, "error", `Download: ${describeError(error)}`);
        } finally {
          button.disabled = false;
        }
      })();
    });
    return button;
  });
  return h(
    "section",
    { class: "panel", "data-testid": "downloads" },
    h("h2", { text: "Downloads" }),
    h("label", {}, "Tables as ", format),
    h("div", { class: "toggles" }, ...buttons),
    note,
  );
}

function save(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const anchor = h("a", { href: url, download: name });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  // Chromium reads the URL after the click's task; a minute is ample for it to take the bytes.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
