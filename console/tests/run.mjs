// Run one console scenario in Debian's Chromium (never a downloaded browser), with a fresh
// profile, and save a screenshot of how it ended under $SCREENSHOTS:
//   CONSOLE_URL=http://127.0.0.1:8001 ADMIN_TOKEN=… node console/tests/run.mjs sign_in
// Node's tests (node/tests/it/console.rs) start the nodes and pass what each scenario needs
// in the environment. Exits 1 with the reason when the scenario fails.

import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as scenarios from "./scenarios.mjs";

const name = process.argv[2];
const scenario = scenarios[name];
if (!scenario) {
  console.error(`no scenario \`${name}\`; there are: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const shots = process.env.SCREENSHOTS || "target/console";
mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "tasknode-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 860 },
  colorScheme: process.env.COLOR_SCHEME || "light",
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(Number(process.env.STEP_TIMEOUT_MS || 30000));
const errors = [];
page.on("pageerror", (e) => errors.push(e));

let failed = false;
try {
  await scenario(page, process.env);
  if (errors.length) throw new Error(`the page threw: ${errors.map((e) => e.stack || e).join("\n")}`);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  console.log(`${name}: ok (${join(shots, name + ".png")})`);
} catch (err) {
  failed = true;
  console.error(`${name}: ${err.stack || err}`);
  await page.screenshot({ path: join(shots, `${name}-failed.png`), fullPage: true }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
