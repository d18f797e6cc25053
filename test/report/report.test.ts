import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  CHART_IDS,
  escapeHtml,
  escapeMarkdown,
  fmtDelta,
  fmtEpsilon,
  jsonForScript,
  parseReportInput,
  renderModelCard,
  renderReport,
  sampleReportInput,
  writeReport,
  type ReportInput,
} from '../../src/report/index.ts';
import { FedmarkError } from '../../src/errors.ts';

const base = sampleReportInput({ rounds: 4 });
const clone = (): ReportInput => structuredClone(base);

function inlineScripts(html: string): string[] {
  return [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
}

describe('renderReport', () => {
  const html = renderReport(base);

  it('is one self-contained document: Chart.js inlined, no external resources', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('Chart.js v4');
    expect(html).not.toMatch(/<(script|link|img|iframe)[^>]+(src|href)=/i);
    expect(html).not.toMatch(/url\(\s*['"]?https?:/i);
    for (const id of CHART_IDS) expect(html).toContain(`<canvas id="${id}"`);
    expect(html).toContain('id="final-auc"');
  });

  it('has a CSP that admits exactly the inline scripts by hash and no network', () => {
    const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)![1].replace(/&#39;/g, "'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain("unsafe-inline' ;");
    const scripts = inlineScripts(html);
    expect(scripts).toHaveLength(2);
    for (const s of scripts) {
      const h = createHash('sha256').update(s, 'utf8').digest('base64');
      expect(csp).toContain(`'sha256-${h}'`);
    }
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
  });

  it('escapes hostile text everywhere (HTML, JSON block, model card)', () => {
    const evil = '<img src=x onerror=alert(1)></script><script>alert(2)</script>&';
    const input = sampleReportInput({ rounds: 3, partnerNames: [evil, 'B', 'C'] });
    input.evaluation.segments[0].groups[0].group = '<b>grp</b>';
    input.audit = { ok: false, findings: [{ entry: 4, code: 'BAD_SIG', message: '<i>forged</i>' }] };
    const out = renderReport(input);
    expect(out).not.toContain('<img src=x');
    expect(out).not.toContain('<b>grp</b>');
    expect(out).not.toContain('<i>forged</i>');
    expect(out).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(out).toContain('&lt;i&gt;forged&lt;/i&gt;');
    // Exactly the document's own three script elements close: JSON block, Chart.js, chart script.
    expect(out.match(/<\/script>/g)).toHaveLength(3);
    const json = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(out)![1];
    expect(JSON.parse(json).epsilon[0].name).toBe(evil);
    expect(out).toContain('Audit failed');
    expect(out).toContain('BAD_SIG');
  });

  it('flags over-budget ε, plain-insecure updates and missing audits', () => {
    const input = clone();
    input.privacy[2].epsilonByRound.push({ round: 5, epsilon: 2.0001 });
    input.encryption.scheme = 'plain-insecure';
    delete input.audit;
    const out = renderReport(input);
    expect(out).toContain('ε budget exceeded by 1 partner(s)');
    expect(out).toContain('over budget');
    // ε rounded up at display precision: 2.0001 → 2.001, never 2.000.
    const row = /<tr><td>Fabrikam Insurance<\/td><td class="num">([^<]+)<\/td>/.exec(out);
    expect(row?.[1]).toBe('2.001');
    expect(out).toContain('Updates NOT encrypted');
    expect(out).toContain('Audit: not attached');
  });

  it('names a job without differential privacy as such (ε = ∞), never ε = 0 or "within budget"', () => {
    const plain = { ...clone(), differentiallyPrivate: false, privacy: [] };
    const out = renderReport(plain);
    expect(out).toMatch(/not differentially private \(ε = ∞\)/i);
    expect(/id="max-epsilon">([^<]*)</.exec(out)?.[1]).toBe('∞');
    expect(out).not.toContain('All partners within ε budget');
    expect(out).not.toContain('No privacy accounting reported');
    const card = renderModelCard(plain);
    expect(card).toMatch(/not differentially private \(ε = ∞\)/);
    expect(card).not.toMatch(/trained with DP-SGD/);
    expect(card).toContain('∞ (not DP)');
  });

  it('renders NaN metrics as n/a and survives a JSON round trip (NaN → null → NaN)', () => {
    const input = clone();
    input.evaluation.segments[0].groups[0].auc = NaN;
    input.roundMetrics[0].auc = NaN;
    const back = parseReportInput(JSON.parse(JSON.stringify(input)));
    expect(back.evaluation.segments[0].groups[0].auc).toBeNaN();
    expect(back.roundMetrics[0].auc).toBeNaN();
    const out = renderReport(back).replace(/<script>[\s\S]*?<\/script>/g, '');
    expect(out.includes('n/a')).toBe(true);
    expect(out.includes('NaN')).toBe(false);
  });

  it('rejects invalid input with a FedmarkError naming the field', () => {
    const bad = clone() as unknown as { partners: unknown[] };
    bad.partners = [];
    expect(() => renderReport(bad as ReportInput)).toThrow(FedmarkError);
    expect(() => renderReport(bad as ReportInput)).toThrow(/partners/);
    const stranger = clone();
    stranger.privacy[0].partner = 'Nobody';
    expect(() => renderReport(stranger)).toThrow(/privacy\.0\.partner: privacy entry names "Nobody"/);
    const badDelta = clone();
    badDelta.privacy[0].delta = 0;
    try {
      renderReport(badDelta);
      expect.unreachable();
    } catch (e) {
      expect((e as FedmarkError).code).toBe('REPORT_INVALID_INPUT');
      expect((e as FedmarkError).message).toContain('privacy.0.delta');
    }
  });
});

describe('model card', () => {
  it('covers intended use, data, features, metrics, fairness, privacy and limitations', () => {
    const md = renderModelCard(base);
    for (const h of ['Intended use', 'Data', 'Features', 'Metrics', 'Fairness', 'Privacy guarantees', 'Limitations']) {
      expect(md).toContain(`## ${h}`);
    }
    for (const p of base.privacy) {
      const eps = p.epsilonByRound[p.epsilonByRound.length - 1].epsilon;
      expect(md).toContain(`| ${escapeMarkdown(p.partner, false)} | ${fmtEpsilon(eps)} | ${fmtDelta(p.delta)} |`);
    }
    expect(md).toContain(base.evaluation.auc.toFixed(4));
    expect(md).toMatch(/Warning: \d group\(s\) below the four-fifths threshold/);
    expect(md).toContain('- tenure\\_months');
  });

  it('escapes table-breaking partner names', () => {
    const md = renderModelCard(sampleReportInput({ rounds: 2, partnerNames: ['A | B\n# C', 'x', 'y'] }));
    expect(md).toContain('| A \\| B # C |');
    expect(md).not.toMatch(/^# C/m);
  });

  it('is embedded in the HTML report', () => {
    const html = renderReport(base);
    expect(html).toContain('<section id="model-card"');
    expect(html).toContain('<h3>Privacy guarantees</h3>');
  });
});

describe('writeReport', () => {
  it('writes the HTML report and the Markdown model card', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-write-'));
    try {
      const { htmlPath, modelCardPath } = await writeReport(join(dir, 'nested'), base);
      expect(readFileSync(htmlPath, 'utf8')).toBe(renderReport(base));
      expect(readFileSync(modelCardPath, 'utf8')).toBe(renderModelCard(base));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('formatting', () => {
  it('never shows ε or δ below the true value (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e4, noNaN: true }), (x) => {
        expect(Number(fmtEpsilon(x))).toBeGreaterThanOrEqual(x);
        expect(Number(fmtEpsilon(x)) - x).toBeLessThanOrEqual(0.001 + 1e-9 * x);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.double({ min: 1e-300, max: 0.999, noNaN: true }), (x) => {
        expect(Number(fmtDelta(x))).toBeGreaterThanOrEqual(x);
      }),
      { numRuns: 2000 },
    );
    expect(fmtEpsilon(1.2341)).toBe('1.235');
    expect(fmtEpsilon(2)).toBe('2.000');
    expect(fmtDelta(1e-5)).toBe('1e-5');
    expect(fmtDelta(1.234e-7)).toBe('1.24e-7');
  });

  it('escapes HTML and script-embedded JSON', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const j = jsonForScript({ s: '</script><!--\u2028' });
    expect(j).not.toMatch(/[<>]/);
    expect(JSON.parse(j)).toEqual({ s: '</script><!--\u2028' });
  });
});
