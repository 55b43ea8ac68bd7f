// Run analysis in playback: the trades table lists what ListTrades returns and a click moves the
// cursor to the trade's entry; the drawdown pane's deepest point is the run's max drawdown; the
// statistics panel shows every figure; a download's bytes hash to the SHA-256 the stream declared;
// a run of another market cannot be compared, and says so. Screenshots at 1280x800 and 1440x900.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token, run, other, foreign] = process.argv.slice(2);
const origin = new URL(url).origin;
const playback = `${origin}/#/playback/${run}`;
const backtest = (method, body) =>
  rpc({ grpcurl, address, token }, `tapedeck.backtest.v1.BacktestService/${method}`, body);
const seconds = (iso) => Date.parse(iso) / 1000;

// Every message of a server stream, as grpcurl prints them (one JSON object after another).
function streamed(method, body) {
  const out = execFileSync(
    grpcurl,
    [
      "-plaintext",
      "-H",
      `authorization: Bearer ${token}`,
      "-d",
      JSON.stringify(body),
      address,
      `tapedeck.backtest.v1.BacktestService/${method}`,
    ],
    { encoding: "utf8", maxBuffer: 1 << 28 },
  );
  return out
    .split(/\n(?=\{)/)
    .filter((part) => part.trim() !== "")
    .map((part) => JSON.parse(part));
}

async function shownTrades(page) {
  await page.waitForFunction(
    () => document.querySelector("[data-testid=trades-state] .status.loading") === null,
    null,
    { timeout: 20000 },
  );
  return page.locator("[data-testid=trades] tbody tr").evaluateAll((rows) =>
    rows.map((row) => ({
      id: row.dataset.tradeId,
      entry: Number(row.dataset.entry),
      cells: [...row.cells].map((cell) => cell.textContent),
    })),
  );
}

function assertSamePage(shown, page, where) {
  assert.deepEqual(
    shown.map((row) => [row.id, row.entry]),
    (page.trades ?? []).map((trade) => [trade.tradeId, seconds(trade.entryTime)]),
    `${where}: the table differs from ListTrades`,
  );
}

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(playback);
  await page.waitForFunction(
    () => Number(document.querySelector("[data-testid=candles]")?.dataset.points ?? 0) > 0,
    null,
    { timeout: 30000 },
  );

  // The trades table lists ListTrades' pages, in its order.
  const first = backtest("ListTrades", { backtest: `backtests/${run}`, pageSize: 50 });
  const rows = await shownTrades(page);
  assert.ok(rows.length > 0, "the run closed no trades: nothing to check");
  assertSamePage(rows, first, "page 1");
  const [entry, exit, side, , , , pnl] = rows[0].cells;
  assert.match(entry, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  assert.match(exit, /UTC$/);
  assert.match(side, /^(Long|Short)$/);
  assert.match(pnl, /^-?[\d,]+\.\d\d$/);
  if (first.nextPageToken) {
    await page.click("[data-testid=trades] .pager button:last-child");
    const second = backtest("ListTrades", {
      backtest: `backtests/${run}`,
      pageSize: 50,
      pageToken: first.nextPageToken,
    });
    assertSamePage(await shownTrades(page), second, "page 2");
    await page.click("[data-testid=trades] .pager button:first-child");
    assertSamePage(await shownTrades(page), first, "page 1 again");
  }

  // A click on a trade moves the cursor to its entry; the URL keeps it.
  const picked = rows[Math.floor(rows.length / 2)];
  await page.locator(`[data-testid=trades] tr[data-trade-id="${picked.id}"]`).click();
  await page.waitForFunction(
    (time) => Number(document.querySelector("[data-testid=candles]").dataset.cursor) === time,
    picked.entry,
    { timeout: 5000 },
  );
  await page.waitForFunction(
    (t) => window.location.hash.includes(`t=${t}`),
    Math.round(picked.entry),
  );
  const [from, to] = (await page.locator("[data-testid=candles]").getAttribute("data-visible"))
    .split("-")
    .map(Number);
  assert.ok(
    from <= picked.entry && picked.entry <= to,
    "the chart did not bring the entry into view",
  );
  console.log(
    `analysis: ${rows.length} trades as ListTrades lists them; ${picked.id} opens at its entry`,
  );

  // The drawdown pane under the equity reaches the run's max drawdown (the whole run: analysis).
  const stats = backtest("GetBacktest", { name: `backtests/${run}` }).backtest.stats;
  await page.check("[data-testid=analysis]");
  await page.waitForFunction(() => {
    const equity = document.querySelector("[data-testid=equity]");
    return Number(equity.dataset.points) > 0 && equity.dataset.drawdownMin !== undefined;
  });
  const equity = page.locator("[data-testid=equity]");
  const deepest = Number(await equity.getAttribute("data-drawdown-min"));
  assert.ok(
    Math.abs(-deepest - (stats.maxDrawdown ?? 0)) < 1e-9,
    `drawdown pane reaches ${-deepest}, the run's max drawdown is ${stats.maxDrawdown}`,
  );
  // Its own pane, on the equity chart's time scale: both panes' plots span the same x.
  const panes = await equity.evaluate((el) =>
    [...el.querySelectorAll("table tr td:nth-child(2) canvas:first-child")].map((canvas) => {
      const box = canvas.getBoundingClientRect();
      return { left: Math.round(box.left), width: Math.round(box.width), height: box.height };
    }),
  );
  const plots = panes.filter((p) => p.height > 20);
  assert.ok(plots.length >= 2, `no drawdown pane: ${JSON.stringify(panes)}`);
  assert.equal(plots[0].left, plots[1].left);
  assert.equal(plots[0].width, plots[1].width);
  console.log(`analysis: the drawdown pane's deepest point ${-deepest} is the max drawdown`);

  // Every statistic, labelled; undefined ones say n/a.
  const panel = await page.locator("[data-testid=stats]").innerText();
  for (const label of [
    "Return",
    "Max drawdown",
    "Exposure",
    "Fills",
    "Starting equity",
    "Ending equity",
    "Engine time",
    "Daily returns",
    "Win rate",
    "Profit factor",
    "Avg holding",
  ])
    assert.match(panel, new RegExp(`${label}\\s`), `${label} missing: ${panel}`);
  assert.match(
    panel,
    new RegExp(`Fills\\s+${Number(stats.fillCount ?? 0).toLocaleString("en-US")}\\s`),
  );

  // Downloads: the saved bytes hash to what the stream declared, for a table and a JSON file.
  for (const [format, part, name] of [
    ["1", "trades", "trades.csv"],
    ["2", "equity", "equity.parquet"],
    ["1", "statistics", "statistics.json"],
  ]) {
    await page.selectOption("[data-testid=export-format]", format);
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: 60000 }),
      page.click(`[data-testid=downloads] button[data-part=${part}]`),
    ]);
    assert.equal(download.suggestedFilename(), name);
    const bytes = readFileSync(await download.path());
    const note = page.locator("[data-testid=download-state]");
    await note.locator(".status.ok").waitFor();
    const declared = await note.getAttribute("data-sha256");
    assert.equal(createHash("sha256").update(bytes).digest("hex"), declared, name);
    if (name.endsWith(".csv")) {
      // The same file as the operators' tool receives it.
      const formatName = "EXPORT_FORMAT_CSV";
      const parts = ["EXPORT_PART_TRADES"];
      const last = streamed("ExportBacktest", {
        backtest: `backtests/${run}`,
        format: formatName,
        parts,
      }).at(-1);
      assert.equal(last.sha256, declared);
      assert.equal(Number(last.fileSize), bytes.length);
    }
    console.log(
      `analysis: ${name} downloaded, ${bytes.length} bytes, SHA-256 ${declared} as declared`,
    );
  }
  await screenshot("analysis-1280");
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.waitForTimeout(500);
  await screenshot("analysis-1440");

  // Compare with a run of the same market: drawn, no message.
  if (other) {
    await page.goto(`${playback}?compare=${other}`);
    await page.waitForFunction(
      (id) => document.querySelector("[data-testid=equity]")?.dataset.compare === id,
      other,
      { timeout: 30000 },
    );
    assert.equal(await page.locator("[data-testid=compare-state]").innerText(), "");
    await screenshot("analysis-compare");
  }
  // A run of another market cannot be compared: the view says why and draws nothing for it.
  if (foreign) {
    await page.goto(`${playback}?compare=${foreign}`);
    const message = page.locator("[data-testid=compare-state] .status.error");
    await message.waitFor({ timeout: 30000 });
    assert.match(
      await message.innerText(),
      /^Cannot compare: this run trades BTCUSDT\.BINANCE \(BTC synthetic\), run \w{8} trades ETHUSDT\.BINANCE \(ETH synthetic\)\.$/,
    );
    assert.equal(await page.locator("[data-testid=equity]").getAttribute("data-compare"), "");
    await screenshot("analysis-cannot-compare");
    console.log(`analysis: ${await message.innerText()}`);
  }
});
