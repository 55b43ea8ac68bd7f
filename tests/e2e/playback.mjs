// Playback of a finished run: candles arrive sized to the viewport; moving the cursor shows exactly what
// GetPortfolioState returns at that instant. Until the backtest service serves playback, the view
// must say so clearly where the chart would be.
import assert from "node:assert/strict";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token, run, other] = process.argv.slice(2);
const origin = new URL(url).origin;
const backtest = (method, body) =>
  rpc({ grpcurl, address, token }, `tapedeck.backtest.v1.BacktestService/${method}`, body);

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${origin}/#/playback/${run}`);
  const state = page.locator("[data-testid=candles-state]");
  await page.waitForFunction(
    () => {
      const overlay = document.querySelector("[data-testid=candles-state]");
      return (
        overlay !== null &&
        (overlay.hidden ||
          overlay.querySelector(".status.error, .status.empty, .status.info") !== null)
      );
    },
    null,
    { timeout: 30000 },
  );
  if (!(await state.isHidden())) {
    const text = await state.innerText();
    await screenshot("playback-unavailable");
    assert.match(text, /Not available yet|no candles|has not|is (queued|running)/i, text);
    console.log(`playback: ${text}`);
    return;
  }
  const width = await page.locator("[data-testid=candles]").evaluate((el) => el.clientWidth);
  const points = Number(await page.locator("[data-testid=candles]").getAttribute("data-points"));
  assert.ok(points > 0 && points <= width, `${points} candles for ${width} px`);

  // Move the cursor to the middle of the run.
  const scrubber = page.locator("[data-testid=scrubber]");
  const target = await scrubber.evaluate((el) => {
    const middle =
      Number(el.min) +
      Math.round((Number(el.max) - Number(el.min)) / 2 / Number(el.step)) * Number(el.step);
    el.value = String(middle);
    el.dispatchEvent(new Event("input", { bubbles: true }));
    return Number(el.value);
  });
  const label = new Date(target * 1000).toISOString().replace("T", " ").slice(0, 19);
  await page
    .locator("[data-testid=portfolio] [data-field=time]", { hasText: label })
    .waitFor({ timeout: 10000 });
  const expected = backtest("GetPortfolioState", {
    backtest: `backtests/${run}`,
    time: new Date(target * 1000).toISOString(),
  }).state;
  const shown = async (field) =>
    page.locator(`[data-testid=portfolio] [data-field=${field}]`).getAttribute("data-raw");
  assert.equal(await shown("equity"), expected.equity);
  assert.equal(await shown("realized"), expected.realizedPnl ?? "");
  assert.equal(await shown("unrealized"), expected.unrealizedPnl ?? "");
  assert.equal(await shown("fees"), expected.fees ?? "");
  assert.equal(
    await page.locator("[data-testid=portfolio] [data-field=fills]").innerText(),
    String(expected.fillCount ?? "0"),
  );
  await screenshot("playback-cursor");

  // Play for a moment: the cursor moves forward.
  const before = await page.locator("[data-testid=cursor-time]").innerText();
  await page.click("[data-testid=play]");
  await page.waitForTimeout(1500);
  await page.click("[data-testid=play]");
  assert.notEqual(await page.locator("[data-testid=cursor-time]").innerText(), before);
  console.log(
    `playback: portfolio at ${target} matches GetPortfolioState (equity ${expected.equity})`,
  );

  // The run panel shows GetBacktest's figures; a run of minutes has no daily figures: "n/a".
  const stats = backtest("GetBacktest", { name: `backtests/${run}` }).backtest.stats;
  const panel = await page.locator("[data-testid=stats]").innerText();
  assert.match(panel, new RegExp(`Trades\\s+${stats.tradeCount ?? 0}\\s`), panel);
  assert.equal(stats.dailyFiguresAvailable ?? false, false);
  assert.match(panel, /Sharpe[^\n]*\s+n\/a\s/, panel);
  assert.match(panel, /CAGR\s+n\/a\s/, panel);

  // Compare with another run's equity curve.
  if (other) {
    await page.selectOption("select[name=compare]", other);
    await page.waitForFunction((id) => window.location.hash.includes(`compare=${id}`), other);
    await page.locator("[data-testid=equity-state]").waitFor({ state: "hidden" });
    await page.waitForTimeout(1500);
    assert.equal(await page.locator("[data-testid=fills-state] .status.error").count(), 0);
    assert.equal(await page.locator("[data-testid=equity]").getAttribute("data-compare"), other);
    await screenshot("playback-compare");
  }

  // Traders often work in the dark: the whole app and the charts follow the system's scheme.
  await page.emulateMedia({ colorScheme: "dark" });
  await page.reload();
  await page.waitForFunction(
    () => Number(document.querySelector("[data-testid=candles]")?.dataset.points ?? 0) > 0,
  );
  await page.locator("[data-testid=candles]").hover();
  await page.waitForTimeout(300);
  await screenshot("playback-dark");
});
