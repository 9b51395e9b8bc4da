// End-to-end check of the UI in headless Chromium against a running server fed by the
// simulated shop (`threadline demo`).
// Usage: node ui/e2e/ui.mjs BASE_URL SCREENSHOT_DIR [SERVER_PID]
// With SERVER_PID, it finally stops the server (SIGINT) and checks that the open page says
// the server cannot be reached.
//
// Every page must load without console errors and show live data; a search by business key
// finds its process; the process page shows message arrows and the critical path; the map
// renders; live counts change without a reload. A screenshot of each page is saved.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots, serverPid] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node ui/e2e/ui.mjs BASE_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const failures = [];
const check = (ok, message) => { if (!ok) failures.push(message); };
const api = async (path) => {
  const r = await fetch(new URL(path, base));
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
};
const until = async (what, fn, ms = 20_000) => {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (Date.now() > end) throw new Error(`${what}: ${e.message}`);
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
let current = 'start';
const consoleErrors = [];
page.on('console', (m) => {
  // With the server stopped on purpose, failed requests are what the page must survive.
  if (m.type() === 'error' && current !== 'server-down') consoleErrors.push(`${current}: ${m.text()}`);
});
page.on('pageerror', (e) => consoleErrors.push(`${current}: ${e.message}`));

async function visit(name, hash, ready) {
  current = name;
  await page.goto(`${base}/${hash}`);
  try {
    await ready();
  } catch (e) {
    failures.push(`${name}: ${e.message}`);
  }
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

try {
  // Overview: every process type of the shop, and counts that move without a reload.
  await visit('overview', '#/', async () => {
    await page.waitForSelector('[data-testid=overview-table] tbody tr[data-type=checkout]', { timeout: 20_000 });
    for (const type of ['checkout', 'refund', 'catalog-import', 'inventory-sync']) {
      await page.waitForSelector(`tr[data-type="${type}"]`, { timeout: 20_000 });
    }
    const cell = 'tr[data-type=checkout] td[data-field=completed]';
    const before = await page.textContent(cell);
    await until('the checkout completed count to change without a reload', async () => (await page.textContent(cell)) !== before, 30_000);
    check(await page.evaluate(() => performance.getEntriesByType('navigation').length === 1), 'overview: the page reloaded');
    await page.waitForSelector('.spark canvas', { timeout: 20_000 });
  });

  // Search by business key, typed as a user does.
  const done = await until('a completed checkout with a message hop', async () => {
    const list = await api('/api/v1/processes?type=checkout&state=completed&limit=50');
    for (const p of list.processes) {
      const d = await api(`/api/v1/processes/${p.id}`);
      if (d.criticalPath.some((s) => s.kind === 'channel_wait') && p.keys['order.id']) return p;
    }
    return null;
  }, 40_000);
  const orderId = done.keys['order.id'];
  await visit('search', '#/search', async () => {
    await page.fill('#q', `order.id=${orderId}`);
    await page.press('#q', 'Enter');
    const results = `[data-testid=results][data-q="order.id=${orderId}"]`;
    await page.waitForSelector(`${results} a[href="#/process/${done.id}"]`, { timeout: 10_000 });
    // Every process found carries the key (a refund of the order does too).
    const cells = `${results} tbody tr td.keys`;
    const found = await page.waitForFunction(({ cells, key }) => {
      const keys = [...document.querySelectorAll(cells)].map((c) => c.textContent ?? '');
      return keys.length > 0 && keys.every((k) => k.includes(key)) ? keys : null;
    }, { cells, key: `order.id=${orderId}` }, { timeout: 10_000 }).catch(() => null);
    if (!found) {
      failures.push(`search: not every result carries order.id=${orderId}: ${await page.$eval(results, (t) => t.outerHTML).catch((e) => e.message)}`);
    }
    check(page.url().includes(encodeURIComponent(`order.id=${orderId}`)), `search: the URL does not carry the query (${page.url()})`);
  });

  // The process page: message arrows, the critical path, span details on click.
  await visit('process', `#/process/${done.id}`, async () => {
    await page.waitForSelector('[data-testid=waterfall] [data-testid=hop]', { timeout: 10_000 });
    const hops = await page.$$('[data-testid=hop]');
    check(hops.length >= 1, 'process: no message arrows');
    const hopText = await page.textContent('[data-testid=hop] text');
    check(/waited/.test(hopText ?? ''), `process: the hop does not show its channel wait (${hopText})`);
    check((await page.$$('[data-testid=hop].critical')).length >= 1, 'process: no message hop on the critical path');
    const critical = await page.$$('[data-critical=true]');
    check(critical.length >= 1, 'process: no span on the critical path');
    check((await page.$$('[data-testid=trace-id]')).length === done.traceIds.length, 'process: raw trace ids missing');
    await critical[0].click();
    await page.waitForSelector('[data-testid=span-details] table.attrs tr', { timeout: 5000 });
  });

  await visit('type', '#/type/checkout', async () => {
    await page.waitForSelector('[data-testid=spec] table tbody tr', { timeout: 20_000 });
    await page.waitForSelector('[data-testid=histogram] canvas', { timeout: 20_000 });
    await page.waitForSelector('[data-testid=percentiles] canvas', { timeout: 20_000 });
  });

  await visit('map', '#/map', async () => {
    await until('the map to draw', () => page.evaluate(() => {
      const canvases = [...document.querySelectorAll('[data-testid=map] canvas')];
      return canvases.length > 0 && canvases.some((c) => c.width > 0 && c.height > 0);
    }), 20_000);
    const edges = await page.$$eval('details table tbody tr', (rows) => rows.length);
    check(edges > 10, `map: only ${edges} edges in the map's table`);
    check(await page.textContent('details table').then((t) => t.includes('ch:kafka/orders')), 'map: no orders channel');
  });

  await visit('triage', '#/triage?older_than=10s', async () => {
    await page.waitForSelector('[data-testid=triage-group]', { timeout: 30_000 });
  });

  await visit('feed', '#/feed', async () => {
    for (const kind of ['started', 'completed']) await page.check(`fieldset.kinds label:has-text("${kind}") input`);
    await page.waitForSelector('[data-testid=feed] li', { timeout: 20_000 });
    // The demo's alert rules fire on failures, breaches and stuck processes.
    await page.waitForSelector('[data-testid=alerts] li', { timeout: 60_000 });
  });

  // Dark mode renders too.
  await page.emulateMedia({ colorScheme: 'dark' });
  await visit('overview-dark', '#/', async () => {
    await page.waitForSelector('[data-testid=overview-table]', { timeout: 20_000 });
  });

  if (serverPid) {
    // The server goes away under an open page: the page says so instead of going blank.
    await page.emulateMedia({ colorScheme: 'light' });
    current = 'server-down';
    process.kill(Number(serverPid), 'SIGINT');
    try {
      await page.waitForSelector('[role=alert]:has-text("cannot be reached")', { timeout: 20_000 });
      await page.waitForSelector('[data-testid=connection]:has-text("unreachable")', { timeout: 20_000 });
      check((await page.$$('[data-testid=overview-table]')).length === 1, 'server-down: the last data shown went away');
    } catch (e) {
      failures.push(`server-down: ${e.message}`);
    }
    await page.screenshot({ path: join(shots, 'server-down.png'), fullPage: true });
  }
} catch (e) {
  failures.push(`${current}: ${e.stack ?? e}`);
} finally {
  await browser.close();
}

for (const e of consoleErrors) failures.push(`console error on ${e}`);
if (failures.length) {
  console.error(`UI check failed:\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log(`UI check passed; screenshots in ${shots}`);
