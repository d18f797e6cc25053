import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { canonicalJson, sha256Canonical } from '../../../src/privacy/ledger/canonical.ts';
import { payloadSchemas, parsePayload, ENTRY_TYPES, envelopeSchema } from '../../../src/privacy/ledger/entries.ts';
import { FedmarkError } from '../../../src/errors.ts';

describe('canonical JSON (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units and uses ECMAScript number forms', () => {
    // Vectors from RFC 8785 §3.2.3 (sorting) and §3.2.2.3 (numbers).
    expect(
      canonicalJson({
        '\u20ac': 'Euro Sign',
        '\r': 'Carriage Return',
        '\ufb33': 'Hebrew Letter Dalet With Dagesh',
        '1': 'One',
        '\ud83d\ude00': 'Emoji: Grinning Face',
        '\u0080': 'Control',
        '\u00f6': 'Latin Small Letter O With Diaeresis',
      }),
    ).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
    // RFC 8785's own example literal: more digits than a double holds, on purpose.
    // eslint-disable-next-line no-loss-of-precision
    expect(canonicalJson([1e21, 1e-7, 0.000001, -0, 333333333.33333329, 4.5, 2e-3])).toBe('[1e+21,1e-7,0.000001,0,333333333.3333333,4.5,0.002]');
  });

  it('is independent of key order and rejects non-JSON values', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.oneof(fc.integer(), fc.string(), fc.double({ noNaN: true, noDefaultInfinity: true }))), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(obj));
        expect(sha256Canonical(reversed)).toBe(sha256Canonical(obj));
        expect(JSON.parse(canonicalJson(obj))).toEqual(JSON.parse(JSON.stringify(obj)));
      }),
      { numRuns: 200 },
    );
    expect(() => canonicalJson({ x: NaN })).toThrow(FedmarkError);
    expect(() => canonicalJson({ x: Infinity })).toThrow(FedmarkError);
    expect(() => canonicalJson(undefined)).toThrow(FedmarkError);
  });
});

describe('entry schemas', () => {
  it('covers every entry type the issue names', () => {
    expect(ENTRY_TYPES.sort()).toEqual(
      [
        'attempt.failed',
        'budget.refusal',
        'consent.usage',
        'consent.withdrawal',
        'evaluation',
        'job.halt',
        'job.manifest',
        'key.ceremony',
        'ledger.genesis',
        'ledger.truncation-repaired',
        'model.final',
        'model.scoring',
        'partner.acceptance',
        'partner.leave',
        'partner.participation',
        'partner.refusal',
        'partner.release',
        'partner.round',
        'partner.selection',
        'partner.withdraw',
        'partner.witness',
        'round',
        // vertical learning (issue 17)
        'psi.job',
        'psi.full',
        'psi.intersection',
        'psi.party.list',
        'psi.party.hop',
        'psi.party.result',
        'relay.round',
        'vertical.release',
        'vertical.party.job',
      ].sort(),
    );
    expect(Object.keys(payloadSchemas)).toHaveLength(ENTRY_TYPES.length);
  });

  it('rejects unknown fields, bad hashes and inconsistent counts', () => {
    const hash = 'a'.repeat(64);
    const key = 'b'.repeat(32);
    const ok = { jobId: 'j', partner: key, rowsUsed: 10, rowsExcludedNoConsent: 2 };
    expect(parsePayload('consent.usage', ok).success).toBe(true);
    expect(parsePayload('consent.usage', { ...ok, extra: 1 }).success).toBe(false);
    expect(parsePayload('consent.usage', { ...ok, rowsUsed: -1 }).success).toBe(false);
    expect(parsePayload('model.final', { jobId: 'j', modelHash: hash.toUpperCase(), rounds: 1, partners: [] }).success).toBe(false);
    const w = { partner: key, idHashes: ['c'.repeat(32)], count: 2, totalWithdrawn: 2, effectiveFrom: '2026-01-01T00:00:00.000Z' };
    expect(parsePayload('consent.withdrawal', w).success).toBe(false);
    expect(parsePayload('consent.withdrawal', { ...w, count: 1 }).success).toBe(true);
    expect(parsePayload('job.halt', { jobId: '../x', reason: 'r', afterRound: 0 }).success).toBe(false);
  });

  it('reads schemaVersion 3 (current), 2 and 1 (earlier ledgers) in the envelope, nothing else', () => {
    const env = {
      schemaVersion: 3,
      seq: 0,
      ts: '2026-01-01T00:00:00.000Z',
      type: 'job.halt',
      author: 'b'.repeat(32),
      prev: '0'.repeat(64),
      payload: {},
      sig: 'AA==',
    };
    expect(envelopeSchema.safeParse(env).success).toBe(true);
    expect(envelopeSchema.safeParse({ ...env, schemaVersion: 1 }).success).toBe(true);
    expect(envelopeSchema.safeParse({ ...env, schemaVersion: 2 }).success).toBe(true);
    expect(envelopeSchema.safeParse({ ...env, schemaVersion: 4 }).success).toBe(false);
    expect(envelopeSchema.safeParse({ ...env, type: 'made.up' }).success).toBe(false);
  });
});
