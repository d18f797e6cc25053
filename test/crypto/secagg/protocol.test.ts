import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyId } from '../../../src/crypto/identity.ts';
import {
  SecaggAttemptFailed,
  SecaggHistory,
  decodeSums,
  isSecaggAttemptFailed,
  neighbourhoods,
  runSecaggInMemory,
  type DriverOptions,
  type DropStage,
} from '../../../src/crypto/secagg/index.ts';
import { COORDINATOR, identities, openBfv, realInputs, seededRandom, sumMod, type Bfv } from './helpers.ts';

let bfv: Bfv;
beforeAll(async () => {
  bfv = await openBfv();
});
afterAll(() => bfv?.dispose());

const N = 7;
const L = 3000;
const people = identities(N);
const ids = people.map((p) => keyId(p.signPublicKey)).sort();
const inputs = realInputs(N, L, 42);
const counts = people.map((_, p) => ({ rows: Float64Array.from({ length: 16 }, (_, i) => (i * 7919 * (p + 1)) % 100_000) }));
const parts = [
  { name: 'update', length: L, kind: 'real' as const, maxAbs: 1 },
  { name: 'rows', length: 16, kind: 'count' as const, maxAbs: 100_000 },
];

function run(dropouts: Record<string, DropStage> = {}, extra: Partial<DriverOptions> = {}) {
  return runSecaggInMemory({
    partners: people,
    coordinator: COORDINATOR,
    inputs: people.map((_, i) => ({ ...inputs[i], ...counts[i] })),
    parts,
    bfv: bfv.ctx,
    secretKey: bfv.secretKey,
    dropouts,
    ...extra,
  });
}

/** A run of `people` with random real updates of `length` values in [−1, 1]. */
function runReal(people: ReturnType<typeof identities>, length: number, extra: Partial<DriverOptions> = {}) {
  return runSecaggInMemory({
    partners: people,
    coordinator: COORDINATOR,
    inputs: realInputs(people.length, length, people.length + length),
    parts: [{ name: 'update', length, kind: 'real', maxAbs: 1 }],
    bfv: bfv.ctx,
    secretKey: bfv.secretKey,
    ...extra,
  });
}

/** The decoded sum equals the plaintext sum of what the survivors encoded, bit for bit. */
function expectSumOfEncoded(r: Awaited<ReturnType<typeof runSecaggInMemory>>) {
  const plain = decodeSums(r.config.encoding, sumMod([...r.encoded.values()], bfv.ctx.plainModulus), r.survivors.length);
  expect(r.sums.update).toEqual(plain.update);
}

/** The aggregate must equal the plaintext sum of the survivors' quantised inputs, bit for bit. */
async function expectExact(dropouts: Record<string, DropStage>, expectedSurvivors: number) {
  const r = await run(dropouts);
  expect(r.survivors.length).toBe(expectedSurvivors);
  const t = bfv.ctx.plainModulus;
  const plain = decodeSums(r.config.encoding, sumMod([...r.encoded.values()], t), r.survivors.length);
  expect(r.sums.update).toEqual(plain.update);
  expect(r.sums.rows).toEqual(plain.rows);
  // …and the quantised sum is within n·2^-f of the float sum of the survivors' values.
  const f = r.config.encoding.parts[0].fractionBits;
  const idx = people.map((p) => keyId(p.signPublicKey));
  let maxErr = 0;
  for (let i = 0; i < L; i++) {
    let s = 0;
    idx.forEach((id, p) => {
      if (r.survivors.includes(id)) s += inputs[p].update[i];
    });
    maxErr = Math.max(maxErr, Math.abs(s - r.sums.update[i]));
  }
  expect(maxErr).toBeLessThan(r.survivors.length * 2 ** -f);
  const expectedRows = counts.reduce((acc, c, p) => (r.survivors.includes(idx[p]) ? acc + c.rows[5] : acc), 0);
  expect(r.sums.rows[5]).toBe(expectedRows);
  return r;
}

