// Wallets: every wallet with its balances in a virtualised table; reconciliation results stream in
// per wallet and differences are highlighted. The view composes the table, the reconciler and the
// detail panel around one WalletsState (lib/wallets.ts).
import { describeError } from "../../errors";
import type { Route } from "../../lib/router";
import { Store } from "../../lib/store";
import {
  initialWallets,
  walletsComplete,
  walletsListed,
  type WalletsState,
} from "../../lib/wallets";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";
import { WalletAdmin } from "./admin";
import { WalletDetail } from "./detail";
import { Reconciler } from "./reconcile";
import { WalletTable } from "./table";

const PAGE_SIZE = 1000;

export function renderWallets(
  root: HTMLElement,
  clients: Clients,
  _route: Route,
  scope: Scope,
): void {
  const store = new Store<WalletsState>(initialWallets());
  const listStatus = h("div");
  const table = new WalletTable(store);
  const admin = new WalletAdmin(store, clients, scope);
  const detail = new WalletDetail(store, (row) => admin.actions(row));
  const reconciler = new Reconciler(store, clients, scope, loadWallets);
  scope.add(() => table.dispose());
  scope.add(() => detail.dispose());

  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Wallets" }), table.count),
    h(
      "div",
      { class: "toolbar" },
      table.search,
      table.onlyDiffsLabel,
      h("span", { class: "spacer" }),
      h("label", {}, "threshold ", reconciler.threshold),
      h(
        "label",
        { title: "Replace mismatched stored balances with the exchange's" },
        reconciler.adopt,
        " adopt exchange balances",
      ),
      reconciler.button,
      admin.newButton,
    ),
    admin.refused,
    admin.createForm,
    reconciler.status,
    reconciler.summary,
    listStatus,
    // The detail opens beside the table, in view while the table scrolls.
    h("div", { class: "wallets-split" }, table.element, detail.element),
  );

  // Every page of wallets; the table fills in as pages arrive.
  async function loadWallets(): Promise<void> {
    setStatus(listStatus, "loading", "Loading wallets…");
    let token = "";
    const listed = new Set<string>();
    do {
      const page = await clients.wallets.listWallets(
        { pageSize: PAGE_SIZE, pageToken: token },
        { signal: scope.signal },
      );
      for (const wallet of page.wallets) listed.add(wallet.name);
      store.update((s) => walletsListed(s, page.wallets));
      token = page.nextPageToken;
      if (token !== "")
        setStatus(listStatus, "loading", `Loading wallets… ${store.state.rows.size} so far`);
    } while (token !== "");
    store.update((s) => walletsComplete(s, listed));
    setStatus(listStatus, null);
  }

  void loadWallets()
    .then(() =>
      reconciler.showLast().catch((error: unknown) => {
        if (scope.signal.aborted) return;
        setStatus(reconciler.status, "error", `Last reconciliation: ${describeError(error)}`);
      }),
    )
    .catch((error: unknown) => {
      if (!scope.signal.aborted) setStatus(listStatus, "error", describeError(error));
    });
}
