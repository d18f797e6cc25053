import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openJobKey, sealJobKey } from '../src/crypto/key-ceremony.ts';
import type { Identity } from '../src/crypto/identity.ts';
import { FedmarkError } from '../src/errors.ts';
import { signManifest, signedManifestSchema, verifySignedManifest, type JobManifest, type SignedManifest } from '../src/federation/manifest.ts';
import { usesJobKey, type SecureSumScheme } from '../src/federation/secure-sum.ts';
import { canonicalBytes } from '../src/privacy/ledger/canonical.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';
import { generateJobKey } from './register.ts';

/**
 * What the owner keeps in its out dir so that a restarted `fedmark job run` resumes the job it
 * registered instead of registering another (issue 19 item 4): the signed manifest — the
 * coordinator knows the job by exactly that signature — and the job key, sealed to the owner's own
 * box key and bound to the job id (the same sealing partners get), which the job ledger's genesis
 * entry commits to. Both are written (0600, atomically) before the job is registered, so no
 * registration exists whose manifest or key the owner could lose.
 */
export const SIGNED_MANIFEST_FILE = 'manifest.signed.json';
export const SEALED_KEY_FILE = 'job-key.sealed';

/** The manifest's fields that define the job: everything but its creation time. */
function defining(m: JobManifest): Record<string, unknown> {
  const { createdAt: _createdAt, ...rest } = m;
  return rest;
}

const sameBytes = (a: unknown, b: unknown) => Buffer.from(canonicalBytes(a)).equals(Buffer.from(canonicalBytes(b)));

/**
 * The signed manifest of the job in `out`: the persisted one when `out` already holds this job (a
 * restart), else `fresh`, signed and persisted (with manifest.json, the copy officers review).
 * A persisted manifest of another job, or of this job with other options, is refused by name.
 */
export function resolveSignedManifest(out: string, fresh: JobManifest, owner: Identity): { signed: SignedManifest; resumed: boolean } {
  mkdirSync(out, { recursive: true });
  const file = join(out, SIGNED_MANIFEST_FILE);
  if (!existsSync(file)) {
    const signed = signManifest(fresh, owner);
    writeFileAtomic(file, JSON.stringify(signed, null, 2));
    writeFileAtomic(join(out, 'manifest.json'), JSON.stringify(fresh, null, 2), { mode: 0o644 });
    return { signed, resumed: false };
  }
  const parsed = signedManifestSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new FedmarkError('JOB_STATE', `${file} is not a signed job manifest: move it away or use another --out`);
  const stored = verifySignedManifest(parsed.data);
  if (stored.owner.keyId !== fresh.owner.keyId) {
    throw new FedmarkError('JOB_STATE', `${file} holds a job of another owner (${stored.owner.name}, ${stored.owner.keyId}): use another --out`);
  }
  if (stored.jobId !== fresh.jobId) {
    throw new FedmarkError(
      'JOB_STATE',
      `--out ${out} holds job "${stored.jobId}", not "${fresh.jobId}": use another --out for a new job, or --job ${stored.jobId} to resume that one`,
    );
  }
  const a = defining(stored);
  const b = defining(fresh);
  const differ = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !sameBytes(a[k] ?? null, b[k] ?? null)).sort();
  if (differ.length > 0) {
    throw new FedmarkError(
      'JOB_STATE',
      `job "${fresh.jobId}" in ${out} was created with other options (differs in: ${differ.join(', ')}): rerun with the options it was created with (see ${join(out, 'manifest.json')}), or use another --job and --out`,
    );
  }
  return { signed: { manifest: stored, signature: parsed.data.signature }, resumed: true };
}

/**
 * The job key persisted in `dir` (sealed to the owner itself), or a new one, persisted before it is
 * returned. null for plaintext aggregation (there is no key).
 */
export function loadOrCreateJobKey(dir: string, manifest: JobManifest, owner: Identity, scheme: SecureSumScheme): Uint8Array | null {
  const file = join(dir, SEALED_KEY_FILE);
  if (!usesJobKey(scheme.scheme)) return null;
  if (existsSync(file)) {
    try {
      return openJobKey(manifest.jobId, new Uint8Array(readFileSync(file)), owner.boxPublicKey, owner);
    } catch (err) {
      throw new FedmarkError('JOB_STATE', `${file}: ${(err as Error).message} — it is not this owner's key of job ${manifest.jobId}`);
    }
  }
  const secretKey = generateJobKey(scheme)!;
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(file, sealJobKey(manifest.jobId, secretKey, owner.boxPublicKey, owner));
  return secretKey;
}
