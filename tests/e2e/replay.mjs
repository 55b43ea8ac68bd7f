// Replay, as a trader uses it: playback opens on the same span every time with the cursor 100 bars
// into the run; the chart's data never holds a candle after the cursor, fills appear as the
// cursor passes them, and the chart follows while playing. The legend names the crosshair's bar;
// a wheel zoom keeps the time under the pointer; the analysis toggle draws the whole run; the URL
// keeps the cursor's time. Screenshots at 1280x800 and 1440x900.
import assert from "node:assert/strict";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token, run] = process.argv.slice(2);
const origin = new URL(url).origin;
const playback = `${origin}/#/playback/${run}`;
const OPENING_BARS = 100;

const candles = (page) => page.locator("[data-testid=candles]");

// The chart's data set, the cursor and the span in view, once the finer window has settled.
async function settled(page) {
  await page.waitForFunction(
    () => Number(document.querySelector("[data-testid=candles]")?.dataset.points ?? 0) > 0,
    null,
    { timeout: 30000 },
  );
  let last = null;
  for (let i = 0; i < 60; i++) {
    const now = await snapshot(page);
    if (last !== null && JSON.stringify(now) === JSON.stringify(last)) return now;
    last = now;
    await page.waitForTimeout(500);
  }
  throw new Error(`the chart did not settle: ${JSON.stringify(last)}`);
}

function snapshot(page) {
  return page.evaluate(() => {
    const chart = document.querySelector("[data-testid=candles]");
    const scrubber = document.querySelector("[data-testid=scrubber]");
    return {
      points: Number(chart.dataset.points),
      last: Number(chart.dataset.last),
      markers: Number(chart.dataset.markers),
      visible: chart.dataset.visible,
      cursor: Number(chart.dataset.cursor),
      start: Number(scrubber.min),
      end: Number(scrubber.max),
      step: Number(scrubber.step),
    };
  });
}

