// The live tail survives the live service dying: it shows that it is reconnecting, comes back by
// itself (1 s, x1.5 backoff) and resumes from its cursor, so an event appended while it was away is
// shown exactly once.
import assert from "node:assert/strict";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token, livePid] = process.argv.slice(2);
const origin = new URL(url).origin;
const gateway = { grpcurl, address, token };

// Whether the append went through (the live service may be down).
function tryAppend(event) {
  try {
    const method = "tapedeck.live.v1.LiveService/AppendEvents";
    rpc(gateway, method, { events: [event] }, { maxTime: 3 });
    return true;
  } catch {
    return false;
  }
}

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${origin}/#/live`);
  const tail = page.locator("[data-testid=tail-state]");
  await page.locator('[data-testid="tail-state"][data-state="live"]').waitFor({ timeout: 15000 });

  process.kill(Number(livePid), "SIGKILL");
  await page
    .locator('[data-testid="tail-state"][data-state="retrying"]')
    .waitFor({ timeout: 15000 });
  console.log(`while down: ${await tail.innerText()}`);
  await screenshot("live-reconnecting");

  // Append as soon as the restarted service takes writes: the page may still be waiting to reconnect.
  const id = `while-away-${Date.now()}`;
  const event = {
    event_id: id,
    type: "EVENT_TYPE_ORDER_FILLED",
    run_id: id,
    symbol: "BTC-USD",
    time: new Date().toISOString(),
  };
  const deadline = Date.now() + 60_000;
  while (!tryAppend(event)) {
    assert.ok(Date.now() < deadline, "the live service did not come back");
    await page.waitForTimeout(200);
  }
  const row = page.locator("[data-testid=events] .vt-row", { hasText: id });
  await row.waitFor({ timeout: 35_000 });
  await page.locator('[data-testid="tail-state"][data-state="live"]').waitFor({ timeout: 35_000 });
  // Appending the same id again is a no-op server side; and the tail never repeats what it showed.
  tryAppend(event);
  await page.waitForTimeout(1500);
  assert.equal(await row.count(), 1);
  console.log("resumed from its cursor: the event appended while away is shown once");
  await screenshot("live-resumed");
});
