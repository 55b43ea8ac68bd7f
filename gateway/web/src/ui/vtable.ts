// A virtualised table: only the rows on screen (plus overscan) are in the DOM, so thousands of rows
// scroll as fast as ten. Rows have a fixed height; the maths is in lib/virtual.ts.
import { rowWindow } from "../lib/virtual";
import { h } from "./dom";

export interface Column<T> {
  key: string;
  title: string;
  width: string; // CSS grid track, e.g. "12rem" or "1fr"
  render: (row: T) => string | Node;
  className?: (row: T) => string;
  align?: "right";
}

export class VirtualTable<T> {
  readonly element: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly body: HTMLElement;
  private rows: readonly T[] = [];
  private frame = 0;
  private readonly template: string;

  constructor(
    private readonly columns: Column<T>[],
    private readonly options: {
      rowHeight?: number;
      height?: string;
      rowKey: (row: T) => string;
      rowClass?: (row: T) => string;
      onRowClick?: (row: T) => void;
      empty?: string;
      testId?: string;
    },
  ) {
    this.template = columns.map((c) => c.width).join(" ");
    const header = h("div", { class: "vt-row vt-head", role: "row" });
    header.style.gridTemplateColumns = this.template;
    for (const column of columns)
      header.append(
        h("div", {
          role: "columnheader",
          class: column.align === "right" ? "num" : "",
          text: column.title,
        }),
      );
    this.body = h("div", { class: "vt-body" });
    this.spacer = h("div", { class: "vt-spacer" }, this.body);
    this.viewport = h("div", { class: "vt-viewport" }, this.spacer);
    this.viewport.style.height = options.height ?? "60vh";
    this.element = h(
      "div",
      { class: "vt", role: "table", "data-testid": options.testId },
      header,
      this.viewport,
    );
    this.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.viewport);
  }

  private readonly resize: ResizeObserver;

  dispose(): void {
    this.resize.disconnect();
    cancelAnimationFrame(this.frame);
  }

  get rowHeight(): number {
    return this.options.rowHeight ?? 28;
  }

  get rowCount(): number {
    return this.rows.length;
  }

  setRows(rows: readonly T[]): void {
    this.rows = rows;
    this.schedule();
  }

  private schedule(): void {
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render(): void {
    const started = performance.now();
    const window = rowWindow(
      this.rows.length,
      this.rowHeight,
      this.viewport.scrollTop,
      this.viewport.clientHeight || 400,
    );
    this.spacer.style.height = `${Math.max(window.totalHeight, this.rows.length === 0 ? 40 : 0)}px`;
    this.body.style.transform = `translateY(${window.offsetTop}px)`;
    const fragment = document.createDocumentFragment();
    if (this.rows.length === 0)
      fragment.append(h("div", { class: "vt-empty", text: this.options.empty ?? "Nothing here." }));
    for (let i = window.start; i < window.end; i++) {
      const row = this.rows[i]!;
      const element = h("div", {
        class: `vt-row ${this.options.rowClass?.(row) ?? ""}`,
        role: "row",
        "data-key": this.options.rowKey(row),
      });
      element.style.gridTemplateColumns = this.template;
      element.style.height = `${this.rowHeight}px`;
      for (const column of this.columns) {
        const cell = h("div", {
          role: "cell",
          class: `${column.align === "right" ? "num " : ""}${column.className?.(row) ?? ""}`,
        });
        const content = column.render(row);
        if (typeof content === "string") {
          cell.textContent = content;
          cell.title = content;
        } else cell.append(content);
        element.append(cell);
      }
      const click = this.options.onRowClick;
      if (click !== undefined) element.addEventListener("click", () => click(row));
      fragment.append(element);
    }
    this.body.replaceChildren(fragment);
    performance.measure("tapedeck:vtable-render", { start: started });
  }
}
