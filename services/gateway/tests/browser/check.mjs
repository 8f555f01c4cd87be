// The web UI in a real headless Chromium (Debian's /usr/bin/chromium), driven by playwright-core.
// Usage: node check.mjs <gateway origin> <screenshot folder>. Prints one JSON line:
// {"ok": true, "checked": [...], "screenshots": [...]}; exits non-zero on any failure.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const [origin, shots] = process.argv.slice(2);
if (!origin || !shots) {
  console.error("usage: node check.mjs <gateway origin> <screenshot folder>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "cadastre-chromium-"));
const checked = [];
const screenshots = [];
const problems = [];

const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});

try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) =>
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
  );
  page.on("response", (response) => {
    if (response.status() >= 400 && response.url().startsWith(origin)) {
      problems.push(`HTTP ${response.status()}: ${response.url()}`);
    }
  });
  const shot = async (name) => {
    const path = join(shots, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    screenshots.push(path);
  };

  // The catalog, then filtered by a kind through its facet link.
  await page.goto(`${origin}/`);
  assert.equal(await page.locator("h1").textContent(), "Catalog");
  assert.equal(await page.locator("tbody tr").count(), 50);
  await shot("catalog");
  checked.push("catalog");
  await page
    .locator('a.facet-value[data-facet="kind"]', { hasText: "Component" })
    .click();
  await page.waitForURL(/filter=kind%3DComponent/);
  const kinds = await page.locator("tbody tr td:nth-of-type(1)").allTextContents();
  assert.ok(kinds.length > 0);
  assert.deepEqual(new Set(kinds), new Set(["Component"]));
  assert.equal(
    await page.locator('a.facet-value[aria-current="true"]').count(),
    1,
    "the chosen kind is marked",
  );
  await shot("catalog-filtered");
  checked.push("filter by kind");

  // Typing in the search box suggests entities; the keyboard reaches and follows them.
  const box = page.locator("#q");
  await box.click();
  await box.pressSequentially("artist-lo", { delay: 40 });
  const suggestion = page.locator("#suggestions a", { hasText: "artist-lookup" });
  await suggestion.waitFor({ state: "visible" });
  assert.equal(await box.getAttribute("aria-expanded"), "true");
  await shot("search-suggestions");
  await box.press("ArrowDown");
  assert.equal(
    await page.evaluate(() => document.activeElement?.closest("#suggestions") !== null),
    true,
    "ArrowDown moves into the suggestions",
  );
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/catalog\/default\/component\/artist-lookup$/);
  checked.push("search suggestions");

  // The entity page, then a relation followed.
  assert.equal(await page.locator("h1").textContent(), "artist-lookup");
  assert.match(await page.locator(".facts").textContent(), /team-a/);
  await shot("entity");
  checked.push("entity page");
  await page.locator('ul[data-relation="ownedBy"] a').first().click();
  await page.waitForURL(/\/catalog\/default\/group\/team-a$/);
  assert.equal(await page.locator("h1").textContent(), "team-a");
  assert.ok(
    (await page.locator('ul[data-relation="ownerOf"] a').count()) > 0,
    "the team's page lists what it owns",
  );
  await shot("relation-target");
  checked.push("follow a relation");

  // Submitting the box shows highlighted results.
  await box.fill("artist");
  await box.press("Enter");
  await page.waitForURL(/\/search\?q=artist/);
  assert.ok((await page.locator(".hit mark").count()) > 0, "matches are highlighted");
  await shot("search-results");
  checked.push("search results");

  // A phone's width: nothing wider than the screen but the tables' own scrollers.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ["/", "/catalog/default/component/artist-lookup"]) {
    await page.goto(`${origin}${path}`);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - window.innerWidth,
    );
    assert.ok(overflow <= 1, `${path} is ${overflow}px wider than a phone`);
  }
  await shot("entity-phone");
  checked.push("phone width");

  // Dark mode follows the system.
  const background = () =>
    page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ colorScheme: "light" });
  const light = await background();
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await background();
  assert.notEqual(light, dark);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${origin}/`);
  await shot("catalog-dark");
  checked.push("dark mode");

  // Focus is visible when tabbing.
  await page.emulateMedia({ colorScheme: "light" });
  await page.keyboard.press("Tab");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "the focused element shows an outline");
  checked.push("keyboard focus");

  assert.deepEqual(problems, [], "no console errors or failed requests");
  checked.push("no console errors");
  console.log(JSON.stringify({ ok: true, checked, screenshots }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, checked, screenshots, problems, error: String(error?.stack ?? error) }));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
