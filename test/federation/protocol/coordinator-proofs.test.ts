import { describe, expect, it } from 'vitest';
import { manifestLedgerEntry } from '../../../owner/genesis.ts';
import { generateIdentity, publicIdentity } from '../../../src/crypto/identity.ts';
import { loadBundledSchema } from '../../../src/data/bundled.ts';
import { jobPreset } from '../../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest } from '../../../src/federation/manifest.ts';
import {
  checkGenesisEntry,
  genesisProblem,
  identityChallenge,
  proveIdentity,
  verifyCoordinatorHead,
  verifyIdentityAnswer,
} from '../../../src/federation/protocol/coordinator-proofs.ts';
import { LEDGER_SCHEMA_VERSION, type LedgerEntry } from '../../../src/privacy/ledger/entries.ts';
import { signHead } from '../../../src/privacy/ledger/head.ts';
import { entryHash, signerFromSecretKey } from '../../../src/privacy/ledger/signing.ts';
import { LedgerWriter } from '../../../src/privacy/ledger/writer.ts';
import { thrown } from '../../helpers/errors.ts';

const coordinator = generateIdentity('coordinator');
const impostor = generateIdentity('impostor');
const owner = generateIdentity('owner');
const partners = [generateIdentity('bank-a'), generateIdentity('telco-b')];

async function job() {
  const schema = await loadBundledSchema('telco-churn');
  const manifest = parseManifest({
    ...jobPreset({ jobId: 'proofs-job', schema, partners: 2, rounds: 2, epsilon: 1 }),
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: '2026-12-01T00:00:00Z',
    owner: publicIdentity(owner),
    partners: partners.map(publicIdentity),
  });
  return { manifest, genesis: manifestLedgerEntry(manifest, owner, publicIdentity(coordinator), null, null) };
}

describe("the coordinator's identity", () => {
  it("is proved by a signature over the caller's fresh challenge, and must be the pinned key", () => {
    const c = identityChallenge();
    const answer = proveIdentity(coordinator, publicIdentity(coordinator), c);
    expect(verifyIdentityAnswer(answer, c).keyId).toBe(publicIdentity(coordinator).keyId);
    expect(verifyIdentityAnswer(answer, c, publicIdentity(coordinator).keyId).keyId).toBe(publicIdentity(coordinator).keyId);
    expect(thrown(() => verifyIdentityAnswer(proveIdentity(impostor, publicIdentity(impostor), c), c, publicIdentity(coordinator).keyId))).toMatch(
      /COORDINATOR_UNTRUSTED.*not the pinned/,
    );
  });

  it('cannot be copied: the real identity without a proof, an old proof, or a proof by another key all fail', () => {
    const c = identityChallenge();
    const real = publicIdentity(coordinator);
    expect(thrown(() => verifyIdentityAnswer({ ...real }, c))).toMatch(/COORDINATOR_UNTRUSTED.*did not prove/);
    expect(thrown(() => verifyIdentityAnswer(proveIdentity(coordinator, real, identityChallenge()), c))).toMatch(/did not prove/);
    const byImpostor = { ...real, proof: proveIdentity(impostor, real, c).proof };
    expect(thrown(() => verifyIdentityAnswer(byImpostor, c))).toMatch(/did not prove/);
  });
});

describe("the job ledger's genesis", () => {
  it('must be signed by the owner, describe the manifest and name this coordinator', async () => {
    const { manifest, genesis } = await job();
    const keyId = publicIdentity(coordinator).keyId;
    expect(genesisProblem(manifest, genesis, keyId)).toBeNull();
    expect(checkGenesisEntry(manifest, genesis, keyId)).toBe(entryHash(genesis));
    expect(thrown(() => checkGenesisEntry(manifest, genesis, publicIdentity(impostor).keyId))).toMatch(/GENESIS_INVALID.*names coordinator/);
    const reSigned = manifestLedgerEntry(manifest, impostor, publicIdentity(coordinator), null, null);
    expect(thrown(() => checkGenesisEntry(manifest, reSigned, keyId))).toMatch(/GENESIS_INVALID.*not authored by the manifest's owner/);
    const tampered = { ...genesis, sig: manifestLedgerEntry(manifest, owner, publicIdentity(impostor), null, null).sig } as LedgerEntry;
    expect(thrown(() => checkGenesisEntry(manifest, tampered, keyId))).toMatch(/GENESIS_INVALID.*not signed by the owner/);
  });
});

describe("the coordinator's signed ledger head", () => {
  it('verifies under the coordinator key and must be an entry of a chain that starts at the genesis', async () => {
    const { genesis } = await job();
    const signer = signerFromSecretKey(coordinator.signSecretKey);
    const next = LedgerWriter.buildNext(1, entryHash(genesis), 'job.halt', { jobId: 'proofs-job', reason: 'test', afterRound: 0 }, signer);
    const head = signHead({ schemaVersion: LEDGER_SCHEMA_VERSION, seq: 1, hash: entryHash(next), ts: new Date().toISOString(), author: signer.keyId }, signer);
    const pub = publicIdentity(coordinator);
    expect(verifyCoordinatorHead(head, pub, { anchor: entryHash(genesis), ledger: [genesis, next] })).toEqual(head);
    const byImpostor = signHead({ ...head, author: signer.keyId }, signerFromSecretKey(impostor.signSecretKey));
    expect(thrown(() => verifyCoordinatorHead(byImpostor, pub))).toMatch(/COORDINATOR_UNTRUSTED.*not signed by the coordinator/);
    expect(thrown(() => verifyCoordinatorHead(head, pub, { anchor: '0'.repeat(64), ledger: [genesis, next] }))).toMatch(
      /does not start with the job's manifest entry/,
    );
    const other = LedgerWriter.buildNext(1, entryHash(genesis), 'job.halt', { jobId: 'proofs-job', reason: 'other', afterRound: 0 }, signer);
    expect(thrown(() => verifyCoordinatorHead(head, pub, { anchor: entryHash(genesis), ledger: [genesis, other] }))).toMatch(/not an entry of the job ledger/);
  });
});
