import { describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { FedmarkError } from '../../src/errors.ts';
import { checkJobKey, committedKeyHash, jobKeyCommitment } from '../../src/federation/key-commitment.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { manifestLedgerEntry } from '../../owner/genesis.ts';
import type { LedgerEntry } from '../../src/privacy/ledger/entries.ts';
import { canonicalJson } from '../../src/privacy/ledger/canonical.ts';

const owner = generateIdentity('owner');
const coordinator = publicIdentity(generateIdentity('coordinator'));
const partners = [generateIdentity('a'), generateIdentity('b')].map(publicIdentity);
const manifest = {
  jobId: 'commit-job',
  owner: publicIdentity(owner),
  partners,
  purpose: 'propensity-model',
  dataset: { columns: ['x'] },
  rounds: 2,
  partnersPerRound: 2,
  quorum: 2,
} as unknown as JobManifest;
const key = Uint8Array.from({ length: 64 }, (_, i) => i);
const other = Uint8Array.from({ length: 64 }, (_, i) => 63 - i);
const ledgerOf = (...entries: LedgerEntry[]) => new TextEncoder().encode(entries.map((e) => `${canonicalJson(e)}\n`).join(''));
const code = (f: () => unknown) => {
  try {
    f();
    return 'no error';
  } catch (err) {
    return err instanceof FedmarkError ? `${err.code}: ${err.message}` : String(err);
  }
};

describe("the owner's commitment to the job key", () => {
  it('is bound to the key and the job id', () => {
    const c = jobKeyCommitment('commit-job', key);
    expect(c).toMatch(/^[0-9a-f]{64}$/);
    expect(jobKeyCommitment('commit-job', other)).not.toBe(c);
    expect(jobKeyCommitment('another-job', key)).not.toBe(c);
  });

  it('a partner accepts the committed key and refuses any other, a genesis without a commitment or one not signed by the owner', () => {
    const genesis = manifestLedgerEntry(manifest, owner, coordinator, null, jobKeyCommitment('commit-job', key));
    const ledger = ledgerOf(genesis);
    expect(committedKeyHash(manifest, ledger)).toBe(jobKeyCommitment('commit-job', key));
    expect(code(() => checkJobKey(manifest, ledger, key))).toBe('no error');
    expect(code(() => checkJobKey(manifest, ledger, other))).toMatch(
      /^KEY_COMMITMENT: the job key sealed to this partner .* is not the key the owner committed to/,
    );
    expect(code(() => checkJobKey(manifest, ledgerOf(manifestLedgerEntry(manifest, owner, coordinator, null, null)), key))).toMatch(
      /KEY_COMMITMENT: .*commits to no job key/,
    );
    // The same entry signed by someone else (e.g. the coordinator), or an entry of another job.
    const impostor = generateIdentity('impostor');
    const forged = manifestLedgerEntry({ ...manifest, owner: publicIdentity(impostor) }, impostor, coordinator, null, jobKeyCommitment('commit-job', other));
    expect(code(() => checkJobKey(manifest, ledgerOf(forged), other))).toMatch(/KEY_COMMITMENT: .*not signed by the job's owner/);
    const elsewhere = manifestLedgerEntry({ ...manifest, jobId: 'other-job' }, owner, coordinator, null, jobKeyCommitment('commit-job', other));
    expect(code(() => checkJobKey(manifest, ledgerOf(elsewhere), other))).toMatch(/KEY_COMMITMENT: .*not a manifest entry of job commit-job/);
    expect(code(() => checkJobKey(manifest, new Uint8Array(0), key))).toMatch(/KEY_COMMITMENT: .*not the job.manifest entry at seq 0/);
  });
});
