// Every wallet with its balances in a virtualised table, filtered by words or by differences;
// clicking a row selects it.
import {
  balancesSummary,
  countText,
  diffSummary,
  filtered,
  statusClass,
  statusText,
  visibleRows,
  walletSelected,
  type WalletRow,
  type WalletsState,
} from "../../lib/wallets";
import type { Store } from "../../lib/store";
import { h } from "../../ui/dom";
import { VirtualTable } from "../../ui/vtable";

export class WalletTable {
  readonly search = h("input", {
    type: "search",
    placeholder: "filter: name, exchange, asset…",
    "aria-label": "Filter wallets",
  });
  private readonly onlyDiffs = h("input", { type: "checkbox", name: "only-diffs" });
  readonly onlyDiffsLabel = h("label", {}, this.onlyDiffs, " only differences");
  readonly count = h("span", { class: "muted", "data-testid": "wallet-count" });
  private readonly table: VirtualTable<WalletRow>;
  private readonly unsubscribe: () => void;

  constructor(store: Store<WalletsState>) {
    const row = (r: WalletRow) => r.wallet;
    this.table = new VirtualTable<WalletRow>(
      [
        {
          key: "name",
          title: "Wallet",
          width: "minmax(10rem, 1.2fr)",
          render: (r) => row(r).displayName,
        },
        { key: "exchange", title: "Exchange", width: "7rem", render: (r) => row(r).exchange },
        {
          key: "account",
          title: "Account",
          width: "minmax(8rem, 1fr)",
          render: (r) => row(r).accountRef,
        },
        {
          key: "balances",
          title: "Balances",
          width: "minmax(14rem, 2fr)",
          render: (r) => balancesSummary(row(r).balances),
        },
        {
          key: "status",
          title: "Reconciliation",
          width: "11rem",
          render: (r) => statusText(r.result),
          className: (r) => `st ${statusClass(r.result)}`,
        },
        {
          key: "diff",
          title: "Differences",
          width: "minmax(10rem, 1.5fr)",
          render: (r) => (r.result === null ? "" : diffSummary(r.result.diffs)),
          className: () => "diff",
        },
      ],
      {
        rowKey: (r) => r.wallet.name,
        rowClass: (r) => {
          const status = statusClass(r.result);
          const selected = r.wallet.name === store.state.selected ? "selected" : "";
          return `${status === "ok" ? "" : status} ${selected}`;
        },
        onRowClick: (r) => store.update((s) => walletSelected(s, r.wallet.name)),
        empty: "No wallets. An admin creates them with New wallet.",
        testId: "wallets",
      },
    );
    const filter = () =>
      store.update((s) =>
        filtered(s, { query: this.search.value, onlyDiffs: this.onlyDiffs.checked }),
      );
    this.search.addEventListener("input", filter);
    this.onlyDiffs.addEventListener("change", filter);
    this.unsubscribe = store.subscribe((next, previous) => {
      const changed =
        next.rows !== previous.rows ||
        next.query !== previous.query ||
        next.onlyDiffs !== previous.onlyDiffs ||
        next.selected !== previous.selected;
      if (changed) this.render(next);
    });
  }

  get element(): HTMLElement {
    return this.table.element;
  }

  dispose(): void {
    this.unsubscribe();
    this.table.dispose();
  }

  private render(state: WalletsState): void {
    const visible = visibleRows(state);
    this.table.setRows(visible);
    this.count.textContent = countText(visible.length, state.rows.size);
  }
}
