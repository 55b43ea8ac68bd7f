// Datasets: the imported datasets, the files under the data root an import can read, an import
// form with the server's progress, and uploading a local file in resumable chunks.
import {
  BarConvention,
  DataKind,
  FileFormat,
  InstrumentKind,
  type Dataset,
  type ImportableFile,
} from "../../gen/tapedeck/backtest/v1/backtest_pb";
import { Role } from "../../gen/tapedeck/common/v1/common_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { describeError } from "../../errors";
import {
  defaultKind,
  displayNameOf,
  formatBytes,
  sendUpload,
  splitSymbol,
  uploadKey,
  type UploadApi,
} from "../../lib/datasets";
import { gate } from "../../lib/identity";
import { formatRoute, type Route } from "../../lib/router";
import { formatNumber, formatTime, timestampSeconds } from "../../lib/time";
import type { Clients } from "../../transport";
import { h, setStatus, type Scope } from "../../ui/dom";

const PAGE_SIZE = 1000;
const KINDS: Array<[DataKind, string]> = [
  [DataKind.TRADES, "Trades"],
  [DataKind.QUOTES, "Quotes"],
  [DataKind.BARS, "One-minute bars"],
];

function kindName(kind: DataKind): string {
  return KINDS.find(([k]) => k === kind)?.[1] ?? "—";
}

function progressBar(testId: string): { element: HTMLElement; set: (percent: number) => void } {
  const fill = h("span");
  const element = h(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": "0",
      "data-testid": testId,
    },
    fill,
  );
  return {
    element,
    set: (percent) => {
      const clamped = Math.max(0, Math.min(100, percent));
      fill.style.width = `${clamped}%`;
      element.setAttribute("aria-valuenow", clamped.toFixed(1));
    },
  };
}

function select<T extends number>(name: string, options: Array<[T, string]>): HTMLSelectElement {
  return h(
    "select",
    { name },
    ...options.map(([value, text]) => h("option", { value: String(value), text })),
  );
}

function field(label: string, control: HTMLElement): HTMLElement {
  return h("label", { class: "field" }, h("span", { text: label }), control);
}

