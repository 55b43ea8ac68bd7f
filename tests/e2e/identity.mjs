// Identity: the header names the token and its role; a viewer sees Launch and Reconcile disabled
// with the reason before clicking; a rejected token leads to a sign-in form where a token can be
// pasted, and the app opens with it.
import assert from "node:assert/strict";
import { signInAs, withPage } from "./browser.mjs";

const [origin, viewer, admin] = process.argv.slice(2);

await withPage(async (page, screenshot) => {
  // A viewer.
  await signInAs(page, origin, viewer, "viewer · viewer");
  await page.goto(`${origin}/#/runs`);
  const launch = page.locator("[data-testid=launch] button[type=submit]");
  await page
    .locator("[data-testid=launch] select[name=dataset] option")
    .first()
    .waitFor({ state: "attached", timeout: 20000 });
  assert.equal(await launch.isDisabled(), true, "a viewer can launch");
  assert.match(await launch.getAttribute("title"), /needs the operator role; viewer is a viewer/);
  assert.match(
    await page.locator("[data-testid=launch-refused]").innerText(),
    /Launching needs the operator role/,
  );
  // The walk-forward and search launches are the same form, gated the same way.
  await page.selectOption("[data-testid=launch] select[name=mode]", "walkforward");
  await page.locator("[data-testid=launch] button", { hasText: "Launch walk-forward" }).waitFor();
  assert.equal(await launch.isDisabled(), true, "a viewer can launch a walk-forward");
  await screenshot("identity-viewer-runs");
  await page.goto(`${origin}/#/wallets`);
  const reconcile = page.locator("button", { hasText: "Reconcile all" });
  await reconcile.waitFor();
  assert.equal(await reconcile.isDisabled(), true, "a viewer can reconcile");
  assert.match(await reconcile.getAttribute("title"), /needs the operator role/);

  // A token the gateway does not know: the sign-in form, then the app with a pasted token.
  await page.goto(`${origin}/#token=not-a-token-of-this-stack-at-all`);
  await page.reload(); // a new hash alone does not reload the page
  const form = page.locator("[data-testid=sign-in]");
  await form.waitFor();
  assert.match(await form.locator("[role=alert]").innerText(), /Not signed in/);
  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await screenshot(`sign-in-${width}x${height}`);
  }
  await form.locator("input[name=token]").fill(admin);
  await form.locator("button[type=submit]").click();
  await page.locator("[data-testid=who]", { hasText: "admin · admin" }).waitFor();
  await page.goto(`${origin}/#/runs`);
  await page
    .locator("[data-testid=launch] select[name=dataset] option")
    .first()
    .waitFor({ state: "attached", timeout: 20000 });
  assert.equal(await page.locator("[data-testid=launch] button[type=submit]").isDisabled(), false);

  // Signing out leads back to the form.
  await page.locator("#identity button", { hasText: "Sign out" }).click();
  await form.waitFor();
  console.log("identity: viewer gated, sign-in form accepts a pasted token");
});
