// Live events: counts per block reason, filters, and an event appended through the gateway shows up in
// the live tail, once (its latency is printed; the latency target is bench/live's, not a test's).
import assert from "node:assert/strict";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token] = process.argv.slice(2);
const origin = new URL(url).origin;
const gateway = { grpcurl, address, token };
const append = (event) =>
  rpc(gateway, "tapedeck.live.v1.LiveService/AppendEvents", { events: [event] });

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${origin}/#/live`);
  await page.locator('[data-testid="tail-state"][data-state="live"]').waitFor({ timeout: 15000 });

  // Seeded blocks are counted per reason, largest first.
  const reasons = page.locator("[data-testid=reason-counts] .reason");
  await reasons.first().waitFor();
  assert.equal(await reasons.first().getAttribute("data-reason"), "insufficient_funds");
  assert.match(await reasons.first().innerText(), /2/);

  // Append while watching: it appears in the tail.
  const runId = `tail-${Date.now()}`;
  const started = Date.now();
  const eventTime = new Date();
  append({
    event_id: runId,
    type: "EVENT_TYPE_TRADE_BLOCKED",
    run_id: runId,
    symbol: "BTC-USD",
    reason: "stale_balance",
    time: eventTime.toISOString(),
    payload: { note: `${"wide ".repeat(60)}end-of-payload`, requested: "12345.6789" },
  });
  const row = page.locator("[data-testid=events] .vt-row", { hasText: runId });
  await row.waitFor({ timeout: 15000 });
  console.log(`appended event shown in the live tail after ${Date.now() - started} ms`);
  await page.waitForTimeout(300);
  assert.equal(await row.count(), 1, "an event must be shown once");
  // Its block reason is counted too.
  await page.locator('[data-testid=reason-counts] .reason[data-reason="stale_balance"]').waitFor();
  await screenshot("live-tail");

  // Clicking the row shows its whole payload (the column cuts it); clicking again hides it.
  await row.locator("div[role=cell]").nth(6).click();
  const detail = page.locator("[data-testid=event-detail]");
  await detail.waitFor();
  const full = await detail.innerText();
  assert.match(full, /end-of-payload/);
  assert.match(full, /12345\.6789/);
  await screenshot("live-event-detail");
  await row.locator("div[role=cell]").nth(6).click();
  await detail.waitFor({ state: "hidden" });
  // Its run id links to the run's playback at the event's time.
  const runLink = row.locator("[data-testid=run-link]");
  const href = await runLink.getAttribute("href");
  assert.match(href, new RegExp(`^#/playback/${runId}\\?t=\\d+$`));
  const linked = Number(new URL(href.slice(1), origin).searchParams.get("t"));
  assert.ok(
    Math.abs(linked * 1000 - eventTime.getTime()) <= 500,
    `link at ${linked}, event at ${eventTime.toISOString()}`,
  );
  await runLink.click();
  await page.waitForFunction((id) => window.location.hash.startsWith(`#/playback/${id}?t=`), runId);
  assert.equal(await detail.count(), 0, "the link opens the playback, not the row");
  await page.goto(`${origin}/#/live`);
  await page.locator('[data-testid="tail-state"][data-state="live"]').waitFor({ timeout: 15000 });

  // Filters go into the address (shareable) and into the query.
  await page.selectOption("select[name=type]", { label: "order_filled" });
  await page.click(".filters button[type=submit]");
  await page.waitForFunction(() => window.location.hash.includes("type=1"));
  await page.locator('[data-testid="tail-state"][data-state="live"]').waitFor();
  const rows = page.locator("[data-testid=events] .vt-row[data-key]");
  await rows.first().waitFor();
  const types = await page
    .locator("[data-testid=events] .vt-row[data-key] > div:nth-child(3)")
    .allInnerTexts();
  assert.ok(
    types.length > 0 && types.every((t) => t === "order_filled"),
    `filtered types: ${types}`,
  );
  // A blocked trade does not match the filter, so it must not reach the tail.
  const hidden = `hidden-${Date.now()}`;
  append({
    event_id: hidden,
    type: "EVENT_TYPE_TRADE_BLOCKED",
    run_id: hidden,
    reason: "max_notional",
    time: new Date().toISOString(),
  });
  const filled = `filled-${Date.now()}`;
  append({
    event_id: filled,
    type: "EVENT_TYPE_ORDER_FILLED",
    run_id: filled,
    symbol: "ETH-USD",
    time: new Date().toISOString(),
  });
  await page
    .locator("[data-testid=events] .vt-row", { hasText: filled })
    .waitFor({ timeout: 5000 });
  assert.equal(await page.locator("[data-testid=events] .vt-row", { hasText: hidden }).count(), 0);
  await screenshot("live-filtered");
});
