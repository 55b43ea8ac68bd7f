// Opens the app through Envoy with the launcher's token link and checks every service answers.
import assert from "node:assert/strict";
import { withPage } from "./browser.mjs";

const [url] = process.argv.slice(2);
await withPage(async (page, screenshot) => {
  await page.goto(url);
  // The token leaves the address bar once stored.
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${new URL(url).origin}/#/overview`);
  for (const service of ["backtest", "wallets", "live"]) {
    const row = page.locator(`tr[data-service="${service}"]`);
    await row.waitFor();
    await page.waitForFunction(
      (name) => document.querySelector(`tr[data-service="${name}"]`)?.dataset.state !== undefined,
      service,
    );
    const state = await row.getAttribute("data-state");
    const text = await row.innerText();
    assert.equal(state, "up", `${service}: ${text}`);
  }
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
