/**
 * HE aggregation benchmark, one run, side by side: CKKS (node-seal, fedmark wire format), masked
 * secure aggregation inside BFV (src/crypto/secagg) and Paillier (paillier-bigint, 2048-bit modulus),
 * 10 partners. Writes benchmarks/results/he.json.
 *
 *   npx tsx benchmarks/he/run.ts [--quick]
 *
 * --quick drops the 1M-parameter cases, takes fewer interleaved repetitions and shrinks the Paillier sample.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as paillier from 'paillier-bigint';
import { CkksAggregator, CkksCipher, CkksContext, DEFAULT_HE_PARAMS, generateSecretKey } from '../../src/crypto/ckks/index.ts';
import { DEFAULT_BFV_PARAMS } from '../../src/crypto/bfv/index.ts';
import { maskedFigures, maskedRound, openMasked } from './masked.ts';
import { sealHeapBytes } from '../../src/crypto/seal.ts';
import { createRng, deriveSeed } from '../../src/util/rng.ts';

const quick = process.argv.includes('--quick');
const PARTNERS = 10;
const SIZES = quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
/** Paillier values per partner; 10 partners × 20 = 200 encryptions (each ≈ 0.1 s here). */
const PAILLIER_SAMPLE = quick ? 5 : 20;
/** Update magnitudes like a normalised weighted model delta. */
const MAGNITUDE = 1;
const SEED = 7;
/** Interleaved CKKS/masked repetitions of the 10 × 100k round (the ratio is their median). */
const ROUND_REPS = quick ? 3 : 7;
const ROUND_PARAMS = 100_000;

const ms = (t0: number) => performance.now() - t0;
const round = (x: number, digits = 3) => Number(x.toPrecision(digits));

function partnerUpdate(p: number, length: number): Float64Array {
  const rng = createRng(deriveSeed(SEED, 'partner', p, length));
  const v = new Float64Array(length);
  // Two draws per value: full 53-bit mantissas, so no value sits on a fixed-point grid by accident.
  for (let i = 0; i < length; i++) v[i] = ((rng.next() + rng.next() / 2 ** 32) * 2 - 1) * MAGNITUDE;
  return v;
}

async function benchCkks(ctx: CkksContext, cipher: CkksCipher, length: number) {
  const updates = Array.from({ length: PARTNERS }, (_, p) => partnerUpdate(p, length));
  const plainSum = new Float64Array(length);
  for (const u of updates) for (let i = 0; i < length; i++) plainSum[i] += u[i];

  // encryptVector = encode + seeded symmetric encryption + serialization to the wire format.
  let t0 = performance.now();
  const blobs = updates.map((u) => cipher.encryptVector(u));
  const encryptMs = ms(t0);

  const agg = new CkksAggregator(ctx);
  t0 = performance.now();
  for (const b of blobs) agg.add(b); // includes full validation of every blob
  const aggregateMs = ms(t0);

  t0 = performance.now();
  const sumBlob = agg.toBytes();
  const serializeSumMs = ms(t0);
  agg.dispose();

  t0 = performance.now();
  const decrypted = cipher.decryptVector(sumBlob, length);
  const decryptMs = ms(t0);

  let maxAbsError = 0;
  for (let i = 0; i < length; i++) maxAbsError = Math.max(maxAbsError, Math.abs(decrypted[i] - plainSum[i]));
  const endToEndMs = encryptMs + aggregateMs + serializeSumMs + decryptMs;
  return {
    parameters: length,
    partners: PARTNERS,
    ciphertextsPerUpdate: Math.ceil(length / ctx.slotCount),
    encryptAndSerializeMsPerPartner: round(encryptMs / PARTNERS),
    aggregateMsTotal: round(aggregateMs),
    serializeSumMs: round(serializeSumMs),
    decryptMs: round(decryptMs),
    endToEndMs: round(endToEndMs),
    endToEndUsPerParameter: round((endToEndMs * 1000) / length),
    wireBytesPerParameter: round(blobs[0].length / length, 4),
    sumBytesPerParameter: round(sumBlob.length / length, 4),
    maxAbsError: round(maxAbsError),
  };
}