describe('secure aggregation inside BFV: the aggregate is the exact sum of the quantised inputs', () => {
  it('without dropouts', async () => {
    const r = await expectExact({}, N);
    expect(r.config.threshold).toBe(5); // ⌈2·7/3⌉
    expect(r.dropped).toEqual([]);
  });

  for (const [label, pick] of [
    ['lowest', 0],
    ['highest', N - 1],
  ] as const) {
    it(`a partner that drops before uploading, at the ${label} index: its pairwise masks come out through its key shares`, async () => {
      const r = await expectExact({ [ids[pick]]: 'upload' }, N - 1);
      expect(r.dropped).toEqual([ids[pick]]);
    });

    it(`a partner that drops after uploading, at the ${label} index: its upload counts, its self-mask comes out through seed shares`, async () => {
      const r = await expectExact({ [ids[pick]]: 'consistency' }, N);
      expect(r.survivors).toContain(ids[pick]);
    });

    it(`a partner that drops during unmasking, at the ${label} index`, async () => {
      await expectExact({ [ids[pick]]: 'unmask' }, N);
    });
  }

  it('dropouts in every phase at once, on both sides of the dropped indices (10 partners, t = 5)', async () => {
    const ten = identities(10, 'ten');
    const tenIds = ten.map((p) => keyId(p.signPublicKey)).sort();
    const r = await runReal(ten, 2000, {
      threshold: 5,
      dropouts: { [tenIds[4]]: 'share', [tenIds[0]]: 'upload', [tenIds[9]]: 'upload', [tenIds[8]]: 'consistency', [tenIds[1]]: 'unmask' },
    });
    expect(r.survivors.length).toBe(7);
    expect(r.dropped).toEqual([tenIds[0], tenIds[9]]);
    expectSumOfEncoded(r);
  });

  it('a partner that never advertises is simply not part of the attempt', async () => {
    await expectExact({ [ids[2]]: 'advertise' }, N - 1);
  });

  it('fewer than t responders fails the attempt cleanly, at every stage', async () => {
    // t = 5 of 7: three missing responders leave 4.
    const cases: Record<string, DropStage>[] = [
      { [ids[0]]: 'advertise', [ids[1]]: 'advertise', [ids[2]]: 'advertise' },
      { [ids[0]]: 'share', [ids[4]]: 'share', [ids[6]]: 'share' },
      { [ids[1]]: 'upload', [ids[2]]: 'upload', [ids[3]]: 'upload' },
      { [ids[0]]: 'consistency', [ids[5]]: 'consistency', [ids[6]]: 'consistency' },
      { [ids[0]]: 'unmask', [ids[3]]: 'unmask', [ids[6]]: 'unmask' },
    ];
    for (const dropouts of cases) {
      const err = await run(dropouts).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isSecaggAttemptFailed(err), String(err)).toBe(true);
      expect((err as SecaggAttemptFailed).code).toBe('SECAGG_ATTEMPT_FAILED');
      expect((err as SecaggAttemptFailed).message).toMatch(/at least|fewer than|only/);
    }
  });

  it('the SecAgg+ sparse graph (Harary, degree 6) sums exactly with dropouts', async () => {
    const many = identities(12, 'sparse');
    const sorted = many.map((p) => keyId(p.signPublicKey)).sort();
    const r = await runReal(many, 500, { degree: 6, dropouts: { [sorted[0]]: 'upload', [sorted[11]]: 'unmask' } });
    expect(r.config.graph.kind).toBe('harary');
    expect(r.config.threshold).toBe(5); // ⌈2·7/3⌉ of 7 holders (6 neighbours + self)
    expectSumOfEncoded(r);
    expect(r.survivors.length).toBe(11);
    for (const [u, nb] of neighbourhoods(r.config.selected, r.config.graph)) {
      expect(nb.size).toBe(6);
      for (const v of nb) expect(neighbourhoods(r.config.selected, r.config.graph).get(v)!.has(u)).toBe(true);
    }
  });

  it('above 64 partners the default graph is sparse; 70 partners sum exactly', async () => {
    const many = identities(70, 'big');
    const r = await runReal(many, 64, { dropouts: { [many.map((p) => keyId(p.signPublicKey)).sort()[3]]: 'upload' } });
    expect(r.config.graph).toMatchObject({ kind: 'harary', degree: 64 });
    expect(r.config.threshold).toBe(44);
    expectSumOfEncoded(r);
  }, 60_000);

  it('a seed or mask key reused in a later round is caught by the other partners', async () => {
    const histories = new Map(ids.map((id) => [id, new SecaggHistory()]));
    // Round 1: every partner draws from its own deterministic source.
    const sources = new Map(ids.map((id) => [id, seededRandom(`r1-${id}`)]));
    const fresh = (round: number) => (id: string) => seededRandom(`r${round}-${id}`);
    await runOwnRandom(1, histories, (id) => sources.get(id)!);
    // Round 2: partner ids[4] restarts from the same random state as in round 1 (a broken RNG, a
    // restored snapshot) — its mask key and seed repeat.
    const err = await runOwnRandom(2, histories, (id) => (id === ids[4] ? seededRandom(`r1-${id}`) : fresh(2)(id))).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as { code?: string })?.code).toBe('SECAGG_KEY_REUSE');
    expect(String((err as Error).message)).toContain(ids[4]);
  });
});

/** The driver takes one random source for all; this runs with one per partner (per round). */
async function runOwnRandom(round: number, histories: Map<string, SecaggHistory>, source: (id: string) => (n: number) => Uint8Array) {
  const { Round } = await import('./helpers.ts');
  const r = new Round(bfv, people, [{ name: 'update', length: 10, kind: 'real', maxAbs: 1 }], { round, histories, random: source });
  try {
    for (const p of r.partners) r.coordinator.acceptAdvertise(p.advertise());
    const roster = r.coordinator.closeAdvertise();
    for (const p of r.partners) r.coordinator.acceptShares(await p.onRoster(roster));
  } finally {
    r.agg.dispose();
  }
}
