// Wallets: the table stays virtualised with hundreds of rows; reconciling against the exchange
// emulator streams results in and highlights the wallet whose stored BTC differs.
import assert from "node:assert/strict";
import { withPage } from "./browser.mjs";

const [url, expected] = process.argv.slice(2);
const origin = new URL(url).origin;

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${origin}/#/wallets`);
  await page
    .locator("[data-testid=wallet-count]", { hasText: `${expected} wallets` })
    .waitFor({ timeout: 20000 });

  // Virtualised: only the rows on screen are in the DOM, and scrolling to the end is instant.
  const rendered = await page.locator("[data-testid=wallets] .vt-row[data-key]").count();
  assert.ok(rendered > 5 && rendered < 80, `${rendered} rows in the DOM for ${expected} wallets`);
  const firstRow = () =>
    page.locator("[data-testid=wallets] .vt-row[data-key]").first().getAttribute("data-key");
  const top = await firstRow();
  await page
    .locator("[data-testid=wallets] .vt-viewport")
    .evaluate((el) => (el.scrollTop = el.scrollHeight));
  await page.waitForFunction(
    (key) =>
      document
        .querySelector("[data-testid=wallets] .vt-row[data-key]")
        ?.getAttribute("data-key") !== key,
    top,
  );
  const atBottom = await page.locator("[data-testid=wallets] .vt-row[data-key]").count();
  assert.ok(atBottom < 80, `${atBottom} rows in the DOM at the bottom`);
  // Scrolling through every row: each frame renders only the visible rows.
  const scroll = await page.locator("[data-testid=wallets] .vt-viewport").evaluate(async (el) => {
    performance.clearMeasures("tapedeck:vtable-render");
    const intervals = [];
    let last = performance.now();
    for (let top = 0; top < el.scrollHeight; top += el.clientHeight) {
      el.scrollTop = top;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      intervals.push(now - last);
      last = now;
    }
    const renders = performance
      .getEntriesByName("tapedeck:vtable-render")
      .map((e) => e.duration)
      .sort((a, b) => a - b);
    return {
      frames: intervals.length,
      longest: Math.max(...intervals),
      renderP50: renders[Math.floor(renders.length / 2)],
      renderMax: renders.at(-1),
    };
  });
  console.log(
    `scrolled ${expected} wallets page by page: ${scroll.frames} frames, longest frame ${scroll.longest.toFixed(0)} ms; ` +
      `rendering the visible rows p50 ${scroll.renderP50.toFixed(1)} ms, max ${scroll.renderMax.toFixed(1)} ms`,
  );
  await page.locator("[data-testid=wallets] .vt-viewport").evaluate((el) => (el.scrollTop = 0));

  await page.click("text=Reconcile all");
  await page
    .locator('[data-testid=reconcile-summary][data-state="succeeded"]')
    .waitFor({ timeout: 60000 });
  const mismatched = await page
    .locator('[data-testid=reconcile-summary] [data-count="mismatched"]')
    .innerText();
  assert.equal(mismatched, "1 mismatched");

  await page.check("input[name=only-diffs]");
  const row = page.locator("[data-testid=wallets] .vt-row", { hasText: "desk-mismatching" });
  await row.waitFor();
  // The mismatching row is on screen before the filter too: wait for the filtered table itself.
  await page.waitForFunction(
    () => document.querySelectorAll("[data-testid=wallets] .vt-row[data-key]").length === 1,
    null,
    { timeout: 10000 },
  );
  assert.match((await row.getAttribute("class")) ?? "", /mismatch/);
  assert.match(await row.innerText(), /BTC \+0\.5/);
  assert.equal(await page.locator("[data-testid=wallets] .vt-row[data-key]").count(), 1);
  await row.click();
  const detail = page.locator("[data-testid=wallet-detail]");
  await detail.locator("tr.mismatch", { hasText: "BTC" }).waitFor();
  const cells = await detail.locator("tr.mismatch td").allInnerTexts();
  assert.deepEqual(cells, ["BTC", "1.25", "1.75", "+0.5"]);
  // ETH keeps all 18 decimals: money is never turned into a float.
  await detail.locator("td", { hasText: "10.123456789012345678" }).first().waitFor();
  // The detail opens beside the row, on screen, not below the table.
  const [rowBox, detailBox] = [await row.boundingBox(), await detail.boundingBox()];
  assert.ok(detailBox.x >= rowBox.x + rowBox.width - 1, "the detail is not beside the table");
  assert.ok(
    detailBox.y < 800 && detailBox.y + 40 > 0,
    `the detail is off screen at ${detailBox.y}`,
  );
  console.log("mismatch highlighted: BTC stored 1.25, exchange 1.75");
  await screenshot("wallets-reconciled");
  await page.uncheck("input[name=only-diffs]");
  await screenshot("wallets-all");
});
