import { publicIdentity, type Identity, type PublicIdentity } from '../src/crypto/identity.ts';
import type { JobManifest } from '../src/federation/manifest.ts';
import type { PrivacyPlan } from '../src/federation/workload.ts';
import { GENESIS_PREV, type LedgerEntry } from '../src/privacy/ledger/entries.ts';
import { signerFromSecretKey } from '../src/privacy/ledger/signing.ts';
import { LedgerWriter } from '../src/privacy/ledger/writer.ts';

const party = (p: { name: string; keyId: string; signPublicKey: string }) => ({ name: p.name, keyId: p.keyId, signPublicKey: p.signPublicKey });

/**
 * Seq 0 of the job ledger, signed by the owner: it fixes every key allowed to write the ledger
 * (owner, coordinator, partners), the DP parameters every round is audited against and the owner's
 * commitment to the job key (`keyCommitment`, null without a key), which every partner checks the
 * key it unseals against.
 */
export function manifestLedgerEntry(
  manifest: JobManifest,
  owner: Identity,
  coordinator: PublicIdentity,
  privacy: PrivacyPlan | null,
  keyCommitment: string | null,
): LedgerEntry {
  return LedgerWriter.buildNext(
    0,
    GENESIS_PREV,
    'job.manifest',
    {
      jobId: manifest.jobId,
      owner: party(publicIdentity(owner)),
      coordinator: party(coordinator),
      partners: manifest.partners.map(party),
      purpose: manifest.purpose,
      columns: manifest.dataset.columns,
      rounds: manifest.rounds,
      partnersPerRound: manifest.partnersPerRound,
      quorum: manifest.quorum,
      dp: privacy ? { targetEpsilon: privacy.targetEpsilon, delta: privacy.delta, clipNorm: privacy.clipNorm, noiseMultiplier: privacy.noiseMultiplier } : null,
      manifest: manifest as unknown as Record<string, unknown>,
      keyCommitment,
    },
    signerFromSecretKey(owner.signSecretKey),
  );
}
