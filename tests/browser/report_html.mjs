// Renders a page of `portguard report --html` in Debian's headless chromium
// (playwright-core, executablePath set: never a downloaded browser) and
// checks it as a reader would use it. Prints TAP-style lines ("ok - ..." /
// "not ok - ...") and exits 1 when one failed.
//
//   node report_html.mjs PAGE.html FUNCTION[@MODULE],... [SCREENSHOT.png]
//
// The first FUNCTION is the one hovered and clicked (a narrow one); the
// second must not be drawn once the first is zoomed (another branch).
//
// Every wait is Playwright's own, for a state, bounded (10 s).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [page_path, expected_arg, shot] = process.argv.slice(2);
if (!page_path || !expected_arg) {
  console.error("usage: node report_html.mjs PAGE.html FUNCTION[,FUNCTION...] [SCREENSHOT.png]");
  process.exit(2);
}
// "connect_to@leaky_client": the frame's function and its module's name.
const expected = expected_arg.split(",").filter(Boolean).map((e) => {
  const [name, module] = e.split("@");
  return { name, module, text: e };
});
const sel = (f) => `#flame g.frame[data-name="${f.name}"]` + (f.module ? `[data-module="${f.module}"]` : "");
const url = pathToFileURL(resolve(page_path)).href;
let fails = 0;
const ok = (cond, what) => {
  console.log((cond ? "ok - " : "not ok - ") + what);
  if (!cond) fails++;
};

const profile = mkdtempSync(join(tmpdir(), "pg-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.PG_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1280, height: 900 },
  timeout: 60000,
});
try {
  const page = browser.pages()[0] || (await browser.newPage());
  page.setDefaultTimeout(10000);
  const errors = [], fetched = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { if (r.url() !== url && !r.url().startsWith("data:")) fetched.push(r.url()); });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#flame g.frame");

  // Frames' names as drawn (the box's title: the label may be cut to fit).
  const drawn = await page.$$eval("#flame g.frame", (gs) => gs.length);
  for (const f of expected)
    ok((await page.locator(sel(f)).count()) === 1, `the flame graph names ${f.text} (${drawn} frames drawn)`);
  const svgWidth = await page.$eval("#flame", (s) => s.viewBox.baseVal.width);

  // The narrowest expected frame: hover shows its counts, a click zooms it
  // to the whole width.
  const widthOf = async (f) => {
    const r = page.locator(sel(f) + " rect");
    return (await r.count()) ? parseFloat(await r.first().getAttribute("width")) : -1;
  };
  const target = expected[0];
  const before = await widthOf(target);
  const box = page.locator(sel(target) + " rect").first();
  await box.hover();
  const tip = await page.locator("#tip").innerText();
  ok(/leaked:\s+\d+ socket/.test(tip) && tip.includes(target.name) && /file: .*:\d+/.test(tip),
     `hovering ${target.text} shows its function, file:line and counts: ${JSON.stringify(tip.split("\n"))}`);
  // Width = leaked sockets: the box's share of the graph is the share of
  // the leaked sockets that the tooltip gives.
  const share = parseFloat((tip.match(/([\d.]+) % of all leaked/) || [])[1]);
  ok(Math.abs(share - (100 * before) / svgWidth) < 1.5,
     `${target.text}'s width is its share of the leaked sockets: ${((100 * before) / svgWidth).toFixed(1)} % of the width, ${share} % of the sockets`);
  await box.click();
  await page.waitForFunction(() => document.getElementById("zoomed").textContent.startsWith("zoomed to"));
  const after = await widthOf(target);
  ok(before > 0 && before < svgWidth * 0.9 && after > svgWidth * 0.98,
     `clicking ${target.text} zooms it: width ${before.toFixed(0)} -> ${after.toFixed(0)} of ${svgWidth}`);
  const others = expected.filter((f) => f !== target);
  if (others.length) {
    const hidden = await widthOf(others[0]);
    ok(hidden < 0, `zoomed, the other branch (${others[0].text}) is not drawn`);
  }
  await page.click("#reset");
  ok((await widthOf(target)) === before, "Reset zoom draws the whole graph again");

  // The sites' table sorts by a click on its column.
  const few = (a) => a.slice(0, 8).join(",") + (a.length > 8 ? ",... (" + a.length + ")" : "");
  const col = (i) => page.$$eval("#sites tbody tr.site", (trs, i) => trs.map((t) => +t.children[i].textContent), i);
  await page.click('#sites th[data-key="created"]');
  const created = await col(2);
  ok(created.length > 1 && created.every((v, i) => i === 0 || created[i - 1] >= v),
     `Created sorts the sites, largest first: ${few(created)}`);
  await page.click('#sites th[data-key="created"]');
  const up = await col(2);
  ok(up.every((v, i) => i === 0 || up[i - 1] <= v), `a second click sorts them the other way: ${few(up)}`);
  await page.click('#sites th[data-key="leaked"]');
  await page.locator("#sites tbody tr.site").first().click();
  const detail = await page.locator("#sites tbody tr.detail").first().innerText();
  ok(expected.some((f) => detail.includes(f.name)) && /pid \d+ fd \d+/.test(detail),
     "a click on a site shows its frames and sockets");

  // Thousands of sites: the first 500 rows, the rest on request.
  const many = parseInt(process.env.PG_EXPECT_SITES || "0", 10);
  if (many) {
    const shown = await page.locator("#sites tbody tr.site").count();
    ok(shown === Math.min(many, 500), `${many} sites: ${shown} rows drawn at first`);
    if (many > 500) {
      await page.click("#show-all");
      const all = await page.locator("#sites tbody tr.site").count();
      ok(all === many, `"Show all" draws every site: ${all}`);
    }
  }
  const sections = await page.$$eval("section", (ss) => ss.filter((s) => !s.hidden).map((s) => s.id));
  console.log("# sections shown: " + sections.join(", "));
  const procs = await page.$$eval("#processes tbody tr", (t) => t.length);
  console.log("# processes listed: " + procs);
  ok(errors.length === 0, "no console errors" + (errors.length ? ": " + errors.slice(0, 3).join(" | ") : ""));
  ok(fetched.length === 0, "nothing fetched but the file" + (fetched.length ? ": " + fetched.slice(0, 3).join(" ") : ""));
  if (shot) {
    await page.click('#flame g.frame[data-name="all"] rect');
    await page.locator(sel(target) + " rect").first().hover();
    await page.screenshot({ path: shot, fullPage: false });
    console.log("# screenshot: " + shot);
  }
  // Handed to the shell test: what the page shows.
  const shown = await page.evaluate(() => ({
    processes: document.querySelectorAll("#processes tbody tr").length,
    sections: Array.from(document.querySelectorAll("section")).filter((s) => !s.hidden).map((s) => s.id),
    summary: document.getElementById("summary").textContent,
  }));
  console.log("# shown " + JSON.stringify(shown));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(fails ? 1 : 0);
