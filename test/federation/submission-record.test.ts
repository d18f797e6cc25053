import { describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { FedmarkError } from '../../src/errors.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import {
  checkRecordOfUpload,
  signSubmissionRecord,
  verifyContents,
  type RoundContents,
  type SubmissionRecord,
} from '../../src/federation/submission-record.ts';
import type { RoundPlan } from '../../src/federation/workload.ts';
import { signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';

const ids = ['a', 'b', 'c'].map((n) => generateIdentity(n));
const key = (i: number) => publicIdentity(ids[i]).keyId;
const manifest = { jobId: 'rec-job', quorum: 2, partners: ids.map(publicIdentity) } as JobManifest;
const plan = { kind: 'train', parts: [{ name: 'update' }, { name: 'evaluation' }] } as RoundPlan;
const parts = (tag: string) => [
  { name: 'update', sha256: tag.repeat(64) },
  { name: 'evaluation', sha256: tag.repeat(64) },
];
const rec = (i: number, o: Partial<SubmissionRecord> = {}): SubmissionRecord =>
  signSubmissionRecord(
    { jobId: 'rec-job', round: 3, attempt: 1, kind: 'train', partner: key(i), baseModelHash: 'e'.repeat(64), parts: parts(String(i)), ...o },
    signerFromSecretKey(ids[i].signSecretKey),
  );
const contents = (records: SubmissionRecord[], o: Partial<RoundContents> = {}): RoundContents => ({ round: 3, attempt: 1, records, ...o });
const why = (f: () => void): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return `${(err as FedmarkError).code}: ${(err as Error).message}`;
  }
  return 'ok';
};
const check = (c: RoundContents, summands: number | null = c.records.length, own: SubmissionRecord | null = null) =>
  why(() =>
    verifyContents(
      manifest,
      plan,
      3,
      c,
      [
        { part: 'update', summands },
        { part: 'evaluation', summands },
      ],
      own,
    ),
  );

describe('what a published sum holds, checked before a key holder decrypts it', () => {
  it('accepts the signed records of a quorum of distinct partners, as many as the sum declares, including the checker’s own', () => {
    expect(check(contents([rec(0), rec(1)]))).toBe('ok');
    expect(check(contents([rec(0), rec(1), rec(2)]), 3, rec(2))).toBe('ok');
    expect(check(contents([rec(0), rec(1)]), null)).toBe('ok'); // plaintext: the scheme declares no count
  });

  it('refuses a patched count, a partner listed twice, too few partners, and a sum that leaves out the checker’s own upload', () => {
    expect(check(contents([rec(0), rec(1)]), 3)).toMatch(/AGGREGATE_UNVERIFIED: .*declare 3 summand\(s\) in "update" but list 2/);
    expect(check(contents([rec(0), rec(0)]))).toMatch(/list .*'s record twice/);
    expect(check(contents([rec(0)]), 1)).toMatch(/signed records of 1 partner\(s\), fewer than the quorum of 2/);
    expect(check(contents([rec(0), rec(1)]), 2, rec(2))).toMatch(/leave out this key holder's own upload to attempt 1/);
  });

  it('refuses records of another job, round, attempt or kind, of a stranger, or that their key does not sign', () => {
    expect(check(contents([rec(0), rec(1, { attempt: 0 })]))).toMatch(/record of job rec-job round 3 attempt 0, not of round 3 attempt 1/);
    expect(check(contents([rec(0), rec(1, { round: 2 })]))).toMatch(/round 2 attempt 1, not of round 3/);
    expect(check(contents([rec(0), rec(1, { jobId: 'other' })]))).toMatch(/record of job other/);
    expect(check(contents([rec(0), rec(1, { kind: 'evaluate' })]))).toMatch(/another kind of round/);
    expect(check(contents([rec(0), rec(1)], { round: 4 }))).toMatch(/come with the records of round 4/);
    const stranger = generateIdentity('stranger');
    const foreign = signSubmissionRecord({ ...rec(0), partner: publicIdentity(stranger).keyId }, signerFromSecretKey(stranger.signSecretKey));
    expect(check(contents([rec(0), foreign]))).toMatch(/who is not a partner of the job/);
    const tampered = { ...rec(1), parts: parts('9') };
    expect(check(contents([rec(0), tampered]))).toMatch(/that its key does not sign/);
  });

  it('the coordinator takes an upload only with its partner’s signature over exactly what was uploaded', () => {
    const r = rec(0);
    const upload = { partner: key(0), round: 3, attempt: 1, kind: 'train', baseModelHash: 'e'.repeat(64), parts: parts('0') };
    expect(why(() => checkRecordOfUpload(manifest, r, upload))).toBe('ok');
    expect(why(() => checkRecordOfUpload(manifest, r, { ...upload, parts: parts('7') }))).toMatch(
      /RECORD_INVALID: .*does not list the hashes of the parts uploaded/,
    );
    expect(why(() => checkRecordOfUpload(manifest, r, { ...upload, partner: key(1) }))).toMatch(/names partner .*, the upload is/);
    expect(why(() => checkRecordOfUpload(manifest, r, { ...upload, attempt: 2 }))).toMatch(/is for round 3 attempt 1, the upload for round 3 attempt 2/);
    expect(why(() => signSubmissionRecord({ ...r, partner: key(1) }, signerFromSecretKey(ids[0].signSecretKey)))).toMatch(/RECORD_SIGNER/);
  });
});
