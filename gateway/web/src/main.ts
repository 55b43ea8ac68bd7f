import "./style.css";
import { adoptTokenFromLocation, currentToken } from "./auth";
import { createClients } from "./transport";
import { parseRoute, type ViewName } from "./lib/router";
import { h, Scope } from "./ui/dom";
import { renderOverview } from "./views/overview";
import { renderRuns } from "./views/runs/view";
import { renderPlayback } from "./views/playback/view";
import { renderWallets } from "./views/wallets/view";
import { renderLive } from "./views/live/view";

adoptTokenFromLocation(window.localStorage, window.location, window.history);
const app = document.getElementById("app");
const nav = document.getElementById("nav");
const identity = document.getElementById("identity");
if (identity !== null) {
  identity.textContent = currentToken(window.localStorage) === null ? "no token" : "signed in";
}

const clients = createClients();
const TABS: Array<[ViewName, string]> = [
  ["runs", "Runs"],
  ["playback", "Playback"],
  ["wallets", "Wallets"],
  ["live", "Live"],
  ["overview", "Stack"],
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
    case "wallets":
      renderWallets(app, clients, route, scope);
      break;
    case "live":
      renderLive(app, clients, route, scope);
      break;
  }
}

window.addEventListener("hashchange", show);
show();
