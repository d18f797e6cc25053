/**
 * An in-memory run of one secure-aggregation attempt — n partners, the coordinator and a key holder,
 * exchanging the real signed messages and real BFV blobs, with dropouts injected at any stage. Tests
 * and the benchmark use it; the federation wires the same state machines to its transport instead.
 */
import { createHash } from 'node:crypto';
import { BfvAggregator } from '../bfv/aggregator.ts';
import { BfvCipher } from '../bfv/cipher.ts';
import type { BfvContext } from '../bfv/context.ts';
import { inspectBlob } from '../seal-wire/blob.ts';
import { publicIdentity, type Identity } from '../identity.ts';
import { makeSecaggConfig, type SecaggConfig } from './config.ts';
import { SecaggCoordinator, type SecaggEvidence } from './coordinator.ts';
import { decodeSums, encodeValues, planEncoding, type PartBound } from './encoding.ts';
import { SecaggHistory } from './history.ts';
import { SecaggPartner, type PartnerSnapshot } from './partner.ts';
import type { SignedInbox } from './messages.ts';
import { unmaskAggregate } from './unmask.ts';

/** The first stage a dropped partner misses (it sends nothing from then on). */
export type DropStage = 'advertise' | 'share' | 'upload' | 'consistency' | 'unmask';
const ORDER: DropStage[] = ['advertise', 'share', 'upload', 'consistency', 'unmask'];

export interface DriverOptions {
  jobId?: string;
  round?: number;
  attempt?: number;
  partners: Identity[];
  coordinator: Identity;
  /** Each partner's values, by part name (same order as `partners`). */
  inputs: Record<string, Float64Array>[];
  parts: PartBound[];
  bfv: BfvContext;
  /** The key holders' BFV secret key. */
  secretKey: Uint8Array;
  /** keyId → first stage the partner misses. */
  dropouts?: Record<string, DropStage>;
  threshold?: number;
  degree?: number;
  /** Summands the encoding plan provisions for (default: the number of partners). */
  maxSummands?: number;
  /** Per-partner histories (keyId → history) kept across rounds by the caller. */
  histories?: Map<string, SecaggHistory>;
  random?: (n: number) => Uint8Array;
}

export interface DriverResult {
  config: SecaggConfig;
  sums: Record<string, Float64Array>;
  survivors: string[];
  dropped: string[];
  evidence: SecaggEvidence;
  /** Each surviving partner's uploaded blob. */
  uploads: Map<string, Uint8Array>;
  sumBlob: Uint8Array;
  /** What each surviving partner masked (its encoded residues) — for exactness checks. */
  encoded: Map<string, Float64Array>;
  /** Every partner's final state (secrets included): a test's view of what colluders would hold. */
  snapshots: Map<string, PartnerSnapshot>;
  /** The inboxes the coordinator sent (sealed shares). */
  inboxes: Map<string, SignedInbox>;
  /** Smallest BFV noise budget (bits) left in the decrypted sum. */
  noiseBudget: number | undefined;
  /** Wall time per stage, summed over every party (one process plays them all). */
  timingsMs: Record<string, number>;
  bytes: { uploadPerPartner: number; sharesPerPartner: number; sum: number };
}

