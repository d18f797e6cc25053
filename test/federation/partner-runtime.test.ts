import { beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/data/encode.ts';
import { FedmarkError } from '../../src/errors.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { PartnerRuntime, type PartnerOptions } from '../../src/federation/partner-runtime.ts';
import { openSecureSum, type SecureSumScheme } from '../../src/federation/secure-sum.ts';
import { decodeUpdate } from '../../src/federation/update-codec.ts';
import type { LocalContext, Workload } from '../../src/federation/workload.ts';
import type { LabelledDpEvent } from '../../src/privacy/dp-event.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { MemoryReleaseStore } from '../../src/federation/release-store.ts';
import { MAX_ATTEMPTS } from '../../src/federation/round-machine.ts';
import type { BudgetGuard } from '../../src/privacy/budget/guard.ts';
import { sha256Hex } from '../../src/util/hash.ts';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';
import { signSubmissionRecord } from '../../src/federation/submission-record.ts';

/**
 * The partner runtime with a workload made for the test: it records what happened in which order,
 * so the test can check authorize → local step → charge → encrypt, and what leaves.
 */
const release: LabelledDpEvent = { label: 'count', samplingRate: 1, noiseMultiplier: 2, steps: 1, sensitivity: 1 };
const log: string[] = [];
let out: Record<string, Float64Array> = {};
let ran: LabelledDpEvent[] | undefined;
const workload: Workload<number, number> = {
  kind: 'test-counter',
  validate: () => {},
  totalRounds: () => 3,
  plan: (_m, round) => ({
    kind: round < 3 ? 'count' : 'final',
    stages: ['upload'],
    parts: [{ name: 'rows', length: 2, domain: 'count', bound: null, use: 'state' }],
    selection: 'all',
    releases: round < 3 ? [release] : [],
    updatesState: round < 3,
  }),
  privacy: () => ({ targetEpsilon: 10, delta: 1e-5, noiseMultiplier: 2, clipNorm: 1 }),
  initialState: () => 0,
  hash: (s) => sha256Hex(`state-${s}`),
  local: async (ctx: LocalContext<number>) => {
    log.push(`local r${ctx.round} a${ctx.attempt} from ${ctx.state} rows ${ctx.data.train.n}`);
    return { parts: out, releases: ran };
  },
  apply: (_m, s, _r, sums) => s + sums.rows[0],
  report: () => null,
};
const me = generateIdentity('rt-partner');
const keyId = publicIdentity(me).keyId;
const signer = signerFromSecretKey(me.signSecretKey);
const manifest = { jobId: 'rt-job', quorum: 1, partners: [publicIdentity(me)], dataset: { featureNames: ['a', 'b'] } } as unknown as JobManifest;
/** What the coordinator would publish with a round's sums: this partner's signed record (the sums here are made up by the test). */
const contentsFor = (round: number, attempt = 0) => ({
  round,
  attempt,
  records: [
    signSubmissionRecord(
      {
        jobId: 'rt-job',
        round,
        attempt,
        kind: workload.plan(manifest, round).kind,
        partner: keyId,
        baseModelHash: 'a'.repeat(64),
        parts: [{ name: 'rows', sha256: 'b'.repeat(64) }],
      },
      signer,
    ),
  ],
});
const rows = (n: number, d = 2) => ({ n, d, X: new Float32Array(n * d), y: new Float32Array(n) }) as unknown as Dataset;

/** A guard that logs what it is asked, delegating to the in-memory one. */
function spyGuard(limit: number): BudgetGuard {
  const inner = new MemoryBudgetGuard(limit);
  return {
    authorize: (...a) => (log.push(`authorize r${a[1]} a${a[2]}`), inner.authorize(...a)),
    charge: (...a) => (log.push(`charge r${a[1]} a${a[2]} steps ${a[3][0].steps}`), inner.charge(...a)),
    spent: (...a) => inner.spent(...a),
  };
}

let scheme: SecureSumScheme;
beforeAll(async () => {
  scheme = await openSecureSum({ scheme: 'plain-insecure' });
});
/** The options of a runtime for this test's job and workload on 5 training and 2 hold-out rows, with `extra` on top. */
const optionsOf = (budget?: BudgetGuard, extra: Partial<PartnerOptions<number>> = {}): PartnerOptions<number> => ({
  manifest,
  workload,
  keyId,
  signer,
  train: rows(5),
  test: rows(2),
  scheme,
  secretKey: null,
  budget,
  ...extra,
});
const make = (budget?: BudgetGuard, extra: Partial<PartnerOptions<number>> = {}) => new PartnerRuntime(optionsOf(budget, extra));
const fail = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return `${(err as FedmarkError).code}: ${(err as Error).message}`;
  }
  return 'ok';
};

