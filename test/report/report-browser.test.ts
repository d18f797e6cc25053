import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { sampleReportInput, writeReport, fmt, fmtEpsilon, CHART_IDS, finalEpsilon } from '../../src/report/index.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`[report-browser] skipped: no Chromium binary at ${CHROMIUM} (install chromium or set CHROMIUM_PATH)`);
}

// Hostile partner names: the page must show them as text and run none of them.
const NAMES = ['Northwind <img src=x onerror="window.__pwned=1">', 'Contoso </script><script>window.__pwned=2</script>', 'Fabrikam & Söhne "Q"'];

describe.skipIf(!hasChromium)(`compliance report in headless Chromium (${CHROMIUM})`, () => {
  const input = sampleReportInput({ partnerNames: NAMES });
  let dir: string;
  let profile: string;
  let context: BrowserContext;
  let page: Page;
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  const externalRequests: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedmark-report-'));
    profile = mkdtempSync(join(tmpdir(), 'fedmark-chromium-'));
    const { htmlPath } = await writeReport(dir, input);
    // Playwright refuses --user-data-dir in args; a persistent context on a fresh directory is the same thing.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    context.on('request', (r) => {
      if (!r.url().startsWith('file:')) externalRequests.push(r.url());
    });
    await page.goto(pathToFileURL(htmlPath).href, { waitUntil: 'load' });
    await page.waitForSelector('html[data-charts-ready="true"]', { timeout: 15_000 });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('loads without console errors, page errors or network requests', () => {
    expect(pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(externalRequests).toEqual([]);
  });

  it('renders every chart with data and non-blank pixels', async () => {
    // Runs in the page; a string because the project's tsconfig has no DOM lib.
    const probe = `(${JSON.stringify([...CHART_IDS])}).map(function (id) {
      var canvas = document.getElementById(id);
      if (!canvas) return { id: id, exists: false, points: 0, painted: 0, total: 0, urlLen: 0, blankLen: 0, labels: [] };
      var chart = Chart.getChart(canvas);
      var img = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      var painted = 0;
      for (var i = 3; i < img.length; i += 4) if (img[i] > 0) painted++;
      var blank = document.createElement('canvas');
      blank.width = canvas.width;
      blank.height = canvas.height;
      return {
        id: id,
        exists: chart !== undefined,
        points: chart ? chart.data.datasets.reduce(function (a, d) { return a + d.data.filter(function (v) { return v !== null; }).length; }, 0) : 0,
        labels: chart ? chart.data.datasets.map(function (d) { return d.label || ''; }) : [],
        painted: painted,
        total: canvas.width * canvas.height,
        urlLen: canvas.toDataURL().length,
        blankLen: blank.toDataURL().length
      };
    })`;
    const charts = (await page.evaluate(probe)) as {
      id: string;
      exists: boolean;
      points: number;
      labels: string[];
      painted: number;
      total: number;
      urlLen: number;
      blankLen: number;
    }[];
    expect(charts.map((c) => c.id)).toEqual([...CHART_IDS]);
    for (const c of charts) {
      expect(c.exists, `${c.id} has a Chart instance`).toBe(true);
      expect(c.points, `${c.id} has data points`).toBeGreaterThan(3);
      expect(c.total, `${c.id} has a size`).toBeGreaterThan(10_000);
      expect(c.painted / c.total, `${c.id} has painted pixels`).toBeGreaterThan(0.02);
      expect(c.urlLen, `${c.id} image differs from a blank canvas`).toBeGreaterThan(c.blankLen * 3);
    }
    const eps = charts.find((c) => c.id === 'chart-epsilon')!;
    for (const n of NAMES) expect(eps.labels).toContain(n);
    expect(eps.labels.some((l) => l.startsWith('ε budget'))).toBe(true);
  });

  it('shows the key numbers as text', async () => {
    const ev = input.evaluation;
    expect(await page.textContent('#final-auc')).toBe(fmt(ev.auc, 4));
    expect(await page.textContent('#final-logloss')).toBe(fmt(ev.logLoss, 4));
    expect(await page.textContent('#final-brier')).toBe(fmt(ev.brier, 4));
    expect(await page.textContent('#top-decile-lift')).toBe(fmt(ev.lift[0].cumulativeLift, 2));
    const maxEps = Math.max(...input.privacy.map((p) => finalEpsilon(p.epsilonByRound)));
    expect(await page.textContent('#max-epsilon')).toBe(fmtEpsilon(maxEps));
    const text = (await page.textContent('body')) ?? '';
    expect(text).toContain(input.job.jobId);
    expect(text).toContain('below 0.8');
    expect(text).toContain('Model card');
  });

  it('shows hostile partner names as text and executes none of them', async () => {
    expect(await page.evaluate('typeof window.__pwned')).toBe('undefined');
    expect(await page.locator('img').count()).toBe(0);
    const cells = await page.locator('#partners tbody td:first-child').allTextContents();
    expect(cells.slice(0, 3)).toEqual(NAMES);
  });

  it('saves a full-page screenshot', async () => {
    const outDir = resolve(import.meta.dirname, '..', '.output');
    mkdirSync(outDir, { recursive: true });
    const png = join(outDir, 'report.png');
    await page.screenshot({ path: png, fullPage: true });
    expect(existsSync(png)).toBe(true);
  });
});
