// Wallets: the table stays virtualised with hundreds of rows; reconciling against the exchange
// emulator streams results in and highlights the wallet whose stored BTC differs. An admin creates
// a wallet, sets a balance and deletes it; a viewer sees those controls disabled with the reason.
import assert from "node:assert/strict";
import { signInAs, withPage } from "./browser.mjs";

const [url, expected, viewer] = process.argv.slice(2);
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
  // The asset filter finds it by the asset that differs.
  await page.fill("input[aria-label='Filter wallets']", "BTC");
  await page
    .locator("[data-testid=wallet-count]", { hasText: `1 of ${expected} wallets` })
    .waitFor();
  await row.click();
  const detail = page.locator("[data-testid=wallet-detail]");
  await detail.locator("tr.mismatch", { hasText: "BTC" }).waitFor();
  const cells = await detail.locator("tr.mismatch td").allInnerTexts();
  assert.deepEqual(cells, ["BTC", "1.25", "1.75", "+0.5"]);
  // ETH keeps all 18 decimals: money is never turned into a float.
  await detail.locator("td", { hasText: "10.123456789012345678" }).first().waitFor();
  // The detail opens beside the row, on screen, not below the table (read in one frame: the
  // virtual table may redraw its rows while results stream in).
  const boxes = await page.waitForFunction(() => {
    const row = [...document.querySelectorAll("[data-testid=wallets] .vt-row")].find((r) =>
      r.textContent?.includes("desk-mismatching"),
    );
    const detail = document.querySelector("[data-testid=wallet-detail]");
    if (!row || !detail) return null;
    const [r, d] = [row.getBoundingClientRect(), detail.getBoundingClientRect()];
    return r.width > 0 && d.width > 0 ? { rowRight: r.right, detailX: d.x, detailY: d.y } : null;
  });
  const { rowRight, detailX, detailY } = await boxes.jsonValue();
  assert.ok(detailX >= rowRight - 1, "the detail is not beside the table");
  assert.ok(detailY < 800 && detailY + 40 > 0, `the detail is off screen at ${detailY}`);
  console.log("mismatch highlighted: BTC stored 1.25, exchange 1.75");
  await screenshot("wallets-reconciled");
  await page.uncheck("input[name=only-diffs]");
  await page.fill("input[aria-label='Filter wallets']", "");
  await screenshot("wallets-all");

  // An admin creates a wallet, sets a balance on it and deletes it.
  const count = page.locator("[data-testid=wallet-count]");
  await page.click("button:text-is('New wallet')");
  const create = page.locator("[data-testid=create-wallet]");
  await create.locator("input[name=display-name]").fill("desk-new");
  await create.locator("input[name=account-ref]").fill("acct-new");
  await create.locator("input[name=credentials-ref]").fill("CDP_NEW");
  await create.locator("button[type=submit]").click();
  const created = create.locator(".status.ok, [role=alert]");
  await created.waitFor();
  assert.match(await created.innerText(), /Created desk-new/);
  await count.filter({ hasText: `${Number(expected) + 1} wallets` }).waitFor();
  await detail.locator("h2", { hasText: "desk-new" }).waitFor();
  const setBalance = detail.locator("[data-testid=set-balance]");
  await setBalance.locator("input[name=asset]").fill("btc");
  await setBalance.locator("input[name=total]").fill("0.123456789");
  await setBalance.locator("button[type=submit]").click();
  const balance = detail.locator("tbody tr", { hasText: "BTC" });
  await balance.waitFor();
  assert.deepEqual((await balance.locator("td").allInnerTexts()).slice(0, 2), [
    "BTC",
    "0.123456789",
  ]);
  // Filtered to it, the new wallet's row is selected and the detail sits beside it, in view.
  await page.fill("input[aria-label='Filter wallets']", "desk-new");
  const newRow = page.locator("[data-testid=wallets] .vt-row.selected", { hasText: "desk-new" });
  await newRow.waitFor();
  const [newBox, box] = [await newRow.boundingBox(), await detail.boundingBox()];
  assert.ok(box.x >= newBox.x + newBox.width - 1, "the detail is not beside the row");
  assert.ok(box.y < 800 && box.y + 40 > 0, `the detail is off screen at ${box.y}`);
  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await screenshot(`wallets-admin-${width}x${height}`);
  }
  page.once("dialog", (dialog) => dialog.accept());
  await detail.locator("button", { hasText: "Delete wallet" }).click();
  await count.filter({ hasText: `${expected} wallets` }).waitFor();
  await detail.waitFor({ state: "hidden" });
  await page.fill("input[aria-label='Filter wallets']", "");
  console.log("admin: wallet created, balance set, deleted");

  // A viewer: create, set balance and delete are disabled with the reason.
  await signInAs(page, origin, viewer, "viewer");
  await page.goto(`${origin}/#/wallets`);
  const newWallet = page.locator("button:text-is('New wallet')");
  assert.equal(await newWallet.isDisabled(), true, "a viewer can create wallets");
  assert.match(await newWallet.getAttribute("title"), /needs the admin role; viewer is a viewer/);
  await page
    .locator("[data-testid=wallet-admin-refused]", {
      hasText: "Creating a wallet needs the admin role",
    })
    .waitFor();
  await page.locator("[data-testid=wallets] .vt-row", { hasText: "desk-matching" }).click();
  await detail.locator("h2", { hasText: "desk-matching" }).waitFor();
  for (const [name, action] of [
    ["Set balance", "Setting balances"],
    ["Delete wallet", "Deleting a wallet"],
  ]) {
    const button = detail.locator("button", { hasText: name });
    assert.equal(await button.isDisabled(), true, `a viewer can ${name}`);
    assert.match(await button.getAttribute("title"), new RegExp(`${action} needs the admin role`));
  }
  await screenshot("wallets-viewer");
  console.log("viewer gated: create, set balance and delete disabled with the reason");
});
