import "./style.css";
import { adoptTokenFromLocation, currentToken } from "./auth";
import { createClients } from "./transport";
import { renderOverview } from "./views/overview";

adoptTokenFromLocation(window.localStorage, window.location, window.history);
const app = document.getElementById("app");
const identity = document.getElementById("identity");
if (identity !== null) {
  identity.textContent = currentToken(window.localStorage) === null ? "no token" : "signed in";
}
if (app !== null) {
  void renderOverview(app, createClients());
}