export async function runSecaggInMemory(o: DriverOptions): Promise<DriverResult> {
  const timings: Record<string, number> = {};
  const time = <T>(stage: string, fn: () => T): T => {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      timings[stage] = (timings[stage] ?? 0) + performance.now() - t0;
    }
  };
  const timeAsync = async <T>(stage: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings[stage] = (timings[stage] ?? 0) + performance.now() - t0;
    }
  };
  const ids = o.partners.map((p) => publicIdentity(p));
  const t = o.bfv.plainModulus;
  const plan = planEncoding(o.parts, t, o.maxSummands ?? o.partners.length);
  const config = makeSecaggConfig({
    jobId: o.jobId ?? 'job-secagg',
    round: o.round ?? 1,
    attempt: o.attempt ?? 0,
    selected: ids.map((p) => p.keyId),
    he: { paramsId: o.bfv.paramsId, plainModulus: t, maxSummands: o.bfv.maxSummands },
    encoding: plan,
    threshold: o.threshold,
    degree: o.degree,
  });
  const coordKey = Buffer.from(o.coordinator.signPublicKey).toString('base64');
  const alive = (id: string, stage: DropStage) => {
    const d = o.dropouts?.[id];
    return d === undefined || ORDER.indexOf(stage) < ORDER.indexOf(d);
  };
  const cipher = new BfvCipher(o.bfv, o.secretKey);
  const agg = new BfvAggregator(o.bfv);
  try {
    const coordinator = new SecaggCoordinator({ config, identity: o.coordinator, partners: ids });
    const partners = time('keys', () =>
      o.partners.map((identity, i) =>
        SecaggPartner.create({
          config,
          identity,
          partners: ids,
          coordinatorSignPublicKey: coordKey,
          history: o.histories?.get(ids[i].keyId),
          random: o.random,
        }),
      ),
    );
    const byId = new Map(partners.map((p, i) => [p.id, { p, i }]));
    for (const p of partners) if (alive(p.id, 'advertise')) time('coordinator', () => coordinator.acceptAdvertise(p.advertise()));
    const roster = time('coordinator', () => coordinator.closeAdvertise());

    let shareBytes = 0;
    let sharers = 0;
    for (const p of partners) {
      if (!alive(p.id, 'share')) continue;
      const shares = await timeAsync('share', () => p.onRoster(roster));
      shareBytes += JSON.stringify(shares).length;
      sharers++;
      time('coordinator', () => coordinator.acceptShares(shares));
    }
    time('coordinator', () => coordinator.closeShares());

    const uploads = new Map<string, Uint8Array>();
    const encodedBy = new Map<string, Float64Array>();
    const inboxes = new Map<string, SignedInbox>();
    for (const p of partners) {
      if (!alive(p.id, 'upload')) continue;
      const { i } = byId.get(p.id)!;
      const encoded = time('encode', () => encodeValues(plan, o.inputs[i], o.random));
      encodedBy.set(p.id, encoded);
      const inbox = coordinator.inboxFor(p.id);
      inboxes.set(p.id, inbox);
      const t0 = performance.now();
      let encryptMs = 0;
      const { message, blob } = p.onInbox(inbox, encoded, (masked) => {
        const e0 = performance.now();
        const b = cipher.encryptResidues(masked);
        encryptMs += performance.now() - e0;
        return b;
      });
      timings.mask = (timings.mask ?? 0) + performance.now() - t0 - encryptMs;
      timings.encrypt = (timings.encrypt ?? 0) + encryptMs;
      time('aggregate', () => {
        coordinator.acceptMasked(message, createHash('sha256').update(blob!).digest('hex'));
        agg.add(blob!);
      });
      uploads.set(p.id, blob!);
    }
    const survivorsMsg = time('coordinator', () => coordinator.closeUpload());
    for (const p of partners) {
      if (!uploads.has(p.id) || !alive(p.id, 'consistency')) continue;
      const c = time('consistency', () => p.onSurvivors(survivorsMsg));
      time('coordinator', () => coordinator.acceptConsistency(c));
    }
    const unmask = time('coordinator', () => coordinator.closeConsistency());
    for (const p of partners) {
      if (!uploads.has(p.id) || !alive(p.id, 'consistency') || !alive(p.id, 'unmask')) continue;
      const r = time('reveal', () => p.onUnmask(unmask));
      time('coordinator', () => coordinator.acceptReveal(r));
    }
    const evidence = time('coordinator', () => coordinator.closeUnmask());
    const sumBlob = time('aggregate', () => agg.toBytes());

    const residues = time('decrypt', () => cipher.decryptResidues(sumBlob, plan.totalSlots));
    const summands = inspectBlob(o.bfv, sumBlob).summands;
    const result = await timeAsync('unmask', () =>
      unmaskAggregate({ config, partners: ids, coordinatorSignPublicKey: coordKey, evidence, residues, sumSummands: summands }),
    );
    const sums = time('decode', () => decodeSums(plan, result.residues, result.survivors.length));
    const firstUpload = uploads.values().next().value as Uint8Array;
    return {
      config,
      sums,
      survivors: result.survivors,
      dropped: result.dropped,
      evidence,
      uploads,
      sumBlob,
      encoded: encodedBy,
      snapshots: new Map(partners.map((p) => [p.id, p.snapshot()])),
      inboxes,
      noiseBudget: cipher.lastNoiseBudget,
      timingsMs: timings,
      bytes: { uploadPerPartner: firstUpload.length, sharesPerPartner: sharers ? shareBytes / sharers : 0, sum: sumBlob.length },
    };
  } finally {
    agg.dispose();
    cipher.dispose();
  }
}
