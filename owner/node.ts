import type { Logger } from 'pino';
import { publicIdentity, type Identity, type PublicIdentity } from '../src/crypto/identity.ts';
import { FedmarkError } from '../src/errors.ts';
import { LedgerWriter } from '../src/privacy/ledger/writer.ts';
import { signerFromSecretKey } from '../src/privacy/ledger/signing.ts';
import { GENESIS_PREV, type LedgerEntry } from '../src/privacy/ledger/entries.ts';
import { planDp } from '../src/federation/dp-plan.ts';
import { sealJobKey } from '../src/crypto/key-ceremony.ts';
import type { JobManifest, SignedManifest } from '../src/federation/manifest.ts';
import { ModelTracker } from '../src/federation/partner.ts';
import { openSecureSum } from '../src/federation/secure-sum.ts';
import { metricsFromHistograms, type FederatedEvalMetrics } from '../src/metrics/histogram.ts';
import { CoordinatorClient } from '../src/federation/protocol/client.ts';
import { hasCode } from '../src/federation/protocol/errors.ts';

export interface RoundProgress {
  round: number;
  totalRounds: number;
  /** Metrics of the global model that entered this round, from the encrypted histograms. */
  metrics: FederatedEvalMetrics | null;
  partners: number;
}

export interface OwnerResult {
  state: string;
  reason: string | null;
  params: Float64Array;
  modelHash: string;
  roundMetrics: RoundProgress[];
  finalMetrics: FederatedEvalMetrics | null;
  secretKey: Uint8Array | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const party = (p: { name: string; keyId: string; signPublicKey: string }) => ({ name: p.name, keyId: p.keyId, signPublicKey: p.signPublicKey });

/**
 * Seq 0 of the job ledger, signed by the owner: it fixes every key allowed to write the ledger
 * (owner, coordinator, partners) and the DP parameters every round is audited against.
 */
export function manifestLedgerEntry(manifest: JobManifest, owner: Identity, coordinator: PublicIdentity): LedgerEntry {
  const plan = planDp(manifest);
  return LedgerWriter.buildNext(0, GENESIS_PREV, 'job.manifest', {
    jobId: manifest.jobId,
    owner: party(publicIdentity(owner)),
    coordinator: party(coordinator),
    partners: manifest.partners.map(party),
    purpose: manifest.purpose,
    columns: manifest.dataset.columns,
    rounds: manifest.rounds,
    partnersPerRound: manifest.partnersPerRound,
    quorum: manifest.quorum,
    dp: plan ? { targetEpsilon: plan.targetEpsilon, delta: plan.delta, clipNorm: plan.clipNorm, noiseMultiplier: plan.noiseMultiplier } : null,
    manifest: manifest as unknown as Record<string, unknown>,
  }, signerFromSecretKey(owner.signSecretKey));
}

/**
 * The data scientist's node: registers the signed job, runs the key ceremony (the CKKS secret key is
 * generated here and leaves only sealed to each partner), then follows the published aggregates
 * to obtain the global model and the federated metrics. It never sees a partner's individual update.
 */
export async function runJobOwner(o: {
  coordinatorUrl: string;
  identity: Identity;
  signed: SignedManifest;
  log: Logger;
  pollMs?: number;
  onRound?: (p: RoundProgress) => void;
  signal?: AbortSignal;
}): Promise<OwnerResult> {
  const manifest: JobManifest = o.signed.manifest;
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { signal: o.signal });
  await client.createJob(o.signed, manifestLedgerEntry(o.signed.manifest, o.identity, await client.coordinatorIdentity())).catch(async (err: unknown) => {
    // A retried registration that already went through: fine, if it is this very manifest.
    if (!hasCode(err, 'JOB_EXISTS')) throw err;
    const stored = await client.manifest(manifest.jobId);
    if (stored.signature !== o.signed.signature) throw err;
  });
  const scheme = await openSecureSum(manifest.encryption);
  let secretKey: Uint8Array | null = null;
  if (scheme.scheme === 'ckks') {
    secretKey = scheme.generateSecretKey();
    for (const p of manifest.partners) {
      const sealed = sealJobKey(manifest.jobId, secretKey, Buffer.from(p.boxPublicKey, 'base64'), o.identity);
      await client.putSealedKey(manifest.jobId, p.keyId, sealed).catch(async (err: unknown) => {
        // The last upload can open round 1; a retry of it then finds the ceremony closed.
        if (!(hasCode(err, 'KEYS_LOCKED') && (await client.status(manifest.jobId)).keysReady)) throw err;
      });
    }
  } else {
    // Still upload a placeholder so the ceremony completes; it carries no key because there is none.
    for (const p of manifest.partners) {
      await client.putSealedKey(manifest.jobId, p.keyId, sealJobKey(manifest.jobId, new Uint8Array(0), Buffer.from(p.boxPublicKey, 'base64'), o.identity));
    }
    o.log.warn('INSECURE: plaintext aggregation — the coordinator can read every update');
  }
  const tracker = new ModelTracker(manifest, scheme, secretKey);
  const roundMetrics: RoundProgress[] = [];
  let finalMetrics: FederatedEvalMetrics | null = null;
  let evaluated = 0;
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      const status = await client.status(manifest.jobId);
      const closed = [...status.closedRounds].sort((a, b) => a - b);
      for (const round of closed) {
        if (round <= evaluated) continue;
        const evalSum = await client.aggregate(manifest.jobId, round, 'evaluation');
        const metrics = metricsFromHistograms(tracker.decryptEvaluation(evalSum), tracker.layout);
        if (round <= manifest.rounds) {
          const agg = await client.aggregate(manifest.jobId, round, 'update');
          tracker.apply(round, agg);
        } else {
          finalMetrics = metrics;
        }
        evaluated = round;
        const progress = { round, totalRounds: status.totalRounds, metrics, partners: status.partners.filter((p) => p.status === 'accepted').length };
        roundMetrics.push(progress);
        o.onRound?.(progress);
      }
      if (status.state === 'completed' && evaluated === status.totalRounds) {
        return { state: status.state, reason: null, params: tracker.state.params, modelHash: tracker.state.hash, roundMetrics, finalMetrics, secretKey };
      }
      if (status.state === 'halted' || status.state === 'failed') {
        return { state: status.state, reason: status.reason, params: tracker.state.params, modelHash: tracker.state.hash, roundMetrics, finalMetrics, secretKey };
      }
      await sleep(o.pollMs ?? 200);
    }
  } finally {
    tracker.dispose();
    scheme.dispose();
  }
}
