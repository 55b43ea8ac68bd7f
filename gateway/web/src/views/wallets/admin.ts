// What an admin changes from the wallets view: creating a wallet, and for the selected wallet
// setting a balance or deleting it. Each control is disabled with the reason for lesser roles.
import { Role } from "../../gen/tapedeck/common/v1/common_pb";
import { describeError } from "../../errors";
import { gate } from "../../lib/identity";
import type { Store } from "../../lib/store";
import {
  balanceFromForm,
  walletRemoved,
  walletSelected,
  walletsListed,
  type WalletRow,
  type WalletsState,
} from "../../lib/wallets";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";

function field(label: string, control: HTMLElement): HTMLElement {
  return h("label", { class: "field" }, h("span", { text: label }), control);
}

// Disables `button` for roles below admin; returns the reason shown beside it ("" when allowed).
function adminOnly(button: HTMLButtonElement, action: string): string {
  return gate(button, Role.ADMIN, action) ? "" : (button.dataset.refused ?? "");
}

export class WalletAdmin {
  readonly newButton = h("button", { type: "button", text: "New wallet" });
  readonly createForm = h("form", {
    class: "panel stack-form",
    "data-testid": "create-wallet",
    hidden: true,
  });
  readonly refused = h("div", { class: "hint", "data-testid": "wallet-admin-refused" });

  constructor(
    private readonly store: Store<WalletsState>,
    private readonly clients: Clients,
    private readonly scope: Scope,
  ) {
    this.refused.textContent = adminOnly(this.newButton, "Creating a wallet");
    this.newButton.addEventListener("click", () => {
      this.createForm.hidden = !this.createForm.hidden;
    });
    const displayName = h("input", { name: "display-name", required: true, maxlength: 200 });
    const exchange = h("input", { name: "exchange", required: true, value: "coinbase" });
    const account = h("input", { name: "account-ref", required: true });
    const credentials = h("input", {
      name: "credentials-ref",
      required: true,
      placeholder: "COINBASE_DESK_KEY",
      pattern: "[A-Za-z0-9_]+",
    });
    const submit = h("button", { type: "submit", class: "primary", text: "Create" });
    adminOnly(submit, "Creating a wallet");
    const status = h("div");
    this.createForm.append(
      h("h2", { text: "New wallet" }),
      h(
        "div",
        { class: "row" },
        field("Name", displayName),
        field("Exchange", exchange),
        field("Account", account),
        field("Credentials name", credentials),
        submit,
      ),
      h("p", {
        class: "hint",
        text: "The credentials name is a key of the wallet service's secrets file, never the secret.",
      }),
      status,
    );
    this.createForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submit.disabled = true;
      const wallet = {
        displayName: displayName.value.trim(),
        exchange: exchange.value.trim(),
        accountRef: account.value.trim(),
        credentialsRef: credentials.value.trim(),
      };
      this.clients.wallets
        .createWallet({ wallet }, { signal: this.scope.signal })
        .then(({ wallet: created }) => {
          if (created === undefined) return;
          this.store.update((s) => walletSelected(walletsListed(s, [created]), created.name));
          setStatus(status, "ok", `Created ${created.displayName}.`);
          displayName.value = "";
          account.value = "";
        })
        .catch((error: unknown) => setStatus(status, "error", describeError(error)))
        .finally(() => (submit.disabled = false));
    });
  }

  // The selected wallet's controls: set one balance, delete the wallet.
  actions(row: WalletRow): HTMLElement {
    const name = row.wallet.name;
    const asset = h("input", { name: "asset", required: true, size: 6, placeholder: "BTC" });
    const total = h("input", { name: "total", required: true, size: 12, placeholder: "0.5" });
    const available = h("input", { name: "available", size: 12, placeholder: "= total" });
    const hold = h("input", { name: "hold", size: 8, placeholder: "0" });
    const set = h("button", { type: "submit", text: "Set balance" });
    const remove = h("button", { type: "button", class: "danger", text: "Delete wallet" });
    const reason = adminOnly(set, "Setting balances");
    adminOnly(remove, "Deleting a wallet");
    const status = h("div", { "data-testid": "wallet-admin-status" });
    const form = h(
      "form",
      { class: "stack-form", "data-testid": "set-balance" },
      h(
        "div",
        { class: "row" },
        field("Asset", asset),
        field("Total", total),
        field("Available", available),
        field("Hold", hold),
        set,
      ),
      h("div", { class: "actions" }, remove),
      reason === "" ? null : h("div", { class: "hint", text: reason }),
      status,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const balance = balanceFromForm({
        asset: asset.value,
        total: total.value,
        available: available.value,
        hold: hold.value,
      });
      if (typeof balance === "string") {
        setStatus(status, "error", balance);
        return;
      }
      set.disabled = true;
      this.clients.wallets
        .setBalances({ name, balances: [balance], replace: false }, { signal: this.scope.signal })
        .then(({ wallet }) => {
          // The detail is drawn again from the updated row.
          if (wallet !== undefined) this.store.update((s) => walletsListed(s, [wallet]));
        })
        .catch((error: unknown) => {
          setStatus(status, "error", describeError(error));
          set.disabled = false;
        });
    });
    remove.addEventListener("click", () => {
      if (!window.confirm(`Delete ${row.wallet.displayName} and its balances?`)) return;
      remove.disabled = true;
      this.clients.wallets
        .deleteWallet({ name }, { signal: this.scope.signal })
        .then(() => this.store.update((s) => walletRemoved(s, name)))
        .catch((error: unknown) => {
          setStatus(status, "error", describeError(error));
          remove.disabled = false;
        });
    });
    return h("section", { class: "wallet-admin" }, h("h3", { text: "Change" }), form);
  }
}
