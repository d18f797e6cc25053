import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UploadLog } from '../../partner/upload-log.ts';
import type { AttemptReleases } from '../../src/privacy/ledger/entries.ts';
import type { SubmissionRecord } from '../../src/federation/submission-record.ts';

const record: SubmissionRecord = {
  jobId: 'job-1',
  round: 1,
  attempt: 1,
  kind: 'train',
  partner: 'a'.repeat(32),
  baseModelHash: 'c'.repeat(64),
  parts: [{ name: 'update', sha256: 'b'.repeat(64) }],
  attestation: { keyId: 'a'.repeat(32), sig: 'AA==' },
};
const released: AttemptReleases = {
  partner: 'a'.repeat(32),
  attempt: 1,
  releases: [{ label: 'update', samplingRate: 0.02, noiseMultiplier: 1.2, steps: 50, sensitivity: 1 }],
  delta: 1e-5,
  epsilonSpent: 0.3,
  epsilonCumulative: 0.3,
  ciphertextHashes: ['b'.repeat(64)],
};

describe("the partner's persisted release store", () => {
  it('survives a restart: begun attempts, kept envelopes, what they released and the job releases (bit-exact)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-upload-log-'));
    const a = new UploadLog(dir, 'job-1');
    expect(a.latest()).toBeNull();
    a.begin(1, 0);
    a.begin(1, 1);
    const body = Uint8Array.from([1, 2, 3, 250]);
    const weight = Float64Array.from([0.1 + 0.2, -3]);
    a.built(1, 1, body, released, { weight }, record);
    a.markSent(1, 1);
    a.recording(1, 1);
    const b = new UploadLog(dir, 'job-1');
    expect(b.begun(1, 0) && b.begun(1, 1) && !b.begun(2, 0)).toBe(true);
    expect(b.latest()).toEqual({ round: 1, attempt: 1 });
    expect(b.envelope(1, 0)).toBeNull();
    expect(Array.from(b.envelope(1, 1)!)).toEqual([1, 2, 3, 250]);
    expect(b.released(1, 1)).toEqual(released);
    expect(b.record(1, 1)).toEqual(record);
    expect(b.wasSent(1, 1) && !b.wasSent(1, 0)).toBe(true);
    expect(b.recorded(1, 1) && !b.recorded(1, 0)).toBe(true);
    expect(Array.from(b.jobValues().weight)).toEqual(Array.from(weight));
    // Another job's store in the same directory is separate.
    expect(new UploadLog(dir, 'job-2').latest()).toBeNull();
  });

  it("drops a round's envelopes once its aggregate is applied, keeping what they released", () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-upload-log-'));
    const log = new UploadLog(dir, 'job-1');
    log.begin(1, 0);
    log.built(1, 0, Uint8Array.from([9]), released, {}, record);
    log.begin(2, 0);
    log.built(2, 0, Uint8Array.from([8]), null, {}, record);
    log.applied(1);
    expect(log.envelope(1, 0)).toBeNull();
    expect(log.envelope(2, 0)).not.toBeNull();
    expect(new UploadLog(dir, 'job-1').released(1, 0)).toEqual(released);
    expect(readdirSync(dir).filter((f) => f.endsWith('.envelope'))).toEqual(['job-1.2.0.envelope']);
  });

  it('refuses an index it cannot read, or one whose envelope file is gone, instead of starting afresh', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-upload-log-'));
    const log = new UploadLog(dir, 'job-1');
    log.begin(1, 0);
    log.built(1, 0, Uint8Array.from([7]), null, {}, record);
    rmSync(join(dir, 'job-1.1.0.envelope'));
    expect(() => new UploadLog(dir, 'job-1').envelope(1, 0)).toThrow(/RELEASE_LOG_CORRUPT|is missing/);
    writeFileSync(join(dir, 'job-1.releases.json'), '{"format":"fedmark-release-log"');
    expect(() => new UploadLog(dir, 'job-1')).toThrow(/is unreadable \(not valid JSON/);
    writeFileSync(join(dir, 'job-1.releases.json'), JSON.stringify({ format: 'fedmark-release-log', version: 1, jobId: 'job-1', begun: 'all' }));
    expect(() => new UploadLog(dir, 'job-1')).toThrow(/field "begun"/);
    expect(existsSync(join(dir, 'job-1.releases.json'))).toBe(true);
  });
});
