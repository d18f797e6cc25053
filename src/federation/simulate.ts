import { createHash } from 'node:crypto';
import { identityFromSeed, publicIdentity, type Identity } from '../crypto/identity.ts';
import type { Dataset } from '../data/encode.ts';
import { metricsFromHistograms, type FederatedEvalMetrics } from '../metrics/histogram.ts';
import { RdpAccountant } from '../privacy/accountant.ts';
import { FedmarkError } from '../errors.ts';
import { type JobManifest, parseManifest, signManifest, verifySignedManifest , MANIFEST_SCHEMA_VERSION } from './manifest.ts';
import { ModelTracker, PartnerRuntime, type BudgetGuard } from './partner.ts';
import type { DpEvent } from '../privacy/accountant.ts';
import { checkSubmission, roundKind, selectPartners, totalRounds } from './rounds.ts';
import { openSecureSum, type SecureSumScheme } from './secure-sum.ts';
import { decodeUpdate } from './update-codec.ts';
import { planDp } from './dp-plan.ts';
import { initBackend } from '../model/backend.ts';

/**
 * In-process federation for data scientists: the same partner runtime, round rules, encryption and
 * server strategy as the real nodes, with the transport replaced by function calls.
 */

export interface SimulationPartner {
  name: string;
  train: Dataset;
  test: Dataset;
  /** The most ε this partner's policy lets the job spend (default: the job's target ε). */
  maxEpsilon?: number;
}

/** A manifest without the identities, which the simulation creates itself. */
export type SimulationJob = Omit<JobManifest, 'owner' | 'partners' | 'schemaVersion' | 'createdAt'> & { createdAt?: string };

export interface SimulationRound {
  round: number;
  kind: 'train' | 'evaluate';
  partners: string[];
  declined: { name: string; reason: string }[];
  /** Metrics of the global model that entered the round, from the summed encrypted histograms. */
  metrics: FederatedEvalMetrics;
  /** Cumulative ε per partner after the round (DP jobs). */
  epsilon: Record<string, number>;
  modelHash: string;
}

export interface SimulationResult {
  manifest: JobManifest;
  params: Float64Array;
  modelHash: string;
  rounds: SimulationRound[];
  finalMetrics: FederatedEvalMetrics;
  epsilon: Record<string, number>;
  noiseMultiplier: number | null;
  wireBytes: { update: number; perParameter: number };
  wallSeconds: number;
}

/** Simulation budget: the same accountant the partner node uses, held in memory. */
export class MemoryBudgetGuard implements BudgetGuard {
  private readonly events = new Map<string, DpEvent>();

  constructor(private readonly maxEpsilon: number) {}

  private epsilonWith(extra: DpEvent | null, delta: number): number {
    const acc = new RdpAccountant();
    for (const e of this.events.values()) acc.step(e);
    if (extra) acc.step(extra);
    return this.events.size === 0 && !extra ? 0 : acc.getEpsilon(delta).epsilon;
  }

  authorize(_jobId: string, round: number, attempt: number, event: DpEvent, delta: number) {
    const key = `${round}.${attempt}`;
    const after = this.events.has(key) ? this.epsilonWith(null, delta) : this.epsilonWith(event, delta);
    if (after > this.maxEpsilon) {
      const before = this.epsilonWith(null, delta);
      return {
        ok: false as const,
        reason: `ε after round ${round} would be ${after.toFixed(4)}, above the limit ${this.maxEpsilon}`,
        requestedEpsilon: after - before,
        remainingEpsilon: this.maxEpsilon - before,
      };
    }
    return { ok: true as const, epsilonAfter: after };
  }

  charge(_jobId: string, round: number, attempt: number, event: DpEvent, delta: number) {
    const epsilonBefore = this.epsilonWith(null, delta);
    this.events.set(`${round}.${attempt}`, event);
    return { epsilonBefore, epsilonAfter: this.epsilonWith(null, delta) };
  }

  spent(_jobId: string, delta: number): number {
    return this.epsilonWith(null, delta);
  }
}