export function renderDatasets(
  root: HTMLElement,
  clients: Clients,
  _route: Route,
  scope: Scope,
): void {
  const backtest = clients.backtest;
  const options = { signal: scope.signal };

  // --- the lists ---
  const datasetsBody = h("tbody");
  const datasetsStatus = h("div");
  const filesBody = h("tbody");
  const filesStatus = h("div");

  async function loadDatasets(): Promise<void> {
    const all: Dataset[] = [];
    let token = "";
    do {
      const page = await backtest.listDatasets({ pageSize: PAGE_SIZE, pageToken: token }, options);
      all.push(...page.datasets);
      token = page.nextPageToken;
    } while (token !== "");
    datasetsBody.replaceChildren(
      ...all.map((d) =>
        h(
          "tr",
          { "data-dataset": d.name },
          h("td", { text: d.displayName }),
          h("td", { text: d.instrument?.instrumentId ?? "" }),
          h("td", { text: kindName(d.kind) }),
          h("td", { class: "num", text: formatNumber(Number(d.rowCount), 0) }),
          h("td", {
            text: `${formatTime(timestampSeconds(d.startTime), false)} – ${formatTime(timestampSeconds(d.endTime), false)}`,
          }),
          h("td", { class: "num", text: formatBytes(Number(d.sizeBytes)) }),
          h(
            "td",
            {},
            h("a", {
              href: formatRoute("runs"),
              text: "Launch a run",
            }),
          ),
        ),
      ),
    );
    setStatus(datasetsStatus, all.length === 0 ? "empty" : null, "No datasets yet.");
  }

  async function loadFiles(): Promise<ImportableFile[]> {
    const all: ImportableFile[] = [];
    let token = "";
    do {
      const page = await backtest.listImportableFiles(
        { pageSize: PAGE_SIZE, pageToken: token },
        options,
      );
      all.push(...page.files);
      token = page.nextPageToken;
    } while (token !== "");
    filesBody.replaceChildren(
      ...all.map((f) => {
        const use = h("button", { type: "button", class: "link", text: "Import…" });
        use.addEventListener("click", () => choose(f));
        return h(
          "tr",
          { "data-path": f.path },
          h("td", { text: f.path }),
          h("td", { class: "num", text: formatBytes(Number(f.sizeBytes)) }),
          h("td", { text: formatTime(timestampSeconds(f.modifyTime), false) }),
          h("td", { text: FileFormat[f.format] ?? "" }),
          h("td", { text: f.guessedKind === DataKind.UNSPECIFIED ? "?" : kindName(f.guessedKind) }),
          h("td", {}, use),
        );
      }),
    );
    setStatus(
      filesStatus,
      all.length === 0 ? "empty" : null,
      "No .csv or .parquet files under the data root yet: upload one.",
    );
    source.replaceChildren(...all.map((f) => h("option", { value: f.path, text: f.path })));
    files = all;
    return all;
  }
  let files: ImportableFile[] = [];

  // --- the import form ---
  const source = h("select", { name: "source", required: true });
  const kind = select("kind", KINDS);
  const format = select("format", [
    [FileFormat.UNSPECIFIED, "By extension"],
    [FileFormat.CSV, "CSV"],
    [FileFormat.PARQUET, "Parquet"],
  ]);
  const convention = select("bar-convention", [
    [BarConvention.BAR_OPEN, "Timestamps are bar opens"],
    [BarConvention.BAR_CLOSE, "Timestamps are bar closes"],
  ]);
  const conventionField = field("Bar timestamps", convention);
  const displayName = h("input", { name: "display-name", placeholder: "the file's name" });
  const instrumentId = h("input", {
    name: "instrument-id",
    required: true,
    placeholder: "BTCUSDT.BINANCE",
  });
  const instrumentKind = select("instrument-kind", [
    [InstrumentKind.SPOT, "Spot"],
    [InstrumentKind.PERPETUAL, "Perpetual"],
    [InstrumentKind.FX, "FX"],
  ]);
  const base = h("input", { name: "base", required: true, placeholder: "BTC", size: 6 });
  const quote = h("input", { name: "quote", required: true, placeholder: "USDT", size: 6 });
  const pricePrecision = h("input", {
    name: "price-precision",
    type: "number",
    min: 0,
    max: 16,
    value: "2",
  });
  const sizePrecision = h("input", {
    name: "size-precision",
    type: "number",
    min: 0,
    max: 16,
    value: "6",
  });
  const makerFee = h("input", { name: "maker-fee", value: "0.001", size: 8 });
  const takerFee = h("input", { name: "taker-fee", value: "0.001", size: 8 });
  const importButton = h("button", { type: "submit", class: "primary", text: "Import" });
  const importRefused = h("div", { class: "hint" });
  const importBar = progressBar("import-progress");
  const importStatus = h("div", { "data-testid": "import-status" });
  const importForm = h(
    "form",
    { class: "panel stack-form", "data-testid": "import" },
    h("h2", { text: "Import" }),
    field("File", source),
    h("div", { class: "row" }, field("Kind", kind), field("Format", format), conventionField),
    h(
      "div",
      { class: "row" },
      field("Instrument", instrumentId),
      field("Type", instrumentKind),
      field("Base", base),
      field("Quote", quote),
    ),
    h(
      "div",
      { class: "row" },
      field("Price decimals", pricePrecision),
      field("Size decimals", sizePrecision),
      field("Maker fee", makerFee),
      field("Taker fee", takerFee),
    ),
    field("Name", displayName),
    h("div", { class: "row" }, importButton),
    importRefused,
    importBar.element,
    importStatus,
  );
  const showConvention = () => {
    conventionField.hidden = Number(kind.value) !== DataKind.BARS;
  };
  kind.addEventListener("change", showConvention);
  // Base and quote follow the instrument id as it is typed, until someone types them.
  let suggested = { base: "", quote: "" };
  instrumentId.addEventListener("input", () => {
    const pair = splitSymbol(instrumentId.value) ?? { base: "", quote: "" };
    if (base.value === suggested.base) base.value = pair.base;
    if (quote.value === suggested.quote) quote.value = pair.quote;
    suggested = pair;
  });
  const sourceChanged = () => {
    const file = files.find((f) => f.path === source.value);
    if (file !== undefined) kind.value = String(defaultKind(file.guessedKind));
    showConvention();
  };
  source.addEventListener("change", sourceChanged);
  function choose(file: ImportableFile): void {
    source.value = file.path;
    sourceChanged();
    importForm.scrollIntoView({ block: "nearest" });
    instrumentId.focus();
  }
  if (!gate(importButton, Role.OPERATOR, "Importing"))
    importRefused.textContent = importButton.dataset.refused ?? "";

  importForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void runImport();
  });

  async function runImport(): Promise<void> {
    importButton.disabled = true;
    importBar.set(0);
    setStatus(importStatus, "loading", `Importing ${source.value}…`);
    try {
      const stream = backtest.importDataset(
        {
          sourcePath: source.value,
          kind: Number(kind.value) as DataKind,
          format: Number(format.value) as FileFormat,
          barConvention: Number(convention.value) as BarConvention,
          displayName: displayName.value.trim(),
          instrument: {
            instrumentId: instrumentId.value.trim(),
            kind: Number(instrumentKind.value) as InstrumentKind,
            baseCurrency: base.value.trim(),
            quoteCurrency: quote.value.trim(),
            pricePrecision: Number(pricePrecision.value),
            sizePrecision: Number(sizePrecision.value),
            makerFee: makerFee.value.trim(),
            takerFee: takerFee.value.trim(),
          },
        },
        options,
      );
      for await (const message of stream) {
        if (message.event.case === "progress") {
          const p = message.event.value;
          importBar.set(p.percent);
          setStatus(
            importStatus,
            "loading",
            `Importing ${source.value}… ${formatNumber(p.percent, 0)}% · ${formatNumber(Number(p.rowsRead), 0)} rows`,
          );
        } else if (message.event.case === "dataset") {
          const d = message.event.value;
          importBar.set(100);
          const again = message.alreadyImported ? " (already imported: no work done)" : "";
          importStatus.replaceChildren(
            h(
              "div",
              { class: "status ok", role: "status", "data-dataset": d.name },
              `Imported ${d.displayName}: ${formatNumber(Number(d.rowCount), 0)} rows${again}. `,
              h("a", {
                href: formatRoute("runs"),
                text: "Launch a run on it",
              }),
            ),
          );
        }
      }
      await loadDatasets();
    } catch (error) {
      if (!scope.signal.aborted) setStatus(importStatus, "error", describeError(error));
    } finally {
      importButton.disabled = importButton.dataset.refused !== undefined;
    }
  }

  // --- upload ---
  const api: UploadApi = {
    start: async (fileName, totalBytes) =>
      (await backtest.startUpload({ fileName, totalBytes: BigInt(totalBytes) }, options)).upload!,
    chunk: async (name, offset, data) =>
      (await backtest.uploadChunk({ name, offset: BigInt(offset), data }, options)).upload!,
    get: async (name) => (await backtest.getUpload({ name }, options)).upload!,
  };
  const picker = h("input", {
    type: "file",
    name: "upload",
    accept: ".csv,.txt,.parquet,.pq",
    "aria-label": "File to upload",
  });
  const uploadButton = h("button", { type: "submit", class: "primary", text: "Upload" });
  const uploadRefused = h("div", { class: "hint" });
  const uploadBar = progressBar("upload-progress");
  const uploadStatus = h("div", { "data-testid": "upload-status" });
  const uploadForm = h(
    "form",
    { class: "panel stack-form", "data-testid": "upload" },
    h("h2", { text: "Upload a file" }),
    h("p", {
      class: "hint",
      text: "Sent in 1 MB chunks into the data root's uploads/ folder; an interrupted upload resumes where it stopped.",
    }),
    h("div", { class: "row" }, picker, uploadButton),
    uploadRefused,
    uploadBar.element,
    uploadStatus,
  );
  const uploadAllowed = gate(uploadButton, Role.OPERATOR, "Uploading");
  if (!uploadAllowed) uploadRefused.textContent = uploadButton.dataset.refused ?? "";
  picker.addEventListener("change", () => {
    uploadButton.textContent = "Upload";
    uploadBar.set(0);
    setStatus(uploadStatus, null);
  });
  uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = picker.files?.[0];
    if (file === undefined) {
      setStatus(uploadStatus, "error", "Choose a file first.");
      return;
    }
    void upload(file);
  });

  async function upload(file: File): Promise<void> {
    uploadButton.disabled = true;
    const key = uploadKey(file);
    // An unfinished upload of this very file (same name, size and date) is resumed, unless the
    // service no longer has it (a week old, or another deployment).
    let name = window.localStorage.getItem(key);
    try {
      if (name !== null)
        await api.get(name).catch((error: unknown) => {
          if (ConnectError.from(error).code !== Code.NotFound) throw error;
          name = null;
        });
      if (name === null) {
        name = (await api.start(file.name, file.size)).name;
        window.localStorage.setItem(key, name);
      }
      const done = await sendUpload(
        api,
        name,
        {
          size: file.size,
          read: async (start, end) => new Uint8Array(await file.slice(start, end).arrayBuffer()),
        },
        (sent, total) => {
          uploadBar.set((100 * sent) / Math.max(total, 1));
          setStatus(
            uploadStatus,
            "loading",
            `Uploading ${file.name}: ${formatBytes(sent)} of ${formatBytes(total)}`,
          );
        },
        scope.signal,
      );
      window.localStorage.removeItem(key);
      setStatus(uploadStatus, "ok", `Uploaded ${done.sourcePath}.`);
      uploadButton.textContent = "Upload";
      await loadFiles();
      source.value = done.sourcePath;
      sourceChanged();
      if (displayName.value === "") displayName.value = displayNameOf(done.sourcePath);
    } catch (error) {
      if (scope.signal.aborted) return;
      // Refused before it began (a bad name, over the cap): nothing to resume.
      if (name === null) {
        setStatus(uploadStatus, "error", describeError(error));
        return;
      }
      setStatus(uploadStatus, "error", `${describeError(error)} — press Resume to continue.`);
      uploadButton.textContent = "Resume";
    } finally {
      uploadButton.disabled = !uploadAllowed;
    }
  }

  root.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { text: "Datasets" })),
    h(
      "div",
      { class: "datasets-split" },
      h(
        "div",
        {},
        h(
          "section",
          { class: "panel" },
          h("h2", { text: "Datasets" }),
          h(
            "div",
            { class: "table-scroll" },
            h(
              "table",
              { class: "grid", "data-testid": "datasets" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ...["Name", "Instrument", "Kind", "Rows", "Span", "Size", ""].map((t) =>
                    h("th", { text: t }),
                  ),
                ),
              ),
              datasetsBody,
            ),
          ),
          datasetsStatus,
        ),
        h(
          "section",
          { class: "panel" },
          h("h2", { text: "Files under the data root" }),
          h(
            "div",
            { class: "table-scroll" },
            h(
              "table",
              { class: "grid", "data-testid": "files" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ...["Path", "Size", "Modified", "Format", "Looks like", ""].map((t) =>
                    h("th", { text: t }),
                  ),
                ),
              ),
              filesBody,
            ),
          ),
          filesStatus,
        ),
      ),
      h("div", {}, uploadForm, importForm),
    ),
  );
  showConvention();

  setStatus(datasetsStatus, "loading", "Loading datasets…");
  setStatus(filesStatus, "loading", "Loading files…");
  loadDatasets().catch((error: unknown) => {
    if (!scope.signal.aborted) setStatus(datasetsStatus, "error", describeError(error));
  });
  loadFiles()
    .then(sourceChanged)
    .catch((error: unknown) => {
      if (!scope.signal.aborted) setStatus(filesStatus, "error", describeError(error));
    });
}