async function benchPaillier() {
  let t0 = performance.now();
  const { publicKey, privateKey } = await paillier.generateRandomKeys(2048);
  const keygenMs = ms(t0);
  const scale = 2 ** 40; // same fixed-point precision as the CKKS scale
  const n = publicKey.n;
  const encode = (x: number) => {
    const v = BigInt(Math.round(x * scale));
    return v >= 0n ? v : v + n;
  };
  const decode = (v: bigint) => Number(v > n / 2n ? v - n : v) / scale;

  const updates = Array.from({ length: PARTNERS }, (_, p) => partnerUpdate(p, PAILLIER_SAMPLE));
  t0 = performance.now();
  const encrypted = updates.map((u) => Array.from(u, (x) => publicKey.encrypt(encode(x))));
  const encryptMs = ms(t0);

  t0 = performance.now();
  const sums: bigint[] = [];
  for (let i = 0; i < PAILLIER_SAMPLE; i++) sums.push(publicKey.addition(...encrypted.map((e) => e[i])));
  const aggregateMs = ms(t0);

  t0 = performance.now();
  const decrypted = sums.map((c) => decode(privateKey.decrypt(c)));
  const decryptMs = ms(t0);

  let maxAbsError = 0;
  for (let i = 0; i < PAILLIER_SAMPLE; i++) {
    const plain = updates.reduce((acc, u) => acc + u[i], 0);
    maxAbsError = Math.max(maxAbsError, Math.abs(decrypted[i] - plain));
  }
  const perParam = {
    encryptMsPerPartner: encryptMs / (PARTNERS * PAILLIER_SAMPLE),
    aggregateMs: aggregateMs / PAILLIER_SAMPLE,
    decryptMs: decryptMs / PAILLIER_SAMPLE,
  };
  const endToEndMsPerParameter = PARTNERS * perParam.encryptMsPerPartner + perParam.aggregateMs + perParam.decryptMs;
  return {
    modulusBits: 2048,
    sampleValuesPerPartner: PAILLIER_SAMPLE,
    partners: PARTNERS,
    keygenMs: round(keygenMs),
    perParameter: {
      encryptMsPerPartner: round(perParam.encryptMsPerPartner),
      aggregateMs: round(perParam.aggregateMs),
      decryptMs: round(perParam.decryptMs),
    },
    endToEndUsPerParameter: round(endToEndMsPerParameter * 1000),
    wireBytesPerParameter: (2 * 2048) / 8,
    maxAbsError: round(maxAbsError),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const started = new Date().toISOString();
  const ctx = await CkksContext.create(DEFAULT_HE_PARAMS);
  const cipher = new CkksCipher(ctx, generateSecretKey(ctx));
  const masked = await openMasked(PARTNERS);
  // Warm up the JIT and the SEAL memory pool so the first size is not penalised.
  await benchCkks(ctx, cipher, 8192);
  await maskedRound(
    masked,
    Array.from({ length: PARTNERS }, (_, p) => partnerUpdate(p, 8192)),
  );

  const ckks = [];
  const maskedRows: ReturnType<typeof maskedFigures>[] = [];
  for (const size of SIZES) {
    const r = await benchCkks(ctx, cipher, size);
    console.log(`CKKS ${size.toLocaleString('en')} params: ${JSON.stringify(r)}`);
    ckks.push(r);
    if (size < 100_000) continue;
    const updates = Array.from({ length: PARTNERS }, (_, p) => partnerUpdate(p, size));
    const m = maskedFigures(masked, updates, await maskedRound(masked, updates));
    console.log(`masked BFV ${size.toLocaleString('en')} params: ${JSON.stringify(m)}`);
    maskedRows.push(m);
  }

  // The round comparison: CKKS and masked rounds of 10 × 100k, interleaved so load hits both alike.
  const updates = Array.from({ length: PARTNERS }, (_, p) => partnerUpdate(p, ROUND_PARAMS));
  const ratios: number[] = [];
  const ckksMs: number[] = [];
  const maskedMs: number[] = [];
  let lastMasked: Awaited<ReturnType<typeof maskedRound>> | undefined;
  for (let rep = 0; rep < ROUND_REPS; rep++) {
    const c = (await benchCkks(ctx, cipher, ROUND_PARAMS)).endToEndMs;
    lastMasked = await maskedRound(masked, updates);
    ckksMs.push(c);
    maskedMs.push(lastMasked.ms);
    ratios.push(lastMasked.ms / c);
    console.log(`round ${rep + 1}/${ROUND_REPS}: CKKS ${c.toFixed(0)} ms, masked ${lastMasked.ms.toFixed(0)} ms, ratio ${(lastMasked.ms / c).toFixed(2)}`);
  }
  // One more masked round with 2 partners dropping before upload: the recovery work shows in "unmask".
  const withDropouts = maskedFigures(masked, updates, await maskedRound(masked, updates, 2));
  const heapBytes = await sealHeapBytes();
  const bfvParams = {
    ...DEFAULT_BFV_PARAMS,
    slotCount: masked.bfv.slotCount,
    plainModulus: masked.bfv.plainModulus,
    coeffModulus: masked.bfv.coeffModulus,
    maxSummands: masked.bfv.maxSummands,
  };
  cipher.dispose();
  ctx.dispose();
  masked.bfv.dispose();

  console.log(`Paillier: ${PARTNERS} partners × ${PAILLIER_SAMPLE} values …`);
  const pail = await benchPaillier();
  console.log(`Paillier: ${JSON.stringify(pail)}`);

  const comparison = ckks.map((c) => ({
    parameters: c.parameters,
    ckksEndToEndMs: c.endToEndMs,
    paillierEndToEndMsExtrapolated: round((pail.endToEndUsPerParameter * c.parameters) / 1000),
    speedup: round(pail.endToEndUsPerParameter / c.endToEndUsPerParameter),
    ckksWireBytesPerParameter: c.wireBytesPerParameter,
    maskedWireBytesPerParameter: maskedRows.find((m) => m.parameters === c.parameters)?.wireBytesPerParameter ?? null,
    paillierWireBytesPerParameter: pail.wireBytesPerParameter,
  }));
  const minSpeedup = Math.min(...comparison.map((c) => c.speedup));
  const maxBytes = Math.max(...ckks.filter((c) => c.parameters >= 100_000).map((c) => c.wireBytesPerParameter));
  const maxMaskedBytes = Math.max(...maskedRows.map((m) => m.wireBytesPerParameter));
  const roundRatio = median(ratios);
  const result = {
    benchmark: 'he-aggregation',
    started,
    quick,
    machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model },
    heParams: { ...DEFAULT_HE_PARAMS, slotCount: 4096, maxAbsInputValue: ctx.maxAbsInputValue },
    bfvParams,
    ckks,
    masked: maskedRows,
    round: {
      parameters: ROUND_PARAMS,
      partners: PARTNERS,
      repetitions: ROUND_REPS,
      ckksMs: ckksMs.map((x) => round(x)),
      maskedMs: maskedMs.map((x) => round(x)),
      ratios: ratios.map((x) => round(x)),
      medianRatio: round(roundRatio),
      lastMaskedPhasesMs: lastMasked ? maskedFigures(masked, updates, lastMasked).phasesMs : null,
      withTwoDropoutsBeforeUpload: withDropouts,
    },
    sealHeapBytesAtEnd: heapBytes,
    paillier: pail,
    comparison,
    targets: {
      wireBytesPerParameterMax: 16,
      wireBytesPerParameterMeasured: maxBytes,
      wireBytesMet: maxBytes <= 16,
      maskedWireBytesPerParameterMeasured: maxMaskedBytes,
      maskedWireBytesMet: maxMaskedBytes <= 16,
      maskedRoundRatioMax: 1.5,
      maskedRoundRatioMeasured: round(roundRatio),
      maskedRoundRatioMet: roundRatio <= 1.5,
      speedupMin: 1000,
      speedupMeasured: minSpeedup,
      speedupMet: minSpeedup >= 1000,
    },
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'he.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.table(comparison);
  console.log(`wrote ${out}`);
}

await main();
