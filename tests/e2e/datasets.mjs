// Datasets: a bar CSV made here is uploaded from the browser in chunks (one chunk call fails on the
// way and the upload resumes where it stopped), lands under the data root, imports with the
// server's progress, and a run launched on it opens in playback. A viewer sees upload and import
// disabled with the reason. Screenshots at 1280x800 and 1440x900.
import assert from "node:assert/strict";
import { signInAs, withPage } from "./browser.mjs";

const [url, viewer] = process.argv.slice(2);
const origin = new URL(url).origin;
const ROWS = 30_000; // about 1.9 MB: two 1 MB chunks

function barCsv() {
  const start = Date.UTC(2024, 0, 8);
  const lines = ["timestamp,open,high,low,close,volume"];
  for (let i = 0; i < ROWS; i++) {
    const price = 2500 + 40 * Math.sin(i / 200) + (i % 13) * 0.25;
    const ts = new Date(start + i * 60_000).toISOString().slice(0, 19);
    const open = price.toFixed(2);
    const close = (price + ((i % 5) - 2) * 0.5).toFixed(2);
    const high = (Math.max(price, Number(close)) + 1.25).toFixed(2);
    const low = (Math.min(price, Number(close)) - 1.25).toFixed(2);
    lines.push(`${ts},${open},${high},${low},${close},${(3 + (i % 11)).toFixed(3)}`);
  }
  return Buffer.from(lines.join("\n") + "\n");
}

