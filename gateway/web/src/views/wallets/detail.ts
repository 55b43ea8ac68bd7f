// The selected wallet: its balances, or per asset what is stored, what the exchange holds and the
// difference, once reconciled.
import { formatDecimal } from "../../lib/decimal";
import type { Store } from "../../lib/store";
import { formatTime, timestampSeconds } from "../../lib/time";
import { statusClass, statusText, type WalletRow, type WalletsState } from "../../lib/wallets";
import { h } from "../../ui/dom";

function rows(row: WalletRow): HTMLTableRowElement[] {
  const result = row.result;
  if (result !== null && result.diffs.length > 0)
    return result.diffs.map((d) =>
      h(
        "tr",
        { class: d.beyondThreshold ? "mismatch" : "" },
        h("td", { text: d.asset }),
        h("td", { class: "num", text: formatDecimal(d.storedTotal) }),
        h("td", { class: "num", text: formatDecimal(d.exchangeTotal) }),
        h("td", { class: "num diff", text: formatDecimal(d.difference, { plusSign: true }) }),
      ),
    );
  return row.wallet.balances.map((b) =>
    h(
      "tr",
      {},
      h("td", { text: b.asset }),
      h("td", { class: "num", text: formatDecimal(b.total) }),
      h("td", { text: "—" }),
      h("td", { text: "" }),
    ),
  );
}

function outcome(row: WalletRow): HTMLElement {
  const result = row.result;
  if (result === null) return h("p", { text: "Not reconciled yet." });
  const error = result.errorMessage ? ` — ${result.errorMessage}` : "";
  const fetched = formatTime(timestampSeconds(result.fetchTime));
  const cached = result.fromCache ? " (cached)" : "";
  const text = `${statusText(result)}${error} · fetched ${fetched}${cached}`;
  return h("p", { class: statusClass(result), text });
}

export class WalletDetail {
  readonly element = h("section", {
    class: "panel detail",
    "data-testid": "wallet-detail",
    hidden: true,
  });
  private readonly unsubscribe: () => void;

  // `actions` draws the controls for the shown wallet (an admin's changes).
  constructor(
    store: Store<WalletsState>,
    private readonly actions: (row: WalletRow) => HTMLElement,
  ) {
    this.unsubscribe = store.subscribe((next, previous) => {
      const row = next.selected === null ? undefined : next.rows.get(next.selected);
      const before = previous.selected === null ? undefined : previous.rows.get(previous.selected);
      if (row === undefined) this.element.hidden = true;
      else if (row !== before) this.show(row);
    });
  }

  dispose(): void {
    this.unsubscribe();
  }

  private show(row: WalletRow): void {
    const { wallet } = row;
    const updated = formatTime(timestampSeconds(wallet.updateTime));
    const credentials = `credentials ${wallet.credentialsRef}`;
    const about = `${wallet.exchange} · ${wallet.accountRef} · ${credentials} · updated ${updated}`;
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["Asset", "Stored", "Exchange", "Difference"].map((t) => h("th", { text: t })),
      ),
    );
    this.element.hidden = false;
    this.element.replaceChildren(
      h("h2", { text: wallet.displayName }),
      h("p", { class: "muted", text: about }),
      outcome(row),
      h("table", { class: "grid" }, head, h("tbody", {}, ...rows(row))),
      this.actions(row),
    );
  }
}
