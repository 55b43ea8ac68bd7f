// Opens the app through Envoy with the launcher's token link; the Stack page shows every service
// serving, the traffic the app itself made, the queues, and refreshes on its own.
import assert from "node:assert/strict";
import { withPage } from "./browser.mjs";

const [url] = process.argv.slice(2);
await withPage(async (page, screenshot) => {
  await page.goto(url);
  // The token leaves the address bar once stored.
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  // The runs page lists runs: traffic for the backtest service's row.
  await page.goto(`${new URL(url).origin}/#/runs`);
  await page.goto(`${new URL(url).origin}/#/overview`);
  for (const service of ["backtest", "wallets", "live"]) {
    const row = page.locator(`tr[data-service="${service}"]`);
    await row.waitFor();
    await page.waitForFunction(
      (name) => document.querySelector(`tr[data-service="${name}"]`)?.dataset.state === "up",
      service,
      { timeout: 30000 },
    );
  }
  await page.waitForFunction(
    () => Number(document.querySelector('tr[data-service="backtest"]')?.dataset.rate) > 0,
    undefined,
    { timeout: 30000 },
  );
  const backtest = await page.locator('tr[data-service="backtest"]').innerText();
  assert.match(backtest, /serving/);
  const queues = await page.locator(".stack-queues").innerText();
  assert.match(queues, /Run queue: \d+ · Oldest outbox event: .+ · Live subscribers: \d+/);
  // Refreshed live: a later read replaces the first without reloading the page.
  const first = await page.locator(".stack-updated").getAttribute("data-read-time");
  await page.waitForFunction(
    (before) => document.querySelector(".stack-updated")?.dataset.readTime !== before,
    first,
    { timeout: 15000 },
  );
  // The header names the launcher link's token and its role (WhoAmI).
  assert.equal(await page.locator("[data-testid=who]").innerText(), "admin · admin");
  await screenshot("overview");

  // Every view at the two window sizes traders use.
  for (const view of ["runs", "playback", "wallets", "live", "overview"])
    for (const [width, height] of [
      [1280, 800],
      [1440, 900],
    ]) {
      await page.setViewportSize({ width, height });
      await page.goto(`${new URL(url).origin}/#/${view}`);
      await page.waitForTimeout(1200);
      await screenshot(`view-${view}-${width}x${height}`);
    }
});
