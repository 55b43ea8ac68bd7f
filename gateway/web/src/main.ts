import "./style.css";
import { Code, ConnectError } from "@connectrpc/connect";
import { adoptTokenFromLocation, forgetToken, storeToken } from "./auth";
import { describeError } from "./errors";
import { roleName, setIdentity } from "./lib/identity";
import { createClients } from "./transport";
import { parseRoute, type ViewName } from "./lib/router";
import { loadZone, setZone, type Zone } from "./lib/time";
import { h, Scope } from "./ui/dom";
import { renderOverview } from "./views/overview";
import { renderOps } from "./views/ops";
import { renderRuns } from "./views/runs/view";
import { renderPlayback } from "./views/playback/view";
import { renderDatasets } from "./views/datasets/view";
import { renderWallets } from "./views/wallets/view";
import { renderLive } from "./views/live/view";
import { renderSessions } from "./views/sessions/view";

adoptTokenFromLocation(window.localStorage, window.location, window.history);
const app = document.getElementById("app");
const nav = document.getElementById("nav");
const identity = document.getElementById("identity");

// Times in UTC or the browser's zone: a setting in the header, kept in the browser.
const zone = h(
  "select",
  { name: "zone", "aria-label": "Time zone", "data-testid": "zone" },
  h("option", { value: "utc", text: "UTC" }),
  h("option", { value: "local", text: "Local time" }),
);
zone.value = loadZone(window.localStorage);
zone.addEventListener("change", () => {
  setZone(zone.value as Zone, window.localStorage);
  show();
});
identity?.before(zone);

const clients = createClients();
const TABS: Array<[ViewName, string]> = [
  ["runs", "Runs"],
  ["playback", "Playback"],
  ["datasets", "Datasets"],
  ["wallets", "Wallets"],
  ["live", "Live"],
  ["sessions", "Sessions"],
  ["overview", "Stack"],
  ["ops", "Ops"],
];
let scope = new Scope();

function show(): void {
  if (app === null) return;
  scope.dispose();
  scope = new Scope();
  const route = parseRoute(window.location.hash);
  nav?.replaceChildren(
    ...TABS.map(([view, title]) =>
      h("a", {
        href: `#/${view}`,
        text: title,
        "aria-current": route.view === view ? "page" : undefined,
      }),
    ),
  );
  document.title = `Tapedeck — ${TABS.find(([view]) => view === route.view)?.[1] ?? ""}`;
  app.dataset.view = route.view;
  switch (route.view) {
    case "overview":
      renderOverview(app, clients, scope);
      break;
    case "runs":
      renderRuns(app, clients, route, scope);
      break;
    case "playback":
      renderPlayback(app, clients, route, scope);
      break;
    case "datasets":
      renderDatasets(app, clients, route, scope);
      break;
    case "wallets":
      renderWallets(app, clients, route, scope);
      break;
    case "live":
      renderLive(app, clients, route, scope);
      break;
    case "sessions":
      renderSessions(app, clients, route, scope);
      break;
    case "ops":
      renderOps(app, clients, scope);
      break;
  }
}

// A token the gateway does not know (or none): a form to paste one, instead of views that fail.
function signIn(reason: string): void {
  setIdentity(null);
  identity?.replaceChildren("not signed in");
  const token = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    required: true,
    "aria-label": "Token",
  });
  const form = h(
    "form",
    { class: "panel sign-in", "data-testid": "sign-in" },
    h("h2", { text: "Sign in" }),
    h("div", { class: "status error", role: "alert", text: reason }),
    h("p", {
      class: "hint",
      text: "Paste a bearer token (the launcher prints where tokens.json is; an administrator issues them).",
    }),
    token,
    h("button", { type: "submit", class: "primary", text: "Sign in" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken(window.localStorage, token.value);
    void start();
  });
  app?.replaceChildren(form);
  token.focus();
}

// Asks the gateway who the token is; shows the views once it has answered.
async function start(): Promise<void> {
  try {
    const who = await clients.gateway.whoAmI({});
    setIdentity({ name: who.name, role: who.role });
    const signOut = h("button", { type: "button", class: "link", text: "Sign out" });
    signOut.addEventListener("click", () => {
      forgetToken(window.localStorage);
      signIn("Signed out.");
    });
    identity?.replaceChildren(
      h("span", { "data-testid": "who", text: `${who.name} · ${roleName(who.role)}` }),
      " ",
      signOut,
    );
  } catch (error) {
    if (ConnectError.from(error).code === Code.Unauthenticated) {
      signIn(describeError(error));
      return;
    }
    // The gateway could not say (it may be starting): the services still check every call.
    setIdentity(null);
    identity?.replaceChildren(`signed in (role unknown: ${describeError(error)})`);
  }
  window.removeEventListener("hashchange", show);
  window.addEventListener("hashchange", show);
  show();
}

void start();
