// Shared Playwright set-up: Debian's Chromium, headless, flags that suit this closed network.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import path from "node:path";

const require = createRequire(new URL("../../gateway/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

export async function withPage(run) {
  const artifacts = process.env.TAPEDECK_ARTIFACTS ?? "test-artifacts";
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  try {
    await run(page, (name) =>
      page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true }),
    );
    if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);
  } finally {
    await browser.close();
  }
}
