// A plain table of a few hundred rows at most (a page of them): its columns, and rows that may
// link somewhere when clicked.
import { formatDecimal, signOf } from "../../lib/decimal";
import { h } from "../../ui/dom";

export interface Cell {
  readonly text: string;
  readonly num?: boolean;
  readonly tone?: "ok" | "mismatch" | "";
}

export function gridTable(
  titles: ReadonlyArray<readonly [string, "text" | "num"]>,
  testId: string,
): { element: HTMLElement; body: HTMLTableSectionElement } {
  const body = h("tbody");
  const head = h(
    "tr",
    {},
    ...titles.map(([title, kind]) => h("th", { class: kind === "num" ? "num" : "", text: title })),
  );
  const table = h("table", { class: "grid", "data-testid": testId }, h("thead", {}, head), body);
  return { element: h("div", { class: "table-scroll" }, table), body };
}

export function gridRow(
  cells: readonly Cell[],
  props: Record<string, string> = {},
): HTMLTableRowElement {
  return h(
    "tr",
    props,
    ...cells.map((cell) =>
      h("td", {
        class: `${cell.num === true ? "num" : ""} ${cell.tone ?? ""}`.trim(),
        text: cell.text,
      }),
    ),
  );
}

// "ok" for a gain, "mismatch" for a loss, as shown (to the cent): the app's colours for PnL.
export function toneOf(amount: string): "ok" | "mismatch" | "" {
  const sign = signOf(formatDecimal(amount, { maxFractionDigits: 2, group: false }));
  return sign > 0 ? "ok" : sign < 0 ? "mismatch" : "";
}