await withPage(async (page, screenshot) => {
  await page.goto(url);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.goto(`${origin}/#/datasets`);
  await page.locator("[data-testid=files]").waitFor();

  const csv = barCsv();
  const fileName = `eth-bars-${Date.now()}.csv`;
  // The second chunk call fails as a dropped connection would; the upload stops with Resume.
  let chunkCalls = 0;
  await page.route("**/tapedeck.backtest.v1.BacktestService/UploadChunk", (route) => {
    chunkCalls += 1;
    return chunkCalls === 2 ? route.abort("connectionreset") : route.continue();
  });
  const upload = page.locator("[data-testid=upload]");
  await upload
    .locator("input[type=file]")
    .setInputFiles({ name: fileName, mimeType: "text/csv", buffer: csv });
  await upload.locator("button[type=submit]").click();
  const resume = upload.locator("button[type=submit]", { hasText: "Resume" });
  await resume.waitFor({ timeout: 20000 });
  await upload.locator("[data-testid=upload-status] [role=alert]").waitFor();
  const stopped = Number(
    await upload.locator("[data-testid=upload-progress]").getAttribute("aria-valuenow"),
  );
  assert.ok(stopped > 0 && stopped < 100, `the upload stopped at ${stopped}%`);
  await screenshot("datasets-upload-interrupted");
  await resume.click();
  await upload
    .locator("[data-testid=upload-status] .status.ok", { hasText: `uploads/${fileName}` })
    .waitFor({ timeout: 30000 });
  assert.equal(
    await upload.locator("[data-testid=upload-progress]").getAttribute("aria-valuenow"),
    "100.0",
  );
  // One failed call, then the rest from where the server stood: two chunks reached it.
  assert.equal(chunkCalls, 3, `${chunkCalls} UploadChunk calls`);
  console.log(`uploaded ${csv.length} bytes in ${chunkCalls} chunk calls, one of them failed`);

  // The file is listed under the data root, guessed as bars, and preselected in the form.
  const fileRow = page.locator(`[data-testid=files] tr[data-path="uploads/${fileName}"]`);
  await fileRow.waitFor();
  assert.match(await fileRow.innerText(), /One-minute bars/);
  const form = page.locator("[data-testid=import]");
  assert.equal(await form.locator("select[name=source]").inputValue(), `uploads/${fileName}`);
  assert.equal(await form.locator("select[name=kind]").inputValue(), "3");
  await form.locator("input[name=instrument-id]").fill("ETHUSDT.BINANCE");
  // Base and quote follow the instrument id.
  assert.equal(await form.locator("input[name=base]").inputValue(), "ETH");
  assert.equal(await form.locator("input[name=quote]").inputValue(), "USDT");
  await form.locator("input[name=price-precision]").fill("2");
  await form.locator("input[name=size-precision]").fill("3");
  await form.locator("input[name=display-name]").fill("ETH bars uploaded");

  // The import's progress as the server streams it, to 100.
  const seen = [];
  const progress = form.locator("[data-testid=import-progress]");
  await form.locator("button[type=submit]").click();
  const done = form.locator("[data-testid=import-status] .status.ok");
  while (!(await done.isVisible())) {
    const value = Number(await progress.getAttribute("aria-valuenow"));
    if (seen.at(-1) !== value) seen.push(value);
    const failed = form.locator("[data-testid=import-status] [role=alert]");
    if (await failed.isVisible()) throw new Error(await failed.innerText());
    await page.waitForTimeout(50);
  }
  seen.push(Number(await progress.getAttribute("aria-valuenow")));
  for (let i = 1; i < seen.length; i++)
    assert.ok(seen[i] >= seen[i - 1], `import progress went back: ${seen}`);
  assert.equal(seen.at(-1), 100);
  assert.match(await done.innerText(), /30,000 rows/);
  const dataset = await done.getAttribute("data-dataset");
  console.log(`imported ${dataset}; progress seen ${seen.map((p) => p.toFixed(0)).join(" → ")}`);
  await page.locator(`[data-testid=datasets] tr[data-dataset="${dataset}"]`).waitFor();
  for (const [width, height] of [
    [1280, 800],
    [1440, 900],
  ]) {
    await page.setViewportSize({ width, height });
    await screenshot(`datasets-${width}x${height}`);
  }

  // A run on the uploaded bars, launched from the runs form, opens in playback.
  await done.locator("a", { hasText: "Launch a run" }).click();
  const launch = page.locator("[data-testid=launch]");
  await launch.locator(`select[name=dataset] option[value="${dataset}"]`).waitFor({
    state: "attached",
    timeout: 20000,
  });
  await launch.locator("select[name=dataset]").selectOption(dataset);
  await launch.locator("select[name=strategy]").selectOption("strategies/ema_cross");
  await launch.locator("button[type=submit]").click();
  const status = launch.locator("[data-testid=launch-status]");
  const link = status.locator('a[href^="#/playback/"]');
  await link.waitFor({ timeout: 20000 });
  await page
    .locator('[data-testid=launch-status][data-state="succeeded"]')
    .waitFor({ timeout: 180000 });
  const href = await link.getAttribute("href");
  await link.click();
  await page.waitForFunction(
    () => Number(document.querySelector("[data-testid=candles]")?.dataset.points ?? 0) > 0,
    null,
    { timeout: 30000 },
  );
  console.log(`the run on the uploaded bars opens in playback: ${href}`);
  await screenshot("datasets-run-playback");

  // A viewer: upload and import are disabled with the reason.
  await signInAs(page, origin, viewer, "viewer");
  await page.goto(`${origin}/#/datasets`);
  for (const [testId, action] of [
    ["upload", "Uploading"],
    ["import", "Importing"],
  ]) {
    const button = page.locator(`[data-testid=${testId}] button[type=submit]`);
    assert.equal(await button.isDisabled(), true, `a viewer can use ${testId}`);
    assert.match(
      await button.getAttribute("title"),
      new RegExp(`${action} needs the operator role`),
    );
    await page
      .locator(`[data-testid=${testId}] .hint`, { hasText: `${action} needs the operator role` })
      .waitFor();
  }
  await page.locator(`[data-testid=files] tr[data-path="uploads/${fileName}"]`).waitFor();
  await screenshot("datasets-viewer");
  console.log("viewer gated: upload and import disabled with the reason");
});
