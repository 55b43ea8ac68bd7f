// A tiny element builder: views stay plain TypeScript, with no framework in the bundle.
type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | EventListener | undefined | null>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function")
      element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = String(value);
    else if (key === "text") element.textContent = String(value);
    else if (key in element && typeof value !== "string")
      (element as unknown as Record<string, unknown>)[key] = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children)
    if (child !== null && child !== undefined && child !== false) element.append(child);
  return element;
}

// A table header that sorts its column: by click, Enter or Space; `aria-sort` says how it is
// sorted now (`direction` when `key` is the sorted column).
export function sortableHeader(
  title: string,
  key: string,
  sorted: { key: string | null; direction: "asc" | "desc" },
  sort: () => void,
  className = "",
): HTMLTableCellElement {
  const th = h("th", {
    class: `sortable ${className}`.trim(),
    text: title,
    tabindex: 0,
    "data-key": key,
    "aria-sort":
      sorted.key === key ? (sorted.direction === "asc" ? "ascending" : "descending") : undefined,
  });
  th.addEventListener("click", sort);
  th.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      sort();
    }
  });
  return th;
}

// A message area for an action: loading, an error where the action was, or nothing.
export function status(
  kind: "loading" | "error" | "empty" | "info" | "ok",
  text: string,
): HTMLElement {
  return h("div", {
    class: `status ${kind}`,
    role: kind === "error" ? "alert" : "status",
    "data-status": kind,
    text,
  });
}

export function setStatus(
  slot: HTMLElement,
  kind: "loading" | "error" | "empty" | "info" | "ok" | null,
  text = "",
): void {
  slot.replaceChildren(kind === null ? "" : status(kind, text));
}

// Views register clean-up (streams, timers, charts) so leaving a view leaks nothing.
export class Scope {
  private readonly cleanups: Array<() => void> = [];
  readonly controller = new AbortController();
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  add(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }
  dispose(): void {
    this.controller.abort();
    for (const cleanup of this.cleanups.splice(0).reverse()) {
      try {
        cleanup();
      } catch {
        // a failing clean-up must not keep the others from running
      }
    }
  }
}
