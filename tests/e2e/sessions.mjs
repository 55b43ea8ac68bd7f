// Live sessions: a session the bridge would have sent (generated from a backtest's trades, one late
// and at a worse price, one dropped, one extra) is listed with ListSessions' counts; its fills chart
// has one marker per fill (ListEvents), its round trips table is ListSessionTrades; the drift view
// shows CompareWithSession's counts, trades and summary, keeps its choice in the URL, opens the
// run's playback at a matched trade's entry, and says what went wrong when the service refuses;
// an appended fill reaches the open view; times follow the zone setting. Screenshots at 1280x800
// and 1440x900.
import assert from "node:assert/strict";
import { rpc, withPage } from "./browser.mjs";

const [url, grpcurl, address, token, session, run, gap] = process.argv.slice(2);
const origin = new URL(url).origin;
const gateway = { grpcurl, address, token };
const live = (method, body) => rpc(gateway, `tapedeck.live.v1.LiveService/${method}`, body);
const seconds = (iso) => Date.parse(iso) / 1000;
// A decimal string as the app prints it without rounding: thousands grouped, no trailing zeros.
const plain = (text) => {
  const [int, frac = ""] = text.split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const trimmed = frac.replace(/0+$/, "");
  return trimmed === "" ? grouped : `${grouped}.${trimmed}`;
};

function allFills() {
  const events = [];
  let pageToken = "";
  do {
    const page = live("ListEvents", {
      filter: { runId: session, types: ["EVENT_TYPE_ORDER_FILLED"] },
      pageSize: 1000,
      pageToken,
    });
    events.push(...(page.events ?? []));
    pageToken = page.nextPageToken ?? "";
  } while (pageToken !== "");
  return events;
}

