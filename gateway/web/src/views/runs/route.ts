// The runs page keeps what is open (a sweep, a walk-forward) in its URL, so a link reopens it.
import { formatRoute, parseRoute } from "../../lib/router";

export function remember(key: "sweep" | "walkForward", id: string): void {
  const params = Object.fromEntries(parseRoute(window.location.hash).params);
  history.replaceState(null, "", formatRoute("runs", null, { ...params, [key]: id }));
}
