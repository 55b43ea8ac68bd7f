// Shared by the scenarios (and bench/web): Debian's Chromium, headless, with flags that suit this
// closed network, and RPCs through the gateway with grpcurl, the operators' tool.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import path from "node:path";

const require = createRequire(new URL("../../gateway/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

export function launchChromium() {
  return chromium.launch({
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
}

// One RPC (`service/Method`) with a JSON body; the answer's JSON. `maxTime` in seconds bounds it.
export function rpc({ grpcurl, address, token }, method, body, { maxTime } = {}) {
  const limit = maxTime === undefined ? [] : ["-max-time", String(maxTime)];
  const auth = ["-H", `authorization: Bearer ${token}`];
  const out = execFileSync(
    grpcurl,
    ["-plaintext", ...limit, ...auth, "-d", JSON.stringify(body), address, method],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  return JSON.parse(out);
}

export async function withPage(run) {
  const artifacts = process.env.TAPEDECK_ARTIFACTS ?? "test-artifacts";
  mkdirSync(artifacts, { recursive: true });
  const browser = await launchChromium();
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

// Opens the app afresh with a token from the launcher's link and waits until the header names
// its role. A fresh document: from inside the app, a #token= hash is only a route change, which
// the router may rewrite before a reload adopts the token.
export async function signInAs(page, origin, token, role) {
  await page.goto("about:blank");
  await page.goto(`${origin}/#token=${token}`);
  await page.waitForFunction(() => !window.location.hash.includes("token="));
  await page.locator("[data-testid=who]", { hasText: role }).waitFor();
}