describe('partner runtime', () => {
  it('authorizes, runs the local step, charges the releases as run, then encrypts: the envelope says what was charged', async () => {
    log.length = 0;
    out = { rows: Float64Array.from([5, 1]) };
    ran = [{ ...release, steps: 1 }];
    const rt = make(spyGuard(10));
    const res = await rt.buildSubmission(1, 0, true);
    expect(log).toEqual(['authorize r1 a0', 'local r1 a0 from 0 rows 5', 'charge r1 a0 steps 1']);
    if (res.status !== 'submitted') throw new Error('refused');
    const { meta, parts } = decodeUpdate(res.body);
    expect(meta).toMatchObject({ jobId: 'rt-job', round: 1, attempt: 0, kind: 'count', baseModelHash: sha256Hex('state-0'), scheme: 'plain-insecure' });
    expect(meta.dp).toMatchObject({ releases: [{ label: 'count', samplingRate: 1, noiseMultiplier: 2, sensitivity: 1, steps: 1 }], delta: 1e-5 });
    expect(meta.dp!.epsilonAfterRound).toBeGreaterThan(0);
    expect(meta.dp!.epsilonSpent).toBeCloseTo(meta.dp!.epsilonAfterRound, 12);
    expect(Array.from(scheme.cipher(null).decrypt(parts.rows, 2))).toEqual([5, 1]);
    expect(res.plain?.rows).toBe(out.rows);
  });

  it('a refused authorization runs nothing and sends nothing', async () => {
    log.length = 0;
    const res = await make(spyGuard(0.001)).buildSubmission(1, 0);
    expect(res.status).toBe('refused');
    expect(log).toEqual(['authorize r1 a0']);
  });

  it('a retried attempt is a new release; the same attempt asked for again gets the same bytes, never a fresh draw', async () => {
    out = { rows: Float64Array.from([1, 1]) };
    ran = undefined;
    const guard = new MemoryBudgetGuard(10);
    const rt = make(guard);
    log.length = 0;
    const first = await rt.buildSubmission(1, 0);
    const once = guard.spent('rt-job', 1e-5);
    const again = await rt.buildSubmission(1, 0);
    expect(guard.spent('rt-job', 1e-5)).toBe(once);
    expect(first.status === 'submitted' && again.status === 'submitted' && again.resent && Buffer.from(again.body).equals(Buffer.from(first.body))).toBe(true);
    expect(log.filter((l) => l.startsWith('local'))).toHaveLength(1);
    const retry = await rt.buildSubmission(1, 1);
    expect(retry.status === 'submitted' && !retry.resent).toBe(true);
    expect(guard.spent('rt-job', 1e-5)).toBeGreaterThan(once);
  });

  it('withholds an attempt begun before but never kept, attempts beyond MAX_ATTEMPTS, and attempts that go backwards', async () => {
    out = { rows: Float64Array.from([1, 1]) };
    ran = undefined;
    // A crash after the charge, before the envelope was kept: the store knows the attempt was begun.
    const store = new MemoryReleaseStore();
    const crashing = make(new MemoryBudgetGuard(10), {
      releases: store,
      onRelease: () => {
        throw new Error('killed');
      },
    });
    await expect(crashing.buildSubmission(1, 0)).rejects.toThrow('killed');
    const restarted = make(new MemoryBudgetGuard(10), { releases: store });
    log.length = 0;
    const again = await restarted.buildSubmission(1, 0);
    expect(again).toMatchObject({
      status: 'withheld',
      reason: expect.stringMatching(/recorded in this partner's ledger before a crash .* not computed a second time/),
    });
    expect(log).toEqual([]);
    expect(await restarted.buildSubmission(1, MAX_ATTEMPTS)).toMatchObject({ status: 'withheld', reason: expect.stringMatching(/beyond the 3 attempts/) });
    expect((await restarted.buildSubmission(1, 2)).status).toBe('submitted');
    expect(await restarted.buildSubmission(1, 1)).toMatchObject({ status: 'withheld', reason: expect.stringMatching(/comes before round 1 attempt 2/) });
  });

  it('computes an attempt that crashed after its charge but before any record or byte left under that one charge', async () => {
    out = { rows: Float64Array.from([1, 1]) };
    ran = undefined;
    const store = new MemoryReleaseStore();
    const guard = new MemoryBudgetGuard(10);
    let crash = true;
    const dying: BudgetGuard = {
      authorize: (...a) => guard.authorize(...a),
      spent: (...a) => guard.spent(...a),
      charge: (...a) => {
        const r = guard.charge(...a);
        if (crash) throw new Error('killed after the charge');
        return r;
      },
    };
    const recorded: number[] = [];
    const opts = optionsOf(dying, { releases: store, onRelease: (r) => recorded.push(r.round) });
    await expect(new PartnerRuntime(opts).buildSubmission(1, 0)).rejects.toThrow('killed after the charge');
    const charged = guard.spent('rt-job', 1e-5);
    crash = false;
    const rebuilt = await new PartnerRuntime(opts).buildSubmission(1, 0);
    expect(rebuilt.status === 'submitted' && !rebuilt.resent).toBe(true);
    // The same charge (idempotent per attempt), one ledger record, and from now on the same bytes.
    expect(guard.spent('rt-job', 1e-5)).toBe(charged);
    expect(recorded).toEqual([1]);
    const again = await new PartnerRuntime(opts).buildSubmission(1, 0);
    expect(again.status === 'submitted' && again.resent && rebuilt.status === 'submitted' && Buffer.from(again.body).equals(Buffer.from(rebuilt.body))).toBe(
      true,
    );
  });

  it('makes a job release once, with the first upload that carries it, and hands it to every later round', async () => {
    const weight: LabelledDpEvent = { label: 'weight', samplingRate: 1, noiseMultiplier: 50, steps: 1, sensitivity: 1 };
    const seen: number[] = [];
    let made = 0;
    const w: Workload<number, number> = {
      ...workload,
      jobReleases: () => [weight],
      releaseOnce: () => (made++, { weight: Float64Array.from([100 + made]) }),
      plan: (m, round) => ({ ...workload.plan(m, round), uses: round < 3 ? ['weight'] : [] }),
      local: async (ctx) => {
        seen.push(ctx.released.weight?.[0] ?? NaN);
        return { parts: { rows: Float64Array.from([1, 1]) } };
      },
    };
    const guard = new MemoryBudgetGuard(10);
    const rt = make(guard, { workload: w });
    const r1 = await rt.buildSubmission(1, 0);
    expect(r1.status === 'submitted' && r1.meta.dp!.releases.map((r) => r.label)).toEqual(['weight', 'count']);
    const c = scheme.cipher(null);
    await rt.applyAggregate(1, { rows: c.encrypt(Float64Array.from([1, 0])) }, contentsFor(1));
    const r2 = await rt.buildSubmission(2, 0);
    expect(r2.status === 'submitted' && r2.meta.dp!.releases.map((r) => r.label)).toEqual(['count']);
    expect(made).toBe(1);
    expect(seen).toEqual([101, 101]);
    expect(rt.released(1, 0)?.releases.map((r) => r.label)).toEqual(['weight', 'count']);
  });

  it('follows the state from published sums and refuses to build for a round it is not at', async () => {
    out = { rows: Float64Array.from([1, 1]) };
    const rt = make(new MemoryBudgetGuard(10));
    expect(await fail(rt.buildSubmission(2, 0))).toMatch(/OUT_OF_STEP: partner holds the model after round 0, cannot submit for round 2/);
    const c = scheme.cipher(null);
    expect(rt.stateParts(1)).toEqual(['rows']);
    expect(await rt.applyAggregate(1, { rows: c.encrypt(Float64Array.from([7, 0])) }, contentsFor(1))).toBe(sha256Hex('state-7'));
    expect(rt.round).toBe(1);
    expect(await fail(rt.buildSubmission(1, 0))).toMatch(/OUT_OF_STEP/);
    await rt.applyAggregate(2, { rows: c.encrypt(Float64Array.from([3, 0])) }, contentsFor(2));
    // Round 3 releases nothing: no budget is asked, no DP report is sent.
    log.length = 0;
    const res = await rt.buildSubmission(3, 0);
    expect(res.status === 'submitted' && decodeUpdate(res.body).meta).toMatchObject({ kind: 'final', dp: null, baseModelHash: sha256Hex('state-10') });
    expect(log.filter((l) => l.startsWith('authorize'))).toEqual([]);
  });

  it("refuses to decrypt a round's sums whose signed contents leave out its own acknowledged upload", async () => {
    out = { rows: Float64Array.from([1, 1]) };
    ran = undefined;
    const rt = make(new MemoryBudgetGuard(10));
    const built = await rt.buildSubmission(1, 0);
    if (built.status !== 'submitted') throw new Error('refused');
    const c = scheme.cipher(null);
    const sums = { rows: c.encrypt(Float64Array.from([1, 1])) };
    // Not acknowledged yet (the upload may never have arrived): another record of this partner is not checked against it.
    rt.acknowledged(1, 0);
    expect(await fail(Promise.resolve().then(() => rt.applyAggregate(1, sums, contentsFor(1))))).toMatch(
      /AGGREGATE_UNVERIFIED: .*leave out this key holder's own upload/,
    );
    expect(await rt.applyAggregate(1, sums, { round: 1, attempt: 0, records: [built.meta.record] })).toBe(sha256Hex('state-1'));
    expect(rt.tookPart(1, { round: 1, attempt: 0, records: [built.meta.record] })).toBe(true);
  });

  it('refuses a local step whose parts or releases differ from the plan, and a DP job without a guard', async () => {
    const rt = make(new MemoryBudgetGuard(10));
    out = { rows: Float64Array.from([1, 2, 3]) };
    ran = undefined;
    expect(await fail(rt.buildSubmission(1, 0))).toMatch(/WORKLOAD_PART: round 1: the local step produced 3 values for part "rows", the plan needs 2/);
    out = { rows: Float64Array.from([1, 2]) };
    ran = [{ ...release, label: 'histogram' }];
    expect(await fail(rt.buildSubmission(1, 1))).toMatch(/WORKLOAD_RELEASES/);
    expect(await fail(Promise.resolve().then(() => make()))).toMatch(/DP_NO_BUDGET/);
    expect(await fail(Promise.resolve().then(() => make(new MemoryBudgetGuard(1), { train: rows(5, 3) })))).toMatch(
      /SCHEMA_MISMATCH: partner data has 3 features, the job declares 2/,
    );
  });
});
