import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import { decodeUpdate, encodeUpdate, type UpdateMeta } from '../../src/federation/update-codec.ts';

// The envelope only carries the record; its signature is the coordinator's and the key holders' to check (submission-record.ts).
const record = {
  jobId: 'job-1',
  round: 2,
  attempt: 0,
  kind: 'train',
  partner: 'c'.repeat(32),
  baseModelHash: 'a'.repeat(64),
  parts: [{ name: 'update', sha256: 'd'.repeat(64) }],
  attestation: { keyId: 'c'.repeat(32), sig: 'AA==' },
};
const meta: Omit<UpdateMeta, 'parts'> = {
  jobId: 'job-1',
  round: 2,
  attempt: 0,
  kind: 'train',
  scheme: 'plain-insecure',
  paramsId: 'plain-insecure',
  baseModelHash: 'a'.repeat(64),
  dp: null,
  record,
};
const parts = [
  { name: 'update', length: 3, bytes: new Uint8Array([1, 2, 3, 4]) },
  { name: 'evaluation', length: 2, bytes: new Uint8Array([9, 8]) },
];

const code = (body: Uint8Array): string => {
  try {
    decodeUpdate(body);
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return `${(err as FedmarkError).code}: ${(err as Error).message}`;
  }
  return 'decoded';
};

/** An envelope with arbitrary metadata text and part bytes. */
function envelope(metaText: string, bodies: Uint8Array[], version = 2): Uint8Array {
  const m = new TextEncoder().encode(metaText);
  const total = 9 + m.length + bodies.reduce((s, b) => s + b.length, 0);
  const out = new Uint8Array(total);
  out.set([0x46, 0x4d, 0x55, 0x50], 0);
  out[4] = version;
  new DataView(out.buffer).setUint32(5, m.length, false);
  out.set(m, 9);
  let o = 9 + m.length;
  for (const b of bodies) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

describe('update envelope', () => {
  it('round-trips metadata and named parts, in order, as aligned copies', () => {
    const body = encodeUpdate(meta, parts);
    const decoded = decodeUpdate(body);
    expect(decoded.meta).toEqual({
      ...meta,
      parts: [
        { name: 'update', bytes: 4, length: 3 },
        { name: 'evaluation', bytes: 2, length: 2 },
      ],
    });
    expect(Array.from(decoded.parts.update)).toEqual([1, 2, 3, 4]);
    expect(Array.from(decoded.parts.evaluation)).toEqual([9, 8]);
    expect(decoded.parts.update.buffer).not.toBe(body.buffer);
  });

  it('carries every labelled release of the attempt in its DP report, and refuses a report without one', () => {
    const dp = {
      releases: [
        { label: 'weight', samplingRate: 1, noiseMultiplier: 80, steps: 1, sensitivity: 1 },
        { label: 'update', samplingRate: 0.02, noiseMultiplier: 1.2, steps: 50, sensitivity: 1 },
      ],
      delta: 1e-5,
      epsilonSpent: 0.4,
      epsilonAfterRound: 0.4,
    };
    expect(decodeUpdate(encodeUpdate({ ...meta, dp }, parts)).meta.dp).toEqual(dp);
    const none = JSON.stringify({ ...meta, dp: { ...dp, releases: [] }, parts: [{ name: 'update', bytes: 1, length: 1 }] });
    expect(code(envelope(none, [new Uint8Array(1)]))).toMatch(/UPDATE_MALFORMED: .*dp\.releases/);
    const badLabel = JSON.stringify({
      ...meta,
      dp: { ...dp, releases: [{ ...dp.releases[0], label: 'Weight!' }] },
      parts: [{ name: 'update', bytes: 1, length: 1 }],
    });
    expect(code(envelope(badLabel, [new Uint8Array(1)]))).toMatch(/UPDATE_MALFORMED: .*dp\.releases\.0\.label/);
  });

  it("carries any workload's part names and round kind, and refuses names that could not travel in a URL", () => {
    const custom = decodeUpdate(encodeUpdate({ ...meta, kind: 'level-3' }, [{ name: 'grad-hist', length: 1, bytes: new Uint8Array([7]) }]));
    expect(custom.meta.kind).toBe('level-3');
    expect(Object.keys(custom.parts)).toEqual(['grad-hist']);
    const full = { ...meta, parts: [{ name: 'Update/../x', bytes: 1, length: 1 }] };
    expect(code(envelope(JSON.stringify(full), [new Uint8Array(1)]))).toMatch(/UPDATE_MALFORMED: .*parts\.0\.name/);
  });

  it('refuses every malformed envelope with UPDATE_MALFORMED naming the problem', () => {
    const good = JSON.stringify({ ...meta, parts: [{ name: 'update', bytes: 2, length: 1 }] });
    expect(code(new Uint8Array(4))).toMatch(/UPDATE_MALFORMED: .*too short/);
    expect(code(new Uint8Array([1, 2, 3, 4, 1, 0, 0, 0, 0]))).toMatch(/bad magic/);
    expect(code(envelope(good, [new Uint8Array(2)], 1))).toMatch(/unsupported version 1 \(expected 2\)/);
    expect(code(envelope('{not json', []))).toMatch(/not valid UTF-8 JSON/);
    expect(code(envelope(JSON.stringify({ ...meta, parts: [] }), []))).toMatch(/metadata field parts/);
    expect(code(envelope(good, [new Uint8Array(1)]))).toMatch(/"update" is truncated/);
    expect(code(envelope(good, [new Uint8Array(3)]))).toMatch(/1 trailing bytes/);
    const twice = JSON.stringify({
      ...meta,
      parts: [
        { name: 'update', bytes: 1, length: 1 },
        { name: 'update', bytes: 1, length: 1 },
      ],
    });
    expect(code(envelope(twice, [new Uint8Array(1), new Uint8Array(1)]))).toMatch(/"update" appears twice/);
    const head = encodeUpdate(meta, parts);
    new DataView(head.buffer).setUint32(5, 10_000_000, false);
    expect(code(head)).toMatch(/metadata length 10000000 exceeds/);
    const { record: _r, ...unrecorded } = meta;
    expect(code(envelope(JSON.stringify({ ...unrecorded, parts: [{ name: 'update', bytes: 2, length: 1 }] }), [new Uint8Array(2)]))).toMatch(
      /metadata field record/,
    );
  });
});