async function moveCursor(page, time) {
  await page.locator("[data-testid=scrubber]").evaluate((el, value) => {
    el.value = String(value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, time);
}

function assertReplayed(state, where) {
  assert.ok(state.points > 0, `${where}: no candles`);
  assert.ok(
    state.last <= state.cursor,
    `${where}: a candle at ${state.last} after ${state.cursor}`,
  );
}

// A point on the price pane, `fraction` of the way across the plot (left of the price scale).
async function plotPoint(page, fraction) {
  const box = await candles(page).boundingBox();
  return { x: box.x + (box.width - 90) * fraction, y: box.y + 160 };
}

async function crosshairAt(page, point) {
  await page.mouse.move(point.x, point.y);
  await page.waitForTimeout(250);
  return page.evaluate(() => ({
    crosshair: document.querySelector("[data-testid=candles]").dataset.crosshair,
    legend: document.querySelector("[data-testid=legend]").dataset.time,
    bar: Number(document.querySelector("[data-testid=legend]").dataset.bar),
  }));
}

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));

  // The same opening twice, whatever order the data arrives in.
  await page.goto(playback);
  const first = await settled(page);
  const cursor = Math.min(first.end, first.start + OPENING_BARS * first.step);
  assert.equal(first.cursor, cursor);
  assertReplayed(first, "opening");
  assert.match(page.url(), new RegExp(`t=${cursor}`));
  await page.goto(`${origin}/#/`);
  await page.goto(playback);
  const again = await settled(page);
  assert.equal(again.visible, first.visible, "the opening span differs between visits");
  const [from, to] = first.visible.split("-").map(Number);
  assert.ok(from <= cursor && cursor <= to, `the cursor ${cursor} is outside ${first.visible}`);
  await screenshot("replay-opening");

  // Fills appear as the cursor passes the first one.
  const fills = rpc({ grpcurl, address, token }, "tapedeck.backtest.v1.BacktestService/ListFills", {
    backtest: `backtests/${run}`,
    pageSize: 1,
  }).fills;
  if (fills?.length) {
    const firstFill = Math.floor(Date.parse(fills[0].time) / 1000);
    await moveCursor(page, Math.max(first.start, firstFill - 2 * first.step));
    await page.waitForTimeout(500);
    const before = await snapshot(page);
    assertReplayed(before, "before the first fill");
    assert.equal(before.markers, 0, "a fill is marked before it happened");
    await moveCursor(page, firstFill + first.step);
    await page.waitForFunction(
      () => Number(document.querySelector("[data-testid=candles]").dataset.markers) > 0,
    );
    assertReplayed(await snapshot(page), "after the first fill");
    console.log(`replay: the first fill (${fills[0].time}) is marked once the cursor passes it`);
  }

  // Playing: candles arrive with the cursor, never past it, and the chart follows it.
  const start = await snapshot(page);
  await page.click("[data-testid=play]");
  for (let i = 0; i < 10; i++) {
    await page.waitForTimeout(150);
    assertReplayed(await snapshot(page), `playing, frame ${i}`);
  }
  await page.click("[data-testid=play]");
  const played = await snapshot(page);
  assertReplayed(played, "paused");
  assert.ok(played.last > start.last, "no new candle while playing");
  assert.equal(
    await page.locator("[data-testid=candles] .cursor-line").isHidden(),
    false,
    "the chart did not follow the cursor",
  );
  await screenshot("replay-played");

  // The legend names the bar under the crosshair, at the crosshair's time.
  const hover = await crosshairAt(page, await plotPoint(page, 0.3));
  assert.ok(hover.crosshair, "no crosshair");
  assert.equal(hover.legend, hover.crosshair);
  await page.mouse.move(0, 0);
  await page.waitForTimeout(250);
  const resting = await page.locator("[data-testid=legend]").getAttribute("data-time");
  const cursorNow = (await snapshot(page)).cursor;
  assert.ok(Number(resting) <= cursorNow, "without a crosshair the legend shows the cursor's bar");
  assert.equal(Number(resting), (await snapshot(page)).last);

  // Analysis draws the whole run; the URL says so.
  await page.check("[data-testid=analysis]");
  await page.waitForFunction(
    (end) => Number(document.querySelector("[data-testid=candles]").dataset.last) > end,
    cursorNow,
  );
  await page.waitForFunction(() => window.location.hash.includes("mode=analysis"));
  await screenshot("replay-analysis");

  // A wheel zoom keeps the time under the pointer within one bar, finer candles arriving or not.
  const point = await plotPoint(page, 0.6);
  await settled(page);
  const under = await crosshairAt(page, point);
  for (let i = 0; i < 4; i++) {
    await page.mouse.wheel(0, -240);
    await page.waitForTimeout(80);
  }
  const zoomed = await settled(page);
  const after = await crosshairAt(page, point);
  const bar = Math.max(under.bar, after.bar);
  const moved = Math.abs(Number(after.crosshair) - Number(under.crosshair));
  assert.ok(moved <= bar, `zooming moved the time under the pointer by ${moved} s (a bar: ${bar})`);
  assert.notEqual(zoomed.visible, first.visible);
  console.log(`replay: zoom kept the time under the pointer within ${moved} s (a bar: ${bar} s)`);

  // A standard timeframe draws the whole run at it; the URL keeps it; Auto comes back.
  const timeframe = page.locator("[data-testid=timeframe]");
  await timeframe.selectOption("900");
  await page.waitForFunction(
    () => document.querySelector("[data-testid=timeframe]").dataset.bucket === "900",
    null,
    { timeout: 20000 },
  );
  await page.waitForFunction(() => window.location.hash.includes("tf=900"));
  const quarterly = await settled(page);
  const hover15 = await crosshairAt(page, await plotPoint(page, 0.5));
  assert.equal(Number(hover15.crosshair) % 900, 0, "a 15-minute candle not on a quarter hour");
  assert.ok([0, 900].includes(hover15.bar), `a ${hover15.bar} s bar at 15 minutes`);
  await screenshot("replay-15m");
  await timeframe.selectOption("");
  await page.waitForFunction(() => !window.location.hash.includes("tf="));
  assert.ok(quarterly.points > 0);

  // The URL keeps the cursor's time: a link opens the same moment.
  await page.uncheck("[data-testid=analysis]");
  const moment = first.start + 250 * first.step;
  await moveCursor(page, moment);
  await page.waitForFunction((t) => window.location.hash.includes(`t=${t}`), moment);
  await page.goto(`${origin}/#/`);
  await page.goto(`${playback}?t=${moment}`);
  const linked = await settled(page);
  assert.equal(linked.cursor, Math.min(linked.end, moment));
  assertReplayed(linked, "opened from a link");

  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(400);
    await screenshot(`playback-${width}x${height}`);
  }
  console.log(`replay: opened at ${cursor} showing ${first.visible}, twice`);
});
