import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { LoyaltyAccumulator, SelectionCounter } from '../../src/scoring/decision-fairness.ts';
import { ReasonCoder } from '../../src/scoring/reasons.ts';
import { buildBaseline } from '../../src/scoring/baseline.ts';
import { SidecarBuilder } from '../../src/scoring/sidecar-builder.ts';
import { hashCustomerId, writeIdSidecar } from '../../src/privacy/ledger/subject-rights.ts';
import { encodeRows } from '../../src/data/encode.ts';
import { featureNames } from '../../src/data/schema.ts';
import { scoreFile } from '../../src/scoring/batch.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { renderCampaignReport } from '../../src/report/campaign-report.ts';
import { renderReport } from '../../src/report/html.ts';
import { sampleReportInput } from '../../src/report/sample-input.ts';
import { upliftFromCounts, UPLIFT_CELLS } from '../../src/scoring/uplift.ts';
import { createRng } from '../../src/util/rng.ts';
import { fixtureSchema, makeCustomers, saveFixtureModel, tempDir, toCsv } from './helpers.ts';

const schema = await fixtureSchema();

describe('selection into the top-k list', () => {
  it('selection rate, disparate impact against the best-treated group, four-fifths flag', () => {
    const s = new SelectionCounter({ gender: ['F', 'M', '<other>'] });
    for (let i = 0; i < 100; i++) s.addScored('gender', 'F');
    for (let i = 0; i < 200; i++) s.addScored('gender', 'M');
    for (let i = 0; i < 20; i++) s.addSelected('gender', 'F');
    for (let i = 0; i < 30; i++) s.addSelected('gender', 'M');
    const [seg] = s.result();
    expect(seg.referenceGroup).toBe('F');
    expect(seg.groups.map((g) => [g.group, g.selectionRate, g.flagged])).toEqual([
      ['F', 0.2, false],
      ['M', 0.15, true],
      ['<other>', null, false],
    ]);
    expect(seg.groups[0].disparateImpact).toBe(1);
    expect(seg.groups[1].disparateImpact).toBeCloseTo(0.75, 14);
    expect(seg.groups[2].disparateImpact).toBeNull();
    expect(seg.flagged).toBe(true);
    expect(seg.minRatio).toBeCloseTo(0.75, 14);
  });
});

describe('offers by tenure ("loyal customers pay more")', () => {
  const run = (offerOf: (tenure: number, p: number) => number, seed = 1) => {
    const rng = createRng(seed);
    const acc = new LoyaltyAccumulator({ offerColumn: 'offer', tenureColumn: 'tenure', newMax: 12, longMin: 48, worse: 'higher' });
    for (let i = 0; i < 4000; i++) {
      const tenure = rng.int(73);
      // Long-tenure customers are lower risk (as in real churn data).
      const p = Math.min(0.99, Math.max(0.01, 0.6 - tenure / 120 + 0.1 * rng.normal()));
      acc.add(p, tenure, offerOf(tenure, p) + rng.normal());
    }
    return acc.result();
  };

  it('flags long-tenure customers paying more at the same risk', () => {
    const r = run((t) => 40 + (t >= 48 ? 4 : 0));
    expect(r.flagged).toBe(true);
    expect(r.stratified.difference!).toBeGreaterThan(3);
    expect(r.stratified.difference!).toBeLessThan(5);
    expect(r.stratified.pValue!).toBeLessThan(1e-6);
    expect(r.verdict).toMatch(/loyal customers pay more/);
  });

  it('does not flag a price that follows risk only (the unstratified gap is confounded by risk)', () => {
    // Riskier customers are offered discounts; long-tenure customers are less risky, so they pay more on average…
    const r = run((_t, p) => 50 - 20 * p);
    expect(r.unstratifiedDifference!).toBeGreaterThan(2);
    // …but not at the same risk.
    expect(r.flagged).toBe(false);
    expect(Math.abs(r.stratified.difference!)).toBeLessThan(Math.abs(r.unstratifiedDifference!) / 2);
  });

  it('does not flag a difference below the materiality margin, and reads "lower" offers as worse for discounts', () => {
    expect(run((t) => 40 + (t >= 48 ? 0.5 : 0)).flagged).toBe(false); // 1.25 % of the price
    const acc = new LoyaltyAccumulator({ offerColumn: 'discount', tenureColumn: 'tenure', newMax: 12, longMin: 48, worse: 'lower' });
    const rng = createRng(3);
    for (let i = 0; i < 3000; i++) {
      const t = rng.int(73);
      acc.add(0.3, t, (t <= 12 ? 20 : 10) + rng.normal());
    }
    expect(acc.result().flagged).toBe(true);
  });

  it('is computed by fedmark score from the offer and tenure columns', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'c.csv'), toCsv(makeCustomers(3000, 4, { loyaltyPenalty: 15 })));
    await saveFixtureModel(join(dir, 'model'), schema);
    const model = await loadScoringModel(join(dir, 'model'), schema);
    const s = await scoreFile({
      dataPath: join(dir, 'c.csv'),
      outPath: join(dir, 'o.csv'),
      schema,
      model,
      loyalty: { offerColumn: 'offer', tenureColumn: 'tenure', newMax: 24, longMin: 48, worse: 'higher' },
    });
    expect(s.loyalty!.flagged).toBe(true);
    expect(s.loyalty!.newCustomers.n + s.loyalty!.longTenure.n + s.loyalty!.rowsMiddleTenure).toBe(s.rows.scored);
  });
});

