/**
 * Data-subject rights: "which jobs and models used this customer's record, and with what ε?"
 * answered from a partner's local ledger without the customer id ever leaving the partner.
 *
 * Design: for every job the partner writes a sidecar file `<sidecarDir>/<jobId>.ids` listing the
 * salted hashes of the customer ids whose rows the job used — HMAC-SHA-256 keyed by a partner-local
 * secret salt, truncated to 128 bits (32 hex chars), sorted, de-duplicated, one per line
 * (33 bytes/record: 45k ids ≈ 1.5 MB). The ledger's `consent.usage` entry records the sidecar's
 * SHA-256, record count and name, so the signed, hash-chained ledger pins the sidecar's content: a
 * sidecar edited afterwards is reported, not trusted. Lookup is a binary search over fixed-width
 * records (O(log n)). The salt keeps the hashes useless to anyone without it (no dictionary attack
 * on customer numbers); 128 bits keep accidental collisions negligible (≈ n²/2¹²⁹).
 * A Merkle root instead of a flat-file hash would let the partner prove one id's inclusion to a
 * third party without revealing the others; not needed while the sidecar stays at the partner.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';
import { sha256Hex } from '../../util/hash.ts';
import { parsePayload, type LedgerEntry, type PayloadOf } from './entries.ts';
import { writeFileAtomic } from '../../util/atomic-file.ts';
import { readLedger, type ReadLedgerResult } from './reader.ts';
import { verifyLedger } from './verify.ts';
import type { EpsilonOf } from './audit.ts';

export const SIDECAR_SCHEME = 'hmac-sha256-128' as const;
const RECORD_HEX = 32;
const RECORD_BYTES = RECORD_HEX + 1;

/** Salted hash of a customer id: HMAC-SHA-256(salt, id) truncated to 128 bits, hex. */
export function hashCustomerId(customerId: string, salt: Uint8Array | string): string {
  if (typeof salt === 'string' ? salt.length === 0 : salt.byteLength === 0) {
    throw new FedmarkError('SUBJECT_SALT_EMPTY', 'the customer-id salt must be a non-empty partner secret');
  }
  return createHmac('sha256', salt).update(customerId, 'utf8').digest('hex').slice(0, RECORD_HEX);
}

export function sidecarFileName(jobId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(jobId)) {
    throw new FedmarkError('SUBJECT_BAD_JOB_ID', `job id ${JSON.stringify(jobId)} cannot name a sidecar file`);
  }
  return `${jobId}.ids`;
}

export interface SidecarInfo {
  file: string;
  sha256: string;
  count: number;
  scheme: typeof SIDECAR_SCHEME;
}

/**
 * Writes the job's sidecar atomically (temp, fsync, rename) and returns what the `consent.usage`
 * entry must record as `sidecar`.
 */
export function writeIdSidecar(sidecarDir: string, jobId: string, customerIds: Iterable<string>, salt: Uint8Array | string): SidecarInfo {
  const file = sidecarFileName(jobId);
  const hashes = new Set<string>();
  for (const id of customerIds) hashes.add(hashCustomerId(id, salt));
  const sorted = [...hashes].sort();
  const body = Buffer.from(sorted.map((h) => h + '\n').join(''), 'ascii');
  fs.mkdirSync(sidecarDir, { recursive: true });
  writeFileAtomic(path.join(sidecarDir, file), body);
  return { file, sha256: sha256Hex(body), count: sorted.length, scheme: SIDECAR_SCHEME };
}

