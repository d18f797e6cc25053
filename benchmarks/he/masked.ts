/**
 * Masked aggregation inside BFV (src/crypto/secagg) measured the way benchmarks/he/run.ts measures
 * CKKS: every party played in one process, one after the other, so the two rounds are comparable.
 */
import { BfvContext, DEFAULT_BFV_PARAMS, generateBfvSecretKey } from '../../src/crypto/bfv/index.ts';
import { generateIdentity, keyId, type Identity } from '../../src/crypto/identity.ts';
import { quantisationErrorBound, runSecaggInMemory, type DriverResult } from '../../src/crypto/secagg/index.ts';

export interface MaskedSetup {
  bfv: BfvContext;
  secretKey: Uint8Array;
  partners: Identity[];
  coordinator: Identity;
}

export async function openMasked(partners: number): Promise<MaskedSetup> {
  const bfv = await BfvContext.create(DEFAULT_BFV_PARAMS);
  return {
    bfv,
    secretKey: generateBfvSecretKey(bfv),
    partners: Array.from({ length: partners }, (_, i) => generateIdentity(`bench-partner-${i}`)),
    coordinator: generateIdentity('bench-coordinator'),
  };
}

const round = (x: number, digits = 3) => Number(x.toPrecision(digits));

/** One masked round of `updates` (one per partner, values in [−1, 1]); `dropAfterShare` partners never upload. */
export async function maskedRound(s: MaskedSetup, updates: Float64Array[], dropAfterShare = 0): Promise<{ ms: number; result: DriverResult }> {
  const ids = s.partners.map((p) => keyId(p.signPublicKey)).sort();
  const dropouts = Object.fromEntries(ids.slice(0, dropAfterShare).map((id) => [id, 'upload' as const]));
  const t0 = performance.now();
  const result = await runSecaggInMemory({
    partners: s.partners,
    coordinator: s.coordinator,
    inputs: updates.map((u) => ({ update: u })),
    parts: [{ name: 'update', length: updates[0].length, kind: 'real', maxAbs: 1 }],
    bfv: s.bfv,
    secretKey: s.secretKey,
    dropouts,
  });
  return { ms: performance.now() - t0, result };
}

/** The figures of one masked round: wire bytes, phases, noise budget, quantisation error. */
export function maskedFigures(s: MaskedSetup, updates: Float64Array[], r: { ms: number; result: DriverResult }) {
  const length = updates[0].length;
  const { result } = r;
  const survivors = new Set(result.survivors);
  const ids = s.partners.map((p) => keyId(p.signPublicKey));
  let maxAbsError = 0;
  for (let i = 0; i < length; i++) {
    let plain = 0;
    ids.forEach((id, p) => {
      if (survivors.has(id)) plain += updates[p][i];
    });
    maxAbsError = Math.max(maxAbsError, Math.abs(result.sums.update[i] - plain));
  }
  const part = result.config.encoding.parts[0];
  const bound = quantisationErrorBound(part, result.survivors.length);
  return {
    parameters: length,
    partners: s.partners.length,
    survivors: result.survivors.length,
    dropped: result.dropped.length,
    threshold: result.config.threshold,
    ciphertextsPerUpload: Math.ceil(length / s.bfv.slotCount),
    roundMs: round(r.ms),
    phasesMs: Object.fromEntries(Object.entries(result.timingsMs).map(([k, v]) => [k, round(v)])),
    wireBytesPerParameter: round(result.bytes.uploadPerPartner / length, 4),
    sumBytesPerParameter: round(result.bytes.sum / length, 4),
    sharesMessageBytesPerPartner: Math.round(result.bytes.sharesPerPartner),
    noiseBudgetBitsLeft: result.noiseBudget,
    fractionBits: part.fractionBits,
    maxAbsError: round(maxAbsError),
    errorBound: { maxAbs: round(bound.maxAbs), stdDev: round(bound.stdDev) },
  };
}
