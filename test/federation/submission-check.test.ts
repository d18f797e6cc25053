import { describe, expect, it } from 'vitest';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/index.ts';
import { openSecureSum } from '../../src/federation/secure-sum.ts';
import { encodePart, wireLength } from '../../src/federation/part-encoding.ts';
import { maxSubmissionBytes } from '../../src/federation/submission-check.ts';
import type { PartSpec, RoundPlan } from '../../src/federation/workload.ts';

// The coordinator refuses an upload larger than maxSubmissionBytes before reading it, so the limit
// must cover what a partner really sends: a part scaled into two limbs (part-encoding.ts) takes
// twice its length in slots, and so can need more ciphertexts than its length alone.
describe('maxSubmissionBytes', () => {
  it('admits the real upload of a round whose real part travels in two limbs (twice the ciphertexts)', async () => {
    const scheme = await openSecureSum(DEFAULT_HE_PARAMS);
    const spec: PartSpec = { name: 'grad', length: 20_000, domain: 'real', bound: 1e9, use: 'state' };
    expect(wireLength(spec, scheme.maxAbsInput)).toBe(40_000);
    const plan = { kind: 'test', parts: [spec] } as unknown as RoundPlan;
    const cipher = scheme.cipher(scheme.generateSecretKey());
    const values = Float64Array.from({ length: spec.length }, (_, i) => (i % 7) * 1e5 - 3e5);
    const bytes = cipher.encrypt(encodePart(spec, values, scheme.maxAbsInput));
    // What the envelope carries besides the parts is bounded by the codec's metadata limit.
    expect(bytes.length).toBeGreaterThan(scheme.uploadBytes(spec.length));
    expect(maxSubmissionBytes(plan, scheme)).toBeGreaterThanOrEqual(bytes.length + 9);
  }, 60_000);
});
