// Ops at a glance: the page's valued total equals GetBalanceTotals, its blocked count and reasons
// equal ListBlocks over the last hour, its open positions equal ListSessions', the latest
// reconciliation's state is ListReconciliations', and the quote currency is a kept setting.
import assert from "node:assert/strict";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token] = process.argv.slice(2);
const origin = new URL(url).origin;
const gateway = { grpcurl, address, token };

const totals = (quote) =>
  rpc(gateway, "tapedeck.wallets.v1.WalletService/GetBalanceTotals", { quote_currency: quote });

function lastHourBlocks() {
  const now = Date.now();
  const reply = rpc(gateway, "tapedeck.live.v1.LiveService/ListBlocks", {
    filter: {
      time_range: {
        start_time: new Date(now - 3600_000).toISOString(),
        end_time: new Date(now).toISOString(),
      },
    },
    page_size: 1,
  });
  const reasons = Object.fromEntries(
    (reply.reasonCounts ?? []).map((r) => [r.reason, Number(r.count)]),
  );
  return { count: Object.values(reasons).reduce((a, b) => a + b, 0), reasons };
}

function openPositionIds() {
  const ids = [];
  let pageToken = "";
  do {
    const reply = rpc(gateway, "tapedeck.live.v1.LiveService/ListSessions", {
      page_size: 500,
      page_token: pageToken,
    });
    for (const session of reply.sessions ?? [])
      for (const position of session.openPositions ?? []) ids.push(position.positionId);
    pageToken = reply.nextPageToken ?? "";
  } while (pageToken !== "");
  return ids.sort();
}

// Polls until the page shows what `expected()` says now (the page refreshes every 5 s).
async function agrees(page, name, expected, shown, timeout = 30000) {
  const deadline = Date.now() + timeout;
  let want;
  let got;
  for (;;) {
    want = JSON.stringify(expected());
    got = JSON.stringify(await shown());
    if (want === got) return JSON.parse(want);
    if (Date.now() > deadline) assert.fail(`${name}: page shows ${got}, the RPC says ${want}`);
    await page.waitForTimeout(500);
  }
}

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.evaluate(() => window.localStorage.removeItem("tapedeck.ops.quote"));
  await page.goto(`${origin}/#/ops`);
  assert.equal(await page.locator("[data-testid=ops-quote]").inputValue(), "USD");

  // The valued total, and each asset's value, as GetBalanceTotals gives them.
  const figure = page.locator("[data-testid=ops-total-value]");
  const usd = await agrees(
    page,
    "total value",
    () => {
      const reply = totals("USD");
      return [reply.totalValue, reply.unpricedCount ?? 0];
    },
    async () => [
      await figure.getAttribute("data-value"),
      Number(
        (await page.locator("[data-testid=ops-totals-note]").innerText()).match(
          /^(\d+) asset/,
        )?.[1] ?? 0,
      ),
    ],
  );
  assert.ok(Number(usd[0]) > 0, "the wallets hold priced assets");
  assert.ok(usd[1] >= 1, "SOL has no SOL-USD market: listed unpriced");
  const byAsset = Object.fromEntries(totals("USD").assets.map((a) => [a.asset, a.value ?? ""]));
  for (const [asset, value] of Object.entries(byAsset))
    assert.equal(
      await page.locator(`tr[data-asset="${asset}"]`).getAttribute("data-value"),
      value,
      `${asset}'s value`,
    );
  console.log(`valued total ${usd[0]} USD as GetBalanceTotals`);

  // Blocked trades over the last hour: the count and every reason's count.
  const blocks = await agrees(page, "blocked trades", lastHourBlocks, async () => {
    const count = Number(await page.locator("[data-testid=ops-blocks]").getAttribute("data-count"));
    const reasons = Object.fromEntries(
      await page
        .locator("[data-testid=ops-blocked] tr[data-reason]")
        .evaluateAll((rows) => rows.map((r) => [r.dataset.reason, Number(r.dataset.count)])),
    );
    return { count, reasons };
  });
  assert.ok(blocks.count >= 3, "the blocks appended a minute ago are in the window");
  assert.match(await page.locator("[data-testid=ops-blocks]").innerText(), /blocked · [\d.]+\/min/);
  console.log(
    `blocked ${blocks.count} in the last hour as ListBlocks: ${JSON.stringify(blocks.reasons)}`,
  );

  // Open live positions across sessions.
  const positions = await agrees(page, "open positions", openPositionIds, () =>
    page
      .locator("[data-testid=ops-positions] tr[data-position]")
      .evaluateAll((rows) => rows.map((r) => r.dataset.position).sort()),
  );
  assert.ok(positions.length >= 2, "the sessions' open positions are listed");
  assert.ok(!positions.includes("ETHUSD.OPS-closed"), "a closed position is not open");
  console.log(`open positions ${positions.join(", ")} as ListSessions`);

  // The latest reconciliation's state and mismatches.
  await agrees(
    page,
    "latest reconciliation",
    () => {
      const latest = rpc(gateway, "tapedeck.wallets.v1.WalletService/ListReconciliations", {
        page_size: 1,
      }).reconciliations[0];
      return [latest.name, latest.state.replace("RECONCILIATION_STATE_", "").toLowerCase()];
    },
    async () => {
      const state = page.locator("[data-testid=ops-reconciliation]");
      return [await state.getAttribute("data-name"), await state.getAttribute("data-state")];
    },
  );
  await page.locator("[data-testid=ops-mismatches] li", { hasText: "ops-short" }).waitFor();

  // Every service serving, with its error ratio.
  for (const service of ["backtest", "wallets", "live"])
    await page
      .locator(`[data-testid=ops-services] tr[data-service="${service}"][data-state="up"]`)
      .waitFor();

  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(300);
    await screenshot(`ops-${width}x${height}`);
  }

  // The quote currency is a setting: EUR values as GetBalanceTotals(EUR), kept across reloads.
  await page.locator("[data-testid=ops-quote]").fill("eur");
  await page.locator("[data-testid=ops-quote]").press("Enter");
  await page.locator("[data-testid=ops-quote]").blur();
  await page.waitForFunction(
    () => document.querySelector("[data-testid=ops-total-value]")?.dataset.quote === "EUR",
  );
  assert.equal(await figure.getAttribute("data-value"), totals("EUR").totalValue);
  await page.reload();
  assert.equal(await page.locator("[data-testid=ops-quote]").inputValue(), "EUR");
  console.log("quote currency kept as a setting");
  await page.evaluate(() => window.localStorage.removeItem("tapedeck.ops.quote"));
});
