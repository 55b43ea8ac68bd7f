// Runs: the launch form is built from ListStrategies/ListDatasets with bounds; a run launched from it
// shows live progress until it succeeds, and opens in playback.
import assert from "node:assert/strict";
import { withPage } from "./browser.mjs";

const [url] = process.argv.slice(2);
const origin = new URL(url).origin;

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${origin}/#/runs`);
  const form = page.locator("[data-testid=launch]");
  await form
    .locator("select[name=dataset] option")
    .first()
    .waitFor({ state: "attached", timeout: 20000 });
  await page.selectOption("select[name=strategy]", "strategies/ema_cross");

  // Bounds from the strategy's spec are enforced before anything is sent.
  const fast = form.locator("input[name=param-fast_period]");
  await fast.fill("1");
  await form.locator(".field-error", { hasText: "fast_period: at least 2" }).waitFor();
  assert.equal(await form.locator("button[type=submit]").isDisabled(), true);
  // A spec unlikely to be cached by an earlier run of this test.
  const fastPeriod = 3 + (Date.now() % 7);
  await fast.fill(String(fastPeriod));
  await form.locator("input[name=param-slow_period]").fill(String(fastPeriod + 9));
  assert.equal(await form.locator("button[type=submit]").isDisabled(), false);
  await screenshot("runs-form");

  await form.locator("button[type=submit]").click();
  await form.locator("[data-testid=launch-status] .status.ok").waitFor({ timeout: 20000 });
  const row = page.locator("[data-testid=runs] tbody tr").first();
  const id = await row.getAttribute("data-run");
  assert.ok(id, "the new run is listed");
  const runRow = page.locator(`[data-testid=runs] tr[data-run="${id}"]`);

  // Watch progress through WatchBacktest until the end.
  const seen = [];
  const deadline = Date.now() + 180_000;
  let state = "";
  while (Date.now() < deadline) {
    state = (await runRow.getAttribute("data-state")) ?? "";
    const percent = Number(
      await runRow.locator("[role=progressbar]").getAttribute("aria-valuenow"),
    );
    if (seen.at(-1) !== percent) seen.push(percent);
    if (["succeeded", "failed", "cancelled"].includes(state)) break;
    if (state === "running" && seen.length === 2) await screenshot("runs-progress");
    await page.waitForTimeout(100);
  }
  console.log(`progress seen: ${seen.join(" → ")} (${state})`);
  assert.equal(state, "succeeded", await runRow.innerText());
  assert.equal(seen.at(-1), 100);
  for (let i = 1; i < seen.length; i++)
    assert.ok(seen[i] >= seen[i - 1], `progress went back: ${seen}`);
  // The launch status followed the run to its end and links to its playback.
  const status = form.locator("[data-testid=launch-status]");
  await status.locator(`a[href="#/playback/${id}"]`).waitFor({ timeout: 10000 });
  assert.match(await status.innerText(), /succeeded/);
  assert.equal(await status.getAttribute("data-state"), "succeeded");
  await screenshot("runs-finished");

  // At 1280x800 every column of the runs table is on screen, nothing scrolled off.
  const fit = await page.evaluate(() => {
    const scroller = document.querySelector("[data-testid=runs]").closest(".table-scroll");
    const right = scroller.getBoundingClientRect().right;
    return {
      overflow: scroller.scrollWidth - scroller.clientWidth,
      cut: [...document.querySelectorAll("[data-testid=runs] th")]
        .filter((th) => th.getBoundingClientRect().right > right + 0.5)
        .map((th) => th.textContent),
      truncated: [...document.querySelectorAll("[data-testid=runs] td.num")]
        .filter((td) => td.scrollWidth > td.clientWidth)
        .map((td) => td.textContent),
    };
  });
  assert.deepEqual(fit, { overflow: 0, cut: [], truncated: [] });

  // Sorting and filtering.
  const returns = async () =>
    (await page.locator("[data-testid=runs] tbody tr td:nth-child(5)").allInnerTexts())
      .filter((text) => text !== "")
      .map((text) => Number(text.replace(/[%,]/g, "")));
  await page.click('[data-testid=runs] th[data-key="return"]');
  const descending = await returns();
  assert.deepEqual(
    descending,
    [...descending].sort((a, b) => b - a),
  );
  await page.click('[data-testid=runs] th[data-key="return"]');
  const ascending = await returns();
  assert.deepEqual(
    ascending,
    [...ascending].sort((a, b) => a - b),
  );
  await page.selectOption("select[name=filter-state]", "failed");
  await page.locator("[data-testid=runs] tbody tr").first().waitFor({ state: "detached" });
  await page.selectOption("select[name=filter-state]", "succeeded");
  const states = await page
    .locator("[data-testid=runs] tbody tr")
    .evaluateAll((rows) => rows.map((tr) => tr.dataset.state));
  assert.ok(states.length > 0 && states.every((state) => state === "succeeded"), `${states}`);
  await page.selectOption("select[name=filter-state]", "");

  // A sweep over two fast and two slow periods: results stream into a sortable table and a heatmap.
  await page.selectOption("select[name=mode]", "sweep");
  await form.locator("input[name=param-fast_period]").fill(`${fastPeriod},${fastPeriod + 1}`);
  await form.locator("input[name=param-slow_period]").fill(`${fastPeriod + 11},${fastPeriod + 12}`);
  await form.locator("[data-testid=grid-size]", { hasText: "4 runs in the grid" }).waitFor();
  await form.locator("button[type=submit]").click();
  await form
    .locator("[data-testid=launch-status] .status.ok", { hasText: "Sweep" })
    .waitFor({ timeout: 20000 });
  const results = page.locator("[data-testid=sweep-results] tbody tr");
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll("[data-testid=sweep-results] tbody tr")].filter((tr) =>
        tr.querySelector("a"),
      ).length === 4,
    null,
    { timeout: 240000 },
  );
  assert.equal(await results.count(), 4);
  // Ranks 1..4 among the finished runs, best total return first (the form's default metric: short
  // runs have no daily Sharpe).
  const ranked = await page
    .locator("[data-testid=sweep-results] tbody tr")
    .evaluateAll((rows) =>
      rows.map((tr) => [
        Number(tr.querySelector("td:nth-child(1)").textContent),
        Number(tr.querySelector("td:nth-child(5)").textContent.replace(/[,%]/g, "")),
      ]),
    );
  const byReturn = [...ranked].sort((a, b) => b[1] - a[1]);
  assert.equal(byReturn[0][0], 1, `ranks: ${JSON.stringify(ranked)}`);
  // Sort by fast_period, descending then ascending.
  const header = page.locator('[data-testid=sweep-results] th[data-key="p:fast_period"]');
  await header.click();
  const desc = await page
    .locator("[data-testid=sweep-results] tbody tr td:nth-child(2)")
    .allInnerTexts();
  assert.deepEqual(desc, [fastPeriod + 1, fastPeriod + 1, fastPeriod, fastPeriod].map(String));
  await page.locator('[data-testid=sweep-results] th[data-key="p:fast_period"]').click();
  const asc = await page
    .locator("[data-testid=sweep-results] tbody tr td:nth-child(2)")
    .allInnerTexts();
  assert.deepEqual(asc, [fastPeriod, fastPeriod, fastPeriod + 1, fastPeriod + 1].map(String));
  const other = await page
    .locator("[data-testid=sweep-results] tbody tr")
    .first()
    .getAttribute("data-run");
  // The heatmap (AnalyzeSweep's matrix): fast periods across, slow periods down, every cell a
  // finished run.
  const heatmap = page.locator("[data-testid=sweep-heatmap]");
  assert.deepEqual(await heatmap.locator("thead th.num").allInnerTexts(), [
    String(fastPeriod),
    String(fastPeriod + 1),
  ]);
  await page.waitForFunction(
    () =>
      document.querySelectorAll(
        "[data-testid=sweep-heatmap] tbody td[data-value]:not([data-value=''])",
      ).length === 4,
    null,
    { timeout: 20000 },
  );
  assert.equal(await heatmap.locator("tbody td a").count(), 4);
  // Another metric: AnalyzeSweep maps it (5 is RANK_METRIC_MAX_DRAWDOWN).
  await page.selectOption("select[name=heatmap-metric]", "5");
  await page.locator("[data-testid=sweep-heatmap][data-metric='5'] tbody td a").first().waitFor();
  await screenshot("runs-sweep");
  console.log(`other ${other}`);
  // The URL keeps the open sweep; its button counts its finished runs.
  const sweepId = new URL(page.url()).hash.match(/[?&]sweep=([^&]+)/)?.[1];
  assert.ok(sweepId, page.url());
  await page
    .locator("[data-testid=sweeps] .toolbar button", { hasText: "4/4" })
    .first()
    .waitFor({ timeout: 20000 });

  await page.goto(`${origin}/#/runs`);
  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(300);
    await screenshot(`runs-${width}x${height}`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  // A heatmap cell opens its run's playback.
  await page.goto(`${origin}/#/runs?sweep=${sweepId}`);
  const cell = page.locator("[data-testid=sweep-heatmap] tbody td[data-run]").first();
  const cellRun = await cell.getAttribute("data-run");
  await cell.locator("a").click();
  await page.waitForFunction((run) => window.location.hash === `#/playback/${run}`, cellRun);
  await page.goto(`${origin}/#/runs`);
  // A row opens its run's playback.
  try {
    await runRow.waitFor({ timeout: 20000 });
  } finally {
    await screenshot("runs-before-row-click");
  }
  await runRow.locator("td.dataset").click();
  await page.waitForFunction((run) => window.location.hash === `#/playback/${run}`, id);
  console.log(`run ${id}`);
});
