// The web UI in a real headless Chromium (Debian's /usr/bin/chromium), driven by playwright-core.
// Usage: node check.mjs <gateway origin> <screenshot folder> <registering gateway origin>
// <catalog file to register> (a second gateway that allows `file` locations). Prints one JSON line:
// {"ok": true, "checked": [...], "screenshots": [...]}; exits non-zero on any failure.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const [origin, shots, registerOrigin, registerFile] = process.argv.slice(2);
if (!origin || !shots || !registerOrigin || !registerFile) {
  console.error(
    "usage: node check.mjs <gateway origin> <screenshot folder> <registering origin> <file to register>",
  );
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
    const ours = response.url().startsWith(origin) || response.url().startsWith(registerOrigin);
    if (response.status() >= 400 && ours) {
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

  // Sorting: clicking the Owner heading sorts by owner (the filter kept); Enter on the focused
  // heading, a real link, turns the order around.
  const owners = () => page.locator("tbody tr td:nth-of-type(3)").allTextContents();
  const byDefault = await owners();
  await page.locator('thead a.sort[data-sort="spec.owner"]').click();
  await page.waitForURL(/order=spec\.owner&dir=asc/);
  assert.match(page.url(), /filter=kind%3DComponent/);
  const ascending = await owners();
  const ordered = (list, up) =>
    list.every((owner, at) => {
      if (at === 0) return true;
      const [a, b] = [list[at - 1].toLowerCase(), owner.toLowerCase()];
      return up ? a <= b : a >= b;
    });
  assert.ok(ordered(ascending, true), `ascending owners: ${ascending}`);
  assert.notDeepEqual(ascending, byDefault, "the order changed");
  assert.equal(
    await page.locator('th[aria-sort="ascending"] a.sort').getAttribute("data-sort"),
    "spec.owner",
  );
  await page.locator('thead a.sort[data-sort="spec.owner"]').focus();
  await page.keyboard.press("Enter");
  await page.waitForURL(/order=spec\.owner&dir=desc/);
  const descending = await owners();
  assert.ok(ordered(descending, false), `descending owners: ${descending}`);
  assert.notDeepEqual(descending, ascending);
  await shot("catalog-sorted");
  checked.push("sort by owner");

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

  // The relations graph: depth 2 reaches further, and its nodes are links.
  await page.goto(`${origin}/catalog/default/component/artist-lookup`);
  await page.locator('.depth a', { hasText: "2" }).click();
  await page.waitForURL(/depth=2/);
  assert.ok((await page.locator("svg.graph a.node.ring-2").count()) > 0, "depth 2 has a second ring");
  await shot("entity-graph");
  await page.locator('svg.graph a.node[href="/catalog/default/group/team-a"] circle').click();
  await page.waitForURL(/\/catalog\/default\/group\/team-a$/);
  checked.push("relations graph");

  // Graph interaction (app.js): hovering or focusing a node highlights it, its edges and its
  // neighbours and dims the rest; a relation type unchecked hides its edges (and nodes left
  // with none); zoom and pan move the viewBox; a drag is not a click, a click follows the link.
  await page.goto(`${origin}/catalog/default/component/artist-lookup?depth=2`);
  await page.locator(".graph-controls").waitFor({ state: "visible" });
  const graph = page.locator("svg.graph");
  const center = "component:default/artist-lookup";
  const nodeClasses = () =>
    page.evaluate(() =>
      Object.fromEntries(
        Array.from(document.querySelectorAll("svg.graph [data-node]"), (node) => [
          node.dataset.node,
          (node.getAttribute("class") || "").split(/\s+/),
        ]),
      ),
    );
  const neighboursOf = (ref) =>
    page.evaluate((ref) => {
      const near = new Set();
      for (const line of document.querySelectorAll("svg.graph line[data-from]")) {
        if (line.dataset.from === ref) near.add(line.dataset.to);
        if (line.dataset.to === ref) near.add(line.dataset.from);
      }
      return [...near];
    }, ref);
  const assertHighlighted = async (active, { someDimmed = true } = {}) => {
    const near = new Set(await neighboursOf(active));
    assert.ok(near.size > 0, `${active} has neighbours`);
    const classes = await nodeClasses();
    let dimmed = 0;
    for (const [ref, list] of Object.entries(classes)) {
      if (ref === active) {
        assert.ok(list.includes("is-active") && !list.includes("is-dim"), `${ref}: ${list}`);
      } else if (near.has(ref)) {
        assert.ok(list.includes("is-near") && !list.includes("is-dim"), `${ref}: ${list}`);
      } else {
        assert.ok(list.includes("is-dim") && !list.includes("is-near"), `${ref}: ${list}`);
        dimmed++;
      }
    }
    if (someDimmed) assert.ok(dimmed > 0, "the rest is dimmed");
    assert.equal(await graph.locator("line.is-lit").count(), near.size, "its edges are lit");
    assert.ok(await graph.locator("text.edge-label.is-lit").first().isVisible(), "edge labels shown");
    assert.equal(await graph.locator("text.edge-label:not(.is-lit)").first().isVisible(), false);
    return near;
  };
  // Hover a member of team-a: team-a is a neighbour, the entity itself is dimmed.
  const member = graph.locator("[data-node] > a.node.kind-user").first();
  const memberRef = await member.locator("xpath=..").getAttribute("data-node");
  await member.locator("circle").hover();
  const memberNear = await assertHighlighted(memberRef);
  assert.ok(memberNear.has("group:default/team-a"), [...memberNear].join());
  assert.ok((await nodeClasses())[center].includes("is-dim"));
  await shot("entity-graph-hover");
  // Keyboard focus highlights too (team-a neighbours every node here).
  const teamA = graph.locator('a.node[href="/catalog/default/group/team-a"]');
  await page.mouse.move(0, 0);
  await teamA.focus();
  await assertHighlighted("group:default/team-a", { someDimmed: false });
  await teamA.blur();
  assert.equal(await graph.locator("[data-node].is-dim").count(), 0, "blur clears");
  // Unchecking a relation type hides its edges, and the members left with no edge.
  const membership = page.locator('.graph-filter input[value="hasMember"]');
  const hidden = (selector) =>
    page.evaluate(
      (selector) =>
        Array.from(document.querySelectorAll(selector), (element) =>
          getComputedStyle(element).display === "none",
        ),
      selector,
    );
  const memberEdges = 'svg.graph line[data-type~="hasMember"]';
  assert.ok((await hidden(memberEdges)).length > 0, "team-a has member edges");
  assert.ok((await hidden(memberEdges)).every((is) => !is));
  await membership.uncheck();
  assert.ok((await hidden(memberEdges)).every((is) => is), "member edges hidden");
  assert.equal(await member.isVisible(), false, "a member with no edge left is hidden");
  assert.equal(await teamA.isVisible(), true);
  assert.ok(
    (await hidden('svg.graph line:not([data-type~="hasMember"])')).every((is) => !is),
    "other edges stay",
  );
  await shot("entity-graph-filtered");
  await membership.check();
  assert.ok((await hidden(memberEdges)).every((is) => !is), "member edges back");
  assert.equal(await member.isVisible(), true);
  // Zoom: the buttons and ctrl + wheel narrow the viewBox; dragging (even from a node) pans
  // without following the link; reset puts it back.
  const viewBox = async () => (await graph.getAttribute("viewBox")).split(" ").map(Number);
  const initial = await viewBox();
  await page.locator('.graph-zoom button[data-zoom="in"]').click();
  const zoomed = await viewBox();
  assert.ok(zoomed[2] < initial[2] && zoomed[3] < initial[3], `zoom in: ${zoomed}`);
  await graph.scrollIntoViewIfNeeded();
  const bounds = await graph.boundingBox();
  await page.mouse.move(bounds.x + bounds.width / 2, bounds.y + bounds.height / 2);
  await page.keyboard.down("Control");
  await page.mouse.wheel(0, -200);
  await page.keyboard.up("Control");
  await page.waitForFunction(
    (width) => Number(document.querySelector("svg.graph").getAttribute("viewBox").split(" ")[2]) < width,
    zoomed[2],
  );
  const wheeled = await viewBox();
  // The buttons work from the keyboard.
  await page.locator('.graph-zoom button[data-zoom="out"]').focus();
  await page.keyboard.press("Enter");
  const out = await viewBox();
  assert.ok(out[2] > wheeled[2], `zoom out: ${out} from ${wheeled}`);
  await shot("entity-graph-zoomed");
  const teamBox = await teamA.locator("circle").boundingBox();
  const [fromX, fromY] = [teamBox.x + teamBox.width / 2, teamBox.y + teamBox.height / 2];
  await page.mouse.move(fromX, fromY);
  await page.mouse.down();
  await page.mouse.move(fromX + 40, fromY + 30, { steps: 5 });
  await page.mouse.up();
  const panned = await viewBox();
  assert.ok(panned[0] < out[0] && panned[1] < out[1], `pan: ${panned} from ${out}`);
  assert.equal(panned[2], out[2], "panning keeps the zoom");
  assert.match(page.url(), /artist-lookup\?depth=2$/, "a drag is not a click");
  await page.locator('.graph-zoom button[data-zoom="reset"]').click();
  assert.deepEqual(await viewBox(), initial);
  // A node is still a link.
  await teamA.locator("circle").click();
  await page.waitForURL(/\/catalog\/default\/group\/team-a$/);
  checked.push("graph interaction");

  // A group's page: members, and what it owns with open errors.
  assert.ok((await page.locator("ul.members a").count()) > 0, "the team has members");
  const owned = await page.locator("table.owned tbody tr").allTextContents();
  assert.ok(owned.some((row) => row.includes("artist-lookup")), "the team owns artist-lookup");
  await shot("group");
  checked.push("group page");

  // An invalid file's error: counted on its owner's page, listed on the entity's page.
  const brokenRow = page.locator('table.owned tr[data-ref="component:default/broken-in-browser"]');
  assert.equal(await brokenRow.locator("td.has-errors").textContent(), "1");
  await brokenRow.locator("a").click();
  await page.waitForURL(/\/catalog\/default\/component\/broken-in-browser$/);
  assert.match(
    await page.locator("table.errors tbody").textContent(),
    /spec\.system must be an entity reference/,
  );
  await shot("entity-with-errors");
  checked.push("errors on entity and owner");

  // An API's definition rendered: OpenAPI operations, and a highlighted protobuf file.
  await page.goto(`${origin}/catalog/default/api/petstore`);
  const operations = await page.locator("tr.operation").allTextContents();
  assert.ok(operations.some((row) => row.includes("GET") && row.includes("/pets")), operations.join("|"));
  assert.ok((await page.locator("ul.schemas li").count()) > 0, "schemas are listed");
  await shot("api-openapi");
  await page.goto(`${origin}/catalog/default/api/hello-world`);
  assert.ok((await page.locator("code.language-proto .tok-keyword").count()) > 0, "proto is highlighted");
  await shot("api-grpc");
  checked.push("api definition");

  // Ingestion, reached from the header, filtered by an owner.
  await page.locator('nav a', { hasText: "Ingestion" }).click();
  await page.waitForURL(/\/ingestion$/);
  await page.locator("#owner").fill("team-a");
  await page.locator("form.filters button").click();
  await page.waitForURL(/\/ingestion\?owner=team-a/);
  assert.match(await page.locator("#errors").locator("..").textContent(), /open errors/);
  await shot("ingestion");
  checked.push("ingestion");

  // Register through the form (no script needed): preview, then confirm.
  await page.goto(`${registerOrigin}/register`);
  await page.locator("#target").fill(registerFile);
  await page.locator("#type").selectOption("file");
  await page.locator('button[value="preview"]').click();
  await page.locator("table.preview-entities").waitFor();
  const previewed = await page.locator("table.preview-entities tbody").textContent();
  assert.match(previewed, /browser-registered/);
  await shot("register-preview");
  await page.locator('button[value="register"]').click();
  await page.waitForURL(/\/register\/done\?id=/);
  assert.equal(await page.locator("h1").textContent(), "Registered");
  await shot("register-done");
  checked.push("register a location");
  await page.goto(`${origin}/`);

  // Submitting the box shows highlighted results.
  await box.fill("artist");
  await box.press("Enter");
  await page.waitForURL(/\/search\?q=artist/);
  assert.ok((await page.locator(".hit mark").count()) > 0, "matches are highlighted");
  await shot("search-results");
  checked.push("search results");

  // A phone's width: nothing wider than the screen but the tables' own scrollers.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of [
    "/",
    "/catalog/default/component/artist-lookup?depth=2",
    "/catalog/default/api/petstore",
    "/catalog/default/group/team-a",
    "/register",
    "/ingestion?owner=team-a",
  ]) {
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
