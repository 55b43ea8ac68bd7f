// Sweeps: a TPE search launched from the form draws its best-so-far curve live (monotone, ending at
// the sweep's best); its heatmap is AnalyzeSweep's matrix, as values and as neighbourhood scores,
// and a cell opens its run; the overfitting figures are AnalyzeSweep's. A walk-forward launched
// from the form lists its folds (out-of-sample windows never overlap), draws the stitched
// out-of-sample equity, and heads the walk-forward list, whose link opens it.
import assert from "node:assert/strict";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token] = process.argv.slice(2);
const origin = new URL(url).origin;
const api = { grpcurl, address, token };
const call = (method, body) => rpc(api, `tapedeck.backtest.v1.BacktestService/${method}`, body);
const TOTAL_RETURN = "3"; // RankMetric.TOTAL_RETURN: defined for every finished run
const MAX_DRAWDOWN = "5";

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${origin}/#/runs`);
  const form = page.locator("[data-testid=launch]");
  // The BTC dataset by name: other tests add datasets (another market, uploads) before this one.
  const btc = form.locator("select[name=dataset] option", { hasText: "BTC synthetic" }).first();
  await btc.waitFor({ state: "attached", timeout: 20000 });
  const dataset = await btc.getAttribute("value");
  await form.locator("select[name=dataset]").selectOption(dataset);
  await page.selectOption("select[name=strategy]", "strategies/ema_cross");
  await page.selectOption("select[name=mode]", "sweep");
  await page.selectOption("select[name=metric]", TOTAL_RETURN);
  await page.selectOption("select[name=sampler]", "3"); // SearchAlgorithm.TPE
  // A space unlikely to be cached by an earlier run of this test.
  const base = 3 + (Date.now() % 5);
  await form.locator("input[name=param-fast_period]").fill(`${base}:${base + 3}:1`);
  await form.locator("input[name=param-slow_period]").fill(`${base + 10}:${base + 13}:1`);
  await form.locator("input[name=param-trade_size]").fill("0.5,1");
  await form.locator("input[name=budget]").fill("6");
  await form.locator("input[name=parallel]").fill("2");
  await form.locator("input[name=seed]").fill(String(Date.now() % 1000));
  await form
    .locator("[data-testid=grid-size]", { hasText: "6 trials sampled from 32 points" })
    .waitFor();
  await form.locator("button[type=submit]").click();
  await form
    .locator("[data-testid=launch-status] .status.ok", { hasText: "Sweep" })
    .waitFor({ timeout: 20000 });

  // The curve grows while the search runs (WatchSweep's best_so_far after each trial).
  const progress = page.locator("[data-testid=sweep-progress]");
  const lengths = [];
  const deadline = Date.now() + 240_000;
  let summary = "";
  while (Date.now() < deadline) {
    const values = JSON.parse((await progress.getAttribute("data-values")) ?? "[]");
    if (lengths.at(-1) !== values.length) lengths.push(values.length);
    summary = await page.locator("[data-testid=sweep-summary]").innerText();
    if (/succeeded/.test(summary) && values.length === 6) break;
    if (values.length === 3) await screenshot("sweeps-search-running");
    await page.waitForTimeout(200);
  }
  console.log(`curve lengths seen: ${lengths.join(" → ")}; ${summary}`);
  assert.match(summary, /TPE search, budget 6 · succeeded · 6 of 6 runs finished/);
  assert.ok(lengths.length >= 3, `the curve did not grow trial by trial: ${lengths}`);
  const sweepId = new URL(page.url()).hash.match(/[?&]sweep=([^&]+)/)?.[1];
  assert.ok(sweepId, page.url());
  const name = `sweeps/${sweepId}`;
  const { sweep } = call("GetSweep", { name });
  const values = JSON.parse(await progress.getAttribute("data-values"));
  const known = values.filter((v) => v !== null);
  for (let i = 1; i < known.length; i++)
    assert.ok(known[i] >= known[i - 1], `best so far went down: ${values}`);
  const best = sweep.results.find((r) => r.rank === 1);
  assert.equal(known.at(-1), best.stats.totalReturn ?? 0, `curve ${values}, best ${best.backtest}`);
  assert.equal(await progress.locator("circle").count(), known.length);

  // The heatmap is AnalyzeSweep's matrix: each cell's run and value, as values then as
  // neighbourhood scores.
  const heatmap = page.locator("[data-testid=sweep-heatmap]");
  async function matches(metric, score, [xParameter, yParameter] = ["", ""]) {
    const analysis = call("AnalyzeSweep", { name, metric: Number(metric), xParameter, yParameter });
    const want = analysis.heatmap.cells.map((cell) => {
      const value = score === "value" ? cell.point.value : cell.point.neighbourhoodScore;
      return [cell.xIndex ?? 0, cell.yIndex ?? 0, cell.point.backtest.split("/")[1], value ?? null];
    });
    await page.waitForFunction(
      ([m, n]) =>
        document.querySelector(`[data-testid=sweep-heatmap][data-metric='${m}']`) !== null &&
        document.querySelectorAll("[data-testid=sweep-heatmap] td[data-run]").length === n,
      [metric, want.length],
      { timeout: 20000 },
    );
    const got = await heatmap
      .locator("td[data-run]")
      .evaluateAll((cells) =>
        cells.map((td) => [
          Number(td.dataset.x),
          Number(td.dataset.y),
          td.dataset.run,
          td.dataset.value === "" ? null : Number(td.dataset.value),
        ]),
      );
    const order = (a, b) => a[1] - b[1] || a[0] - b[0];
    assert.deepEqual(got.sort(order), want.sort(order));
    return analysis;
  }
  const analysis = await matches(TOTAL_RETURN, "value");
  assert.equal(
    await heatmap.locator("thead th.num").count(),
    analysis.heatmap.xValues.length,
    "one column per x value",
  );
  await page.selectOption("select[name=heatmap-score]", "neighbourhood");
  await matches(TOTAL_RETURN, "neighbourhood");
  await page.selectOption("select[name=heatmap-metric]", MAX_DRAWDOWN);
  await matches(MAX_DRAWDOWN, "neighbourhood");
  await page.selectOption("select[name=heatmap-score]", "value");
  await matches(MAX_DRAWDOWN, "value");
  // Three parameters: the map spreads out the two chosen, the best over the third.
  await page.selectOption("select[name=heatmap-y]", "trade_size");
  await page
    .locator("[data-testid=sweep-heatmap] th", { hasText: "trade_size ↓ · fast_period →" })
    .waitFor({ timeout: 20000 });
  await matches(MAX_DRAWDOWN, "value", ["fast_period", "trade_size"]);

  // The overfitting figures are AnalyzeSweep's, each with its one-line meaning (or its reason).
  const odds = analysis.odds ?? {};
  const overfitting = page.locator("[data-testid=overfitting]");
  if (odds.unavailableReason) {
    assert.equal(
      await overfitting.locator("[data-testid=overfitting-unavailable]").innerText(),
      odds.unavailableReason,
    );
  } else {
    const figures = await overfitting
      .locator("dd")
      .evaluateAll((dds) =>
        dds.map((dd) => [dd.dataset.figure, dd.querySelector(".hint").textContent.trim()]),
      );
    assert.deepEqual(
      figures.map(([key]) => key),
      ["dsr", "pbo", "best", "expected", "trials", "variance", "observations", "cscv"],
    );
    for (const [key, meaning] of figures) assert.ok(meaning.length > 20, `${key}: ${meaning}`);
    assert.equal(
      await overfitting.locator("[data-figure=trials] strong").innerText(),
      String(odds.trials),
    );
  }
  console.log(`odds: ${JSON.stringify(odds)}`);
  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(300);
    await screenshot(`sweeps-search-${width}x${height}`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });

  // A cell opens its run's playback.
  const cell = heatmap.locator("td[data-run]").first();
  const cellRun = await cell.getAttribute("data-run");
  await cell.locator("a").click();
  await page.waitForFunction((run) => window.location.hash === `#/playback/${run}`, cellRun);

  // A walk-forward: two rolling folds, each a grid over two fast periods.
  await page.goto(`${origin}/#/runs`);
  await btc.waitFor({ state: "attached", timeout: 20000 });
  await form.locator("select[name=dataset]").selectOption(dataset);
  await page.selectOption("select[name=strategy]", "strategies/ema_cross");
  await page.selectOption("select[name=mode]", "walkforward");
  await page.selectOption("select[name=metric]", TOTAL_RETURN);
  await form.locator("input[name=param-fast_period]").fill(`${base},${base + 1}`);
  await form.locator("input[name=param-slow_period]").fill(String(base + 11));
  await form.locator("input[name=folds]").fill("2");
  await form.locator("input[name=in-sample]").fill("4");
  await form.locator("input[name=out-of-sample]").fill("2");
  await form
    .locator("[data-testid=grid-size]", { hasText: "2 runs in the grid of each fold" })
    .waitFor();
  await screenshot("sweeps-walk-forward-form");
  await form.locator("button[type=submit]").click();
  await form
    .locator("[data-testid=launch-status] .status.ok", { hasText: "Walk-forward" })
    .waitFor({ timeout: 20000 });
  const walk = page.locator("[data-testid=walk-forward]");
  const equity = walk.locator(".walk-forward-equity[data-state=drawn]");
  await equity.waitFor({ timeout: 240_000 });
  const walkId = new URL(page.url()).hash.match(/[?&]walkForward=([^&]+)/)?.[1];
  assert.ok(walkId, page.url());
  const { walkForward } = call("GetWalkForward", { name: `walkForwards/${walkId}` });
  assert.equal(walkForward.state, "WALK_FORWARD_STATE_SUCCEEDED");
  assert.match(
    await walk.locator("[data-testid=walk-forward-summary]").innerText(),
    /succeeded · 2 of 2 folds/,
  );
  const folds = await walk
    .locator("[data-testid=walk-forward-folds] tbody tr")
    .evaluateAll((rows) =>
      rows.map((tr) => ({
        inSample: tr.dataset.inSample.split(",").map(Number),
        outOfSample: tr.dataset.outOfSample.split(",").map(Number),
        cells: [...tr.querySelectorAll("td")].map((td) => td.textContent),
      })),
    );
  assert.equal(folds.length, 2);
  // RFC 3339 with up to nanoseconds: whole seconds from Date.parse, the fraction from the text.
  const seconds = (ts) =>
    Math.floor(Date.parse(ts) / 1000) + Number(`0.${ts.match(/\.(\d+)Z$/)?.[1] ?? "0"}`);
  folds.forEach((fold, i) => {
    const want = walkForward.folds[i];
    assert.deepEqual(fold.outOfSample, [
      seconds(want.outOfSample.startTime),
      seconds(want.outOfSample.endTime),
    ]);
    assert.equal(fold.inSample[1], fold.outOfSample[0], "out of sample follows in sample");
    assert.ok(fold.cells[4].startsWith("fast_period="), `chosen parameters: ${fold.cells}`);
    assert.ok(fold.cells[6] !== "", `out-of-sample metric: ${fold.cells}`);
    if (i > 0)
      assert.ok(
        fold.outOfSample[0] >= folds[i - 1].outOfSample[1],
        `overlap: ${JSON.stringify(folds)}`,
      );
  });
  const points = Number(await equity.getAttribute("data-points"));
  assert.ok(points > 10, `stitched equity points: ${points}`);
  assert.ok((await equity.locator("canvas").count()) > 0, "the curve is drawn");
  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(300);
    await walk.scrollIntoViewIfNeeded();
    await screenshot(`sweeps-walk-forward-${width}x${height}`);
  }
  console.log(`walk-forward ${walkId}: ${folds.length} folds, ${points} equity points`);

  // NSGA-II needs a second objective other than the ranked metric; the sweep names both.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.selectOption("select[name=mode]", "sweep");
  await page.selectOption("select[name=sampler]", "4"); // SearchAlgorithm.NSGA2
  await form.locator("input[name=param-fast_period]").fill(`${base}:${base + 3}:1`);
  await form.locator("input[name=param-slow_period]").fill(`${base + 10}:${base + 13}:1`);
  await form.locator("input[name=budget]").fill("4");
  await page.selectOption("select[name=against]", TOTAL_RETURN);
  await form.locator(".field-error", { hasText: "NSGA-II needs a second metric" }).waitFor();
  assert.equal(await form.locator("button[type=submit]").isDisabled(), true);
  await page.selectOption("select[name=against]", MAX_DRAWDOWN);
  await form.locator("button[type=submit]").click();
  await page
    .locator("[data-testid=sweep-summary]", {
      hasText: "NSGA-II search of total return against max drawdown, budget 4",
    })
    .waitFor({ timeout: 20000 });
  console.log("NSGA-II search launched");

  // The walk-forward list (ListWalkForwards) has it first, final, and its link opens it afresh.
  await page.goto(`${origin}/#/runs`);
  const listed = page.locator("[data-testid=walk-forwards] tbody tr").first();
  await listed.waitFor({ timeout: 20000 });
  assert.equal(await listed.getAttribute("data-walk-forward"), walkId);
  assert.equal(await listed.getAttribute("data-state"), "succeeded");
  assert.equal(await listed.getAttribute("data-dataset"), dataset);
  assert.equal(walkForward.baseSpec.dataset, dataset);
  const cells = await listed.locator("td").allInnerTexts();
  assert.equal(cells[2], "succeeded");
  assert.equal(cells[4], "2/2", `folds run: ${cells}`);
  if (walkForward.efficiency === undefined) assert.equal(cells[5], "");
  else {
    const shown = Number(cells[5].replace(/,/g, "")); // two decimals, thousands separated
    assert.ok(Math.abs(shown - walkForward.efficiency) < 0.006, `${cells}`);
  }
  assert.equal(await walk.isHidden(), true, "no walk-forward is open before the link");
  await screenshot("sweeps-walk-forward-list");
  await listed.locator("a").click();
  await page.waitForFunction((id) => window.location.hash.includes(`walkForward=${id}`), walkId);
  await walk
    .locator("[data-testid=walk-forward-summary]", { hasText: walkId.slice(0, 8) })
    .waitFor();
  assert.match(
    await walk.locator("[data-testid=walk-forward-summary]").innerText(),
    /succeeded · 2 of 2 folds/,
  );
  console.log(`walk-forward ${walkId} listed first and opened from the list`);
});
