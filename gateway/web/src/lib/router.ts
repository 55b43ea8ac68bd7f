// Hash routes: #/runs, #/playback/<run>?compare=<run>, #/datasets, #/wallets, #/live?type=...,
// #/sessions/<run_id>?backtest=<run>&gap=<s>, #/ops
export type ViewName =
  "overview" | "runs" | "playback" | "datasets" | "wallets" | "live" | "sessions" | "ops";

export interface Route {
  view: ViewName;
  id: string | null; // e.g. the run id of playback
  params: URLSearchParams;
}

const VIEWS: ReadonlySet<string> = new Set([
  "overview",
  "runs",
  "playback",
  "datasets",
  "wallets",
  "live",
  "sessions",
  "ops",
]);

export function parseRoute(hash: string): Route {
  const body = hash.replace(/^#\/?/, "");
  const [path = "", query = ""] = body.split("?", 2);
  const [first = "", ...rest] = path.split("/").filter((part) => part.length > 0);
  const params = new URLSearchParams(query);
  if (params.has("token")) params.delete("token");
  if (!VIEWS.has(first)) return { view: first === "" ? "runs" : "overview", id: null, params };
  const id = rest.length > 0 ? decodeURIComponent(rest.join("/")) : null;
  return { view: first as ViewName, id, params };
}

export function formatRoute(
  view: ViewName,
  id: string | null = null,
  params: Record<string, string> = {},
): string {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "")).toString();
  const path = id === null ? "" : `/${encodeURIComponent(id)}`;
  return `#/${view}${path}${query === "" ? "" : `?${query}`}`;
}