export async function simulate(opts: {
  job: SimulationJob;
  partners: SimulationPartner[];
  onRound?: (r: SimulationRound) => void;
}): Promise<SimulationResult> {
  const started = performance.now();
  await initBackend();
  if (opts.partners.length === 0) throw new FedmarkError('SIM_NO_PARTNERS', 'simulate() needs at least one partner');
  // Keys derived from the job seed: training seeds depend on key ids, so a seeded simulation replays exactly.
  const simKey = (role: string) => createHash('sha256').update(`fedmark-simulation|${opts.job.seed}|${role}`).digest();
  const owner = identityFromSeed('owner', simKey('owner'));
  const ids: Identity[] = opts.partners.map((p, i) => identityFromSeed(p.name, simKey(`partner|${i}|${p.name}`)));
  const manifest = parseManifest({
    ...opts.job,
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: opts.job.createdAt ?? new Date().toISOString(),
    owner: publicIdentity(owner),
    partners: ids.map(publicIdentity),
  });
  verifySignedManifest(signManifest(manifest, owner));
  const scheme: SecureSumScheme = await openSecureSum(manifest.encryption);
  const secretKey = scheme.scheme === 'ckks' ? scheme.generateSecretKey() : null;
  const plan = planDp(manifest);
  const guards = opts.partners.map((p) => new MemoryBudgetGuard(p.maxEpsilon ?? plan?.targetEpsilon ?? Infinity));
  const runtimes = opts.partners.map(
    (p, i) => new PartnerRuntime({ manifest, keyId: manifest.partners[i].keyId, train: p.train, test: p.test, scheme, secretKey, budget: plan ? guards[i] : undefined }),
  );
  const byKey = new Map(manifest.partners.map((p, i) => [p.keyId, i]));
  const owned = new ModelTracker(manifest, scheme, secretKey);
  const rounds: SimulationRound[] = [];
  let updateBytes = 0;
  let finalMetrics: FederatedEvalMetrics | null = null;
  try {
    for (let round = 1; round <= totalRounds(manifest); round++) {
      const kind = roundKind(manifest, round);
      let closed = false;
      for (let attempt = 0; attempt < 3 && !closed; attempt++) {
        const selected = selectPartners(manifest, round, attempt, [...byKey.keys()]);
        const updateSum = scheme.sum();
        const evalSum = scheme.sum();
        const submitted: string[] = [];
        const declined: { name: string; reason: string }[] = [];
        try {
          for (const keyId of selected) {
            const i = byKey.get(keyId)!;
            const res = await runtimes[i].buildSubmission(round, attempt, kind);
            if (res.status === 'refused') {
              declined.push({ name: opts.partners[i].name, reason: res.reason });
              continue;
            }
            const decoded = decodeUpdate(res.body);
            checkSubmission(manifest, scheme, { jobId: manifest.jobId, round, attempt, baseModelHash: owned.state.hash }, decoded);
            if (decoded.parts.update) {
              updateSum.add(decoded.parts.update);
              updateBytes = decoded.parts.update.length;
            }
            evalSum.add(decoded.parts.evaluation);
            submitted.push(opts.partners[i].name);
          }
          if (submitted.length < manifest.quorum) continue;
          closed = true;
          const metrics = metricsFromHistograms(owned.decryptEvaluation(evalSum.toBytes()), owned.layout);
          if (kind === 'train') {
            const agg = updateSum.toBytes();
            const next = owned.apply(round, agg);
            for (const rt of runtimes) {
              const mine = rt.applyAggregate(round, agg);
              if (mine.hash !== next.hash) throw new FedmarkError('MODEL_DIVERGED', `partner model hash differs after round ${round}`);
            }
          } else {
            finalMetrics = metrics;
          }
          const epsilon = plan ? Object.fromEntries(opts.partners.map((p, i) => [p.name, guards[i].spent(manifest.jobId, plan.delta)])) : {};
          const r: SimulationRound = { round, kind, partners: submitted, declined, metrics, epsilon, modelHash: owned.state.hash };
          rounds.push(r);
          opts.onRound?.(r);
        } finally {
          updateSum.dispose();
          evalSum.dispose();
        }
      }
      if (!closed) throw new FedmarkError('ROUND_FAILED', `round ${round} missed its quorum of ${manifest.quorum} three times`);
    }
    const p = owned.state.params.length;
    return {
      manifest,
      params: owned.state.params,
      modelHash: owned.state.hash,
      rounds,
      finalMetrics: finalMetrics!,
      epsilon: plan ? Object.fromEntries(opts.partners.map((pp, i) => [pp.name, guards[i].spent(manifest.jobId, plan.delta)])) : {},
      noiseMultiplier: plan?.noiseMultiplier ?? null,
      wireBytes: { update: updateBytes, perParameter: updateBytes / (p + 1) },
      wallSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const rt of runtimes) rt.dispose();
    owned.dispose();
    scheme.dispose();
  }
}