describe('reason code text', () => {
  it('maps one-hot features back to "column = value", numbers to high/low with the value, booleans and blanks', () => {
    const x0 = buildBaseline(schema).x0;
    const coder = new ReasonCoder(schema, x0);
    const rec = {
      customer: 'A',
      consent: 'yes',
      tenure: '2',
      monthly: '',
      balance: '90000',
      contract: 'bi-weekly',
      plan: 'max',
      paperless: 'Yes',
      gender: 'F',
      age: '40',
      clv: '1',
      offer: '1',
      churned: '0',
    };
    const x = encodeRows(schema, [rec]).X;
    const names = featureNames(schema);
    const phi = new Float64Array(names.length);
    const set = (feature: string, v: number) => (phi[names.indexOf(feature)] = v);
    set('tenure', 0.9);
    set('contract=<other>', 0.5);
    set('contract=monthly', -0.1); // the column's total (0.4) is what ranks it
    set('balance', 0.3);
    set('paperless', 0.35);
    set('monthly', 0.2);
    set('plan=max', -2); // pulls the score down: never a reason
    const cells = schema.columns.map((c) => rec[c.name as keyof typeof rec] ?? '');
    const cell = (column: number) => cells[column].trim();
    const top = coder.top(phi, x, 0, cell, 10);
    expect(top.map((r) => r.text)).toEqual([
      'tenure low (2)',
      'contract = bi-weekly (<other>: not a declared value)',
      'paperless = Yes',
      'balance high (90000)',
      'monthly missing (treated as 0)',
    ]);
    expect(top[1].contribution).toBeCloseTo(0.4, 12);
    expect(coder.top(phi, x, 0, cell, 2)).toHaveLength(2);
  });
});

describe('id sidecars in bounded memory', () => {
  it('the bucketed builder writes byte-for-byte the sidecar writeIdSidecar writes, also when it spills to disk', () => {
    const dir = tempDir();
    const salt = 'partner-salt';
    const ids = Array.from({ length: 5000 }, (_, i) => `C-${i % 4000}`); // with duplicates
    const ref = writeIdSidecar(join(dir, 'a'), 'job-1', ids, salt);
    const b = new SidecarBuilder(join(dir, 'b'), 'job-1', 300);
    for (const id of ids) b.add(hashCustomerId(id, salt));
    const got = b.finish();
    expect(got).toEqual(ref);
    expect(readFileSync(join(dir, 'b', 'job-1.ids'))).toEqual(readFileSync(join(dir, 'a', 'job-1.ids')));
    expect(() => b.add('x')).toThrow();
  });
});

const cspOf = (html: string): string => /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)![1].replace(/&#39;/g, "'");

describe('campaign report', () => {
  const counts = new Float64Array(UPLIFT_CELLS).map((_, i) => 50 + (i % 4) * 7);
  const uplift = { ...upliftFromCounts(counts), matched: 1000, unmatched: 3, invalid: 0 };

  it('is one offline HTML file: Chart.js inlined, scripts admitted by hash, user text escaped', () => {
    const html = renderCampaignReport({ uplift: { ...uplift, unmatched: 3 }, scoring: undefined }, '2026-01-01T00:00:00Z');
    expect(html.includes('id="chart-uplift-decile"')).toBe(true);
    const csp = cspOf(html);
    expect(csp).toMatch(/^default-src 'none'; script-src 'sha256-[^']+' 'sha256-[^']+'; /);
    expect(/<script[^>]+src=/.test(html)).toBe(false);
    // Every inline script is admitted by its hash, nothing else.
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`);
    expect(scripts.every((h) => csp.includes(h))).toBe(true);
  });

  it('appears as a section of the compliance report when the input has a campaign', () => {
    const html = renderReport({ ...sampleReportInput(), campaign: { uplift } });
    expect(html.includes('<section id="campaign">')).toBe(true);
    expect(html.includes('id="campaign-data"')).toBe(true);
    expect(/script-src ([^;]+);/.exec(cspOf(html))![1].split(' ')).toHaveLength(3);
    expect(renderReport(sampleReportInput()).includes('id="campaign"')).toBe(false);
  });

  it('renders a real scoring run (fairness of the list, offers by tenure), and refuses a summary of the wrong kind', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'c.csv'), toCsv(makeCustomers(1500, 14, { loyaltyPenalty: 12 })));
    await saveFixtureModel(join(dir, 'model'), schema);
    const model = await loadScoringModel(join(dir, 'model'), schema);
    const summary = await scoreFile({
      dataPath: join(dir, 'c.csv'),
      outPath: join(dir, 'o.csv'),
      schema,
      model,
      topK: 100,
      valueColumn: 'clv',
      loyalty: { offerColumn: 'offer', tenureColumn: 'tenure', newMax: 24, longMin: 48, worse: 'higher' },
    });
    const roundTripped = JSON.parse(JSON.stringify(summary));
    const html = renderReport({ ...sampleReportInput(), campaign: { scoring: roundTripped, uplift } });
    expect(html.includes('Selection rate')).toBe(true);
    expect(html.includes('Offers by tenure')).toBe(true);
    expect(renderCampaignReport({ scoring: roundTripped }).includes('early-warning list of 100')).toBe(true);
    expect(() => renderReport({ ...sampleReportInput(), campaign: { scoring: uplift as never } })).toThrow(/campaign\.scoring\.model/);
  });
});