function listedSession() {
  const [trader] = session.split(":");
  return (live("ListSessions", { traderId: trader, pageSize: 500 }).sessions ?? []).find(
    (s) => s.runId === session,
  );
}

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.click("nav a[href='#/sessions']");

  // The list shows the session with ListSessions' figures.
  const row = page.locator(`[data-testid=sessions] tr[data-run-id="${session}"]`);
  await row.waitFor({ timeout: 20000 });
  const summary = listedSession();
  assert.ok(summary !== undefined, "ListSessions lists the session");
  const cells = await row.locator("td").allInnerTexts();
  assert.equal(cells[0], summary.traderId);
  assert.equal(cells[1], summary.instanceId.slice(0, 8));
  assert.equal(await row.locator("td").nth(1).getAttribute("title"), summary.instanceId);
  assert.equal(cells[4], String(summary.eventCount));
  assert.equal(cells[6], String((summary.openPositions ?? []).length));
  assert.match(cells[7], /USDT/);

  // Selecting it: the URL keeps it; one marker per fill.
  await row.click();
  await page.waitForFunction(
    (id) => decodeURIComponent(window.location.hash) === `#/sessions/${id}`,
    session,
  );
  const fills = allFills();
  const chart = page.locator("[data-testid=fills-chart]");
  await page.waitForFunction(
    (n) => document.querySelector("[data-testid=fills-chart]")?.dataset.markers === String(n),
    fills.length,
    { timeout: 20000 },
  );
  assert.ok(fills.length > 0);
  assert.equal((await chart.locator("canvas").count()) > 0, true, "the chart is drawn");
  console.log(`${fills.length} fills, one marker each`);

  // The round trips table is ListSessionTrades' first page, in its order.
  const trades = live("ListSessionTrades", { runId: session, pageSize: 200 }).trades ?? [];
  const tradeRows = page.locator("[data-testid=session-trades] tbody tr");
  await page.waitForFunction(
    (n) => document.querySelectorAll("[data-testid=session-trades] tbody tr").length === n,
    trades.length,
  );
  const shown = await tradeRows.evaluateAll((rows) =>
    rows.map((r) => ({
      sequence: r.dataset.sequence,
      position: r.dataset.positionId,
      cells: [...r.cells].map((c) => c.textContent),
    })),
  );
  assert.deepEqual(
    shown.map((r) => [r.sequence, r.position, r.cells[4], r.cells[5], r.cells[6]]),
    trades.map((t) => [
      t.sequence,
      t.positionId,
      plain(t.quantity),
      plain(t.averageEntryPrice),
      plain(t.averageExitPrice),
    ]),
    "the round trips table differs from ListSessionTrades",
  );
  console.log(`${trades.length} round trips as ListSessionTrades lists them`);
  await screenshot("sessions");
  await page.setViewportSize({ width: 1440, height: 900 });
  await screenshot("sessions-1440");
  await page.setViewportSize({ width: 1280, height: 800 });

  // Drift: a gap the service would refuse is caught in the form.
  const drift = page.locator("[data-testid=drift]");
  await page.waitForFunction(
    (id) =>
      [...document.querySelectorAll("select[name=backtest] option")].some((o) => o.value === id),
    run,
  );
  await drift.locator("select[name=backtest]").selectOption(run);
  await drift.locator("input[name=gap]").fill("0");
  await drift.locator("button[type=submit]").click();
  await drift.locator(".status.error", { hasText: "whole number of seconds" }).waitFor();

  // The comparison equals CompareWithSession's.
  await drift.locator("input[name=gap]").fill(gap);
  await drift.locator("button[type=submit]").click();
  await page.waitForFunction(
    ([id, s]) =>
      window.location.hash.includes(`backtest=${id}`) && window.location.hash.includes(`gap=${s}`),
    [run, gap],
  );
  await drift.locator("[data-testid=matched-count]").waitFor({ timeout: 30000 });
  const reply = rpc(gateway, "tapedeck.backtest.v1.BacktestService/CompareWithSession", {
    backtest: `backtests/${run}`,
    session,
    maxEntryGap: `${gap}s`,
  });
  const matched = reply.matched ?? [];
  const liveOnly = reply.liveOnly ?? [];
  const backtestOnly = reply.backtestOnly ?? [];
  const count = (id) => drift.locator(`[data-testid=${id}]`).getAttribute("data-count");
  assert.equal(await count("matched-count"), String(matched.length));
  assert.equal(await count("live-only-count"), String(liveOnly.length));
  assert.equal(await count("backtest-only-count"), String(backtestOnly.length));
  const ids = (testId) =>
    drift
      .locator(`[data-testid=${testId}] tbody tr`)
      .evaluateAll((rows) => rows.map((r) => r.dataset.tradeId));
  assert.deepEqual(
    await ids("matched"),
    matched.map((m) => m.backtest.tradeId),
  );
  assert.deepEqual(
    await ids("live-only"),
    liveOnly.map((t) => t.tradeId),
  );
  assert.deepEqual(
    await ids("backtest-only"),
    backtestOnly.map((t) => t.tradeId),
  );
  const s = reply.summary;
  assert.equal(s.matchedCount ?? 0, matched.length);
  const steps = await drift
    .locator("[data-testid=drift-summary] [data-step]")
    .evaluateAll((rows) => rows.map((r) => [r.dataset.step, r.dataset.amount]));
  assert.deepEqual(steps, [
    ["backtest", s.backtestPnl ?? ""],
    ["missing", s.missingTrades ?? ""],
    ["slippage", s.slippage ?? ""],
    ["fees", s.fees ?? ""],
    ["other", s.other ?? ""],
    ["live", s.livePnl ?? ""],
  ]);
  assert.equal(
    await drift.locator("[data-testid=drift-summary]").getAttribute("data-gap"),
    s.pnlGap ?? "",
  );
  // The late trade: its delay and slippage as the service computed them.
  const late = matched.find((m) => m.entryDelay !== undefined && m.entryDelay !== "0s");
  assert.ok(late !== undefined, "one matched trade entered late");
  const lateRow = drift.locator(
    `[data-testid=matched] tr[data-trade-id="${late.backtest.tradeId}"]`,
  );
  const lateCells = await lateRow.locator("td").allInnerTexts();
  assert.match(lateCells[3], /^\+/, "a late entry shows a positive delay");
  assert.equal(lateCells[5], `+${plain(late.entrySlippage)}`);
  console.log(
    `matched ${matched.length}, live only ${liveOnly.length}, backtest only ${backtestOnly.length}; gap ${s.pnlGap}`,
  );
  await screenshot("sessions-drift");
  await page.setViewportSize({ width: 1440, height: 900 });
  await drift.scrollIntoViewIfNeeded();
  await screenshot("sessions-drift-1440");
  await page.setViewportSize({ width: 1280, height: 800 });

  // The URL keeps the choice: a reload compares again.
  await page.reload();
  await page.locator("[data-testid=drift] [data-testid=matched-count]").waitFor({ timeout: 30000 });
  assert.equal(await count("matched-count"), String(matched.length));

  // A matched trade opens the run's playback at its entry.
  const first = matched[0];
  await drift
    .locator(`[data-testid=matched] tr[data-trade-id="${first.backtest.tradeId}"]`)
    .click();
  await page.waitForFunction(
    (hash) => window.location.hash === hash,
    `#/playback/${run}?t=${Math.floor(seconds(first.backtest.entryTime))}`,
  );

  // A session the service does not know: its refusal, in words.
  await page.goto(`${origin}/#/sessions/${encodeURIComponent("NOBODY:1")}?backtest=${run}`);
  await page
    .locator("[data-testid=drift] .status.error", { hasText: "Not found:" })
    .waitFor({ timeout: 20000 });
  console.log("an unknown session: not found, said so");

  // An appended fill reaches the open session (the list refreshes every few seconds).
  await page.goto(`${origin}/#/sessions/${encodeURIComponent(session)}`);
  await page.waitForFunction(
    (n) => document.querySelector("[data-testid=fills-chart]")?.dataset.markers === String(n),
    fills.length,
    { timeout: 20000 },
  );
  const lastFill = fills[0]; // newest first
  live("AppendEvents", {
    events: [
      {
        eventId: `${session}-appended-fill`,
        type: "EVENT_TYPE_ORDER_FILLED",
        runId: session,
        symbol: lastFill.symbol,
        time: new Date(Date.parse(lastFill.time) + 60_000).toISOString(),
        payload: { ...lastFill.payload, side: "BUY", position_id: "appended" },
      },
    ],
  });
  await page.waitForFunction(
    (n) => document.querySelector("[data-testid=fills-chart]")?.dataset.markers === String(n),
    fills.length + 1,
    { timeout: 20000 },
  );
  console.log("an appended fill reached the open session");

  // Times follow the app's zone setting: in Tokyo's local time, the newest round trip's entry.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Emulation.setTimezoneOverride", { timezoneId: "Asia/Tokyo" });
  await page.selectOption("[data-testid=zone]", "local");
  const tokyo = new Date(Date.parse(trades[0].entryTime) + 9 * 3600_000).toISOString();
  await page
    .locator("[data-testid=session-trades] tbody tr")
    .first()
    .locator("td")
    .first()
    .filter({ hasText: `${tokyo.slice(0, 10)} ${tokyo.slice(11, 19)} UTC+09:00` })
    .waitFor({ timeout: 20000 });
  await page.selectOption("[data-testid=zone]", "utc");
  console.log("times in the zone chosen");
});