/** Binary search for `idHash` in a sidecar's bytes. */
export function sidecarHas(bytes: Uint8Array, idHash: string): boolean {
  const needle = Buffer.from(idHash, 'ascii');
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let lo = 0;
  let hi = Math.floor(buf.length / RECORD_BYTES) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    // sign(record − needle)
    const c = buf.compare(needle, 0, RECORD_HEX, mid * RECORD_BYTES, mid * RECORD_BYTES + RECORD_HEX);
    if (c === 0) return true;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

export interface SubjectUse {
  jobId: string;
  /** Final model hash the partner recorded (or the last round's global model); null if none yet. */
  modelHash: string | null;
  /** The partner's cumulative ε for the job (max of recorded and, if given, recomputed); +∞ (JSON: null) for a job without DP. */
  epsilon: number;
  /** False when the record took part in rounds without differential privacy: nothing bounds what they reveal. */
  private: boolean;
  delta: number | null;
  rounds: number;
  /** seq of the consent.usage entry that pins the sidecar. */
  consentSeq: number;
  /** False if the sidecar no longer matches the hash in the ledger. */
  sidecarVerified: boolean;
}

/** A scoring run (batch file or service window) whose sidecar lists the customer. */
export interface SubjectScoring {
  seq: number;
  ts: string;
  runId: string;
  mode: 'batch' | 'serve';
  modelHash: string;
  modelJobId: string | null;
  purpose: string;
  startedAt: string;
  finishedAt: string;
  sidecarVerified: boolean;
}

export interface SubjectStatement {
  customerIdHash: string;
  partner: string | null;
  uses: SubjectUse[];
  /** Which models scored this customer, when, and for what purpose. */
  scorings: SubjectScoring[];
  /** The consent withdrawal that lists this customer, if any. */
  consentWithdrawn: { seq: number; ts: string; effectiveFrom: string } | null;
  problems: { seq?: number; code: string; message: string }[];
}

/** Answers a data-subject request from a partner's local ledger and its sidecars. */
export function subjectStatement(
  localLedger: string | LedgerEntry[] | ReadLedgerResult,
  sidecarDir: string,
  customerId: string,
  salt: Uint8Array | string,
  opts: { epsilonOf?: EpsilonOf } = {},
): SubjectStatement {
  const read = typeof localLedger === 'string' ? readLedger(localLedger) : localLedger;
  const v = verifyLedger(read, { name: typeof localLedger === 'string' ? localLedger : undefined });
  const customerIdHash = hashCustomerId(customerId, salt);
  const problems: SubjectStatement['problems'] = v.findings
    .filter((f) => f.severity === 'error')
    .map((f) => ({ seq: f.seq, code: f.code, message: `ledger not intact, statement may be incomplete: ${f.message}` }));
  const entries = v.entries.filter((e) => v.validPayloadSeqs.has(e.seq));
  const payload = <T extends LedgerEntry['type']>(e: LedgerEntry, t: T): PayloadOf<T> => parsePayload(t, e.payload).data as PayloadOf<T>;

  const uses: SubjectUse[] = [];
  const scorings: SubjectScoring[] = [];
  let consentWithdrawn: SubjectStatement['consentWithdrawn'] = null;
  for (const e of entries) {
    if (e.type === 'consent.withdrawal' && !consentWithdrawn) {
      const p = payload(e, 'consent.withdrawal');
      if (p.idHashes.includes(customerIdHash)) consentWithdrawn = { seq: e.seq, ts: e.ts, effectiveFrom: p.effectiveFrom };
    }
    // Reads a sidecar pinned by entry e, reporting (never trusting) a missing or altered one.
    const lookup = (sidecar: SidecarInfo | undefined, what: string): { found: boolean; verified: boolean } | null => {
      if (!sidecar) {
        problems.push({ seq: e.seq, code: 'NO_SIDECAR', message: `${what}: no id sidecar recorded; cannot tell whether this customer was included` });
        return null;
      }
      const file = path.join(sidecarDir, sidecar.file);
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(file);
      } catch (err) {
        problems.push({ seq: e.seq, code: 'SIDECAR_MISSING', message: `${what}: cannot read ${file}: ${(err as Error).message}` });
        return null;
      }
      const verified = sha256Hex(bytes) === sidecar.sha256 && bytes.length === sidecar.count * RECORD_BYTES;
      if (!verified) {
        problems.push({ seq: e.seq, code: 'SIDECAR_TAMPERED', message: `${what}: ${file} does not match the hash/count recorded at seq ${e.seq}` });
      }
      return { found: sidecarHas(bytes, customerIdHash), verified };
    };
    if (e.type === 'model.scoring') {
      const p = payload(e, 'model.scoring');
      const hit = lookup(p.sidecar, `scoring run ${p.runId}`);
      if (hit?.found) {
        scorings.push({
          seq: e.seq,
          ts: e.ts,
          runId: p.runId,
          mode: p.mode,
          modelHash: p.modelHash,
          modelJobId: p.modelJobId ?? null,
          purpose: p.purpose,
          startedAt: p.startedAt,
          finishedAt: p.finishedAt,
          sidecarVerified: hit.verified,
        });
      }
      continue;
    }
    if (e.type !== 'consent.usage') continue;
    const c = payload(e, 'consent.usage');
    const hit = lookup(c.sidecar, `job ${c.jobId}`);
    if (!hit?.found) continue;
    const verified = hit.verified;

    const rounds = entries.filter((x) => x.type === 'partner.round' && payload(x, 'partner.round').jobId === c.jobId).map((x) => payload(x, 'partner.round'));
    // Rounds without DP: their release is not bounded by any ε.
    const plain = entries
      .filter((x) => x.type === 'partner.participation' && payload(x, 'partner.participation').jobId === c.jobId)
      .map((x) => payload(x, 'partner.participation'));
    let epsilon = rounds.reduce((m, r) => Math.max(m, r.epsilonCumulative), 0);
    // Version 3: every attempt's releases (failed attempts too) are the partner.release records.
    const released = entries
      .filter((x) => x.type === 'partner.release' && payload(x, 'partner.release').jobId === c.jobId)
      .map((x) => payload(x, 'partner.release'));
    epsilon = released.reduce((m, r) => Math.max(m, r.epsilonCumulative), epsilon);
    if (plain.length) {
      epsilon = Number.POSITIVE_INFINITY;
    } else if (opts.epsilonOf && released.length) {
      epsilon = Math.max(
        epsilon,
        opts.epsilonOf(
          released.flatMap((r) => r.releases.map((e) => ({ samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps }))),
          released[released.length - 1].delta,
        ),
      );
    } else if (opts.epsilonOf && rounds.length) {
      epsilon = Math.max(
        epsilon,
        opts.epsilonOf(
          rounds.map((r) => ({ samplingRate: r.samplingRate, noiseMultiplier: r.noiseMultiplier, steps: r.steps })),
          rounds[rounds.length - 1].delta,
        ),
      );
    }
    const final = entries.find((x) => x.type === 'model.final' && payload(x, 'model.final').jobId === c.jobId);
    const lastModel = [...rounds, ...plain].reverse().find((r) => r.globalModelHash)?.globalModelHash ?? null;
    uses.push({
      jobId: c.jobId,
      modelHash: final ? payload(final, 'model.final').modelHash : lastModel,
      epsilon,
      private: plain.length === 0,
      delta: plain.length ? null : (released.at(-1)?.delta ?? rounds.at(-1)?.delta ?? null),
      rounds: new Set([...rounds, ...plain].map((r) => r.round)).size,
      consentSeq: e.seq,
      sidecarVerified: verified,
    });
  }
  return { customerIdHash, partner: v.keyRing.kind === 'local' ? (v.keyRing.ownerKeyId ?? null) : null, uses, scorings, consentWithdrawn, problems };
}
