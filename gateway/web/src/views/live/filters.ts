// The filter form: applying it changes the URL, which renders the view anew with the filter.
import { EVENT_TYPES, eventTypeName } from "../../lib/live";
import { formatRoute } from "../../lib/router";
import { h } from "../../ui/dom";

export function filterForm(params: URLSearchParams): HTMLFormElement {
  const type = h(
    "select",
    { name: "type", "aria-label": "Event type" },
    h("option", { value: "", text: "all types" }),
    ...EVENT_TYPES.map((t) => h("option", { value: String(t), text: eventTypeName(t) })),
  );
  type.value = params.get("type") ?? "";
  const input = (name: string, label: string) =>
    h("input", { name, placeholder: label, "aria-label": label, value: params.get(name) ?? "" });
  const run = input("run", "run id");
  const reason = input("reason", "reason");
  const symbol = input("symbol", "symbol");
  const form = h(
    "form",
    { class: "filters" },
    type,
    run,
    reason,
    symbol,
    h("button", { type: "submit", text: "Apply" }),
    h("button", {
      type: "button",
      class: "link",
      text: "Clear",
      onclick: () => (location.hash = formatRoute("live")),
    }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = formatRoute("live", null, {
      type: type.value,
      run: run.value.trim(),
      reason: reason.value.trim(),
      symbol: symbol.value.trim(),
    });
  });
  return form;
}
