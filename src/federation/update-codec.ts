import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { PART_NAME } from './workload.ts';
import { submissionRecordSchema } from './submission-record.ts';

/**
 * An update travels as opaque bytes plus metadata: one binary envelope, signed as a whole by the
 * request signature (which covers the body hash). Layout:
 *   "FMUP" | u8 version | u32 BE meta length | meta JSON (UTF-8) | part bytes, in the order of meta.parts
 * Nothing in the metadata may depend on a partner's row count: the weight travels inside the payload.
 */

const MAGIC = [0x46, 0x4d, 0x55, 0x50]; // "FMUP"
/** 2: the DP report lists every labelled release of the attempt (1 carried one release's fields), and the meta carries the partner's signed submission record. */
const VERSION = 2;
const MAX_META_BYTES = 64 * 1024;
const MAX_PARTS = 64;

/** One labelled Gaussian release (privacy/dp-event.ts `LabelledDpEvent`). */
export const labelledReleaseSchema = z.object({
  label: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'release label: 1–64 chars of a-z, 0-9 and "-"'),
  samplingRate: z.number().gt(0).lte(1),
  noiseMultiplier: z.number().positive(),
  steps: z.number().int().nonnegative(),
  /** L2 sensitivity σ is relative to (DP-SGD: the clip norm C). */
  sensitivity: z.number().positive(),
});

export const dpReportSchema = z.object({
  /** Every release this attempt made, as charged (e.g. `weight` with a partner's first upload, `update`, `evaluation`). */
  releases: z.array(labelledReleaseSchema).min(1).max(64),
  delta: z.number().gt(0).lt(1),
  /** ε this attempt added to the job's total for this partner (after − before, by its own accountant). */
  epsilonSpent: z.number().nonnegative(),
  /** ε of this job for this partner after this round, computed by its own accountant. */
  epsilonAfterRound: z.number().nonnegative(),
});
export type DpReport = z.infer<typeof dpReportSchema>;

export const updateMetaSchema = z.object({
  jobId: z.string(),
  round: z.number().int().positive(),
  attempt: z.number().int().nonnegative(),
  /** The round's kind in its workload's plan (e.g. `train`, `evaluate`). */
  kind: z.string().regex(PART_NAME, 'round kind: 1–32 chars of a-z, 0-9 and "-"'),
  scheme: z.enum(['ckks', 'secagg-bfv', 'plain-insecure']),
  paramsId: z.string(),
  /** sha256 of the global model the partner started from: catches partners that fell out of step. */
  baseModelHash: z.string().regex(/^[0-9a-f]{64}$/),
  /** The parts in the order of the round's plan (src/federation/workload.ts), each an encrypted vector. */
  parts: z
    .array(
      z.object({
        name: z.string().regex(PART_NAME, 'part name: 1–32 chars of a-z, 0-9 and "-"'),
        bytes: z.number().int().positive(),
        length: z.number().int().positive(),
      }),
    )
    .min(1)
    .max(MAX_PARTS),
  dp: dpReportSchema.nullable(),
  /** The partner's signed record of this upload (job, round, attempt, kind, part hashes): what key holders check a sum's contents against. */
  record: submissionRecordSchema,
});
export type UpdateMeta = z.infer<typeof updateMetaSchema>;

export interface DecodedUpdate {
  meta: UpdateMeta;
  parts: Record<string, Uint8Array>;
}

export function encodeUpdate(meta: Omit<UpdateMeta, 'parts'>, parts: { name: string; length: number; bytes: Uint8Array }[]): Uint8Array {
  const fullMeta: UpdateMeta = { ...meta, parts: parts.map((p) => ({ name: p.name, bytes: p.bytes.length, length: p.length })) };
  const metaBytes = new TextEncoder().encode(JSON.stringify(fullMeta));
  const total = 9 + metaBytes.length + parts.reduce((s, p) => s + p.bytes.length, 0);
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  new DataView(out.buffer).setUint32(5, metaBytes.length, false);
  out.set(metaBytes, 9);
  let offset = 9 + metaBytes.length;
  for (const p of parts) {
    out.set(p.bytes, offset);
    offset += p.bytes.length;
  }
  return out;
}

/** The largest envelope that can carry parts of these sizes (header, the largest metadata allowed, the parts). */
export function maxEnvelopeBytes(partBytes: readonly number[]): number {
  return 9 + MAX_META_BYTES + partBytes.reduce((a, b) => a + b, 0);
}

function malformed(message: string): FedmarkError {
  return new FedmarkError('UPDATE_MALFORMED', `update envelope: ${message}`);
}

export function decodeUpdate(body: Uint8Array): DecodedUpdate {
  if (body.length < 9) throw malformed(`too short (${body.length} bytes)`);
  for (let i = 0; i < 4; i++) if (body[i] !== MAGIC[i]) throw malformed('bad magic (expected "FMUP")');
  if (body[4] !== VERSION) throw malformed(`unsupported version ${body[4]} (expected ${VERSION})`);
  const metaLength = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(5, false);
  if (metaLength > MAX_META_BYTES || 9 + metaLength > body.length) throw malformed(`metadata length ${metaLength} exceeds the body`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(9, 9 + metaLength)));
  } catch {
    throw malformed('metadata is not valid UTF-8 JSON');
  }
  const parsed = updateMetaSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(`metadata field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const meta = parsed.data;
  const parts: Record<string, Uint8Array> = {};
  let offset = 9 + metaLength;
  for (const p of meta.parts) {
    if (parts[p.name]) throw malformed(`part "${p.name}" appears twice`);
    if (offset + p.bytes > body.length) throw malformed(`part "${p.name}" is truncated (${body.length - offset} of ${p.bytes} bytes)`);
    // A copy, not a view: parts outlive the request body and start on an aligned buffer.
    // (Uint8Array.prototype.slice: on a Node Buffer, .slice() would return a view.)
    parts[p.name] = Uint8Array.prototype.slice.call(body, offset, offset + p.bytes);
    offset += p.bytes;
  }
  if (offset !== body.length) throw malformed(`${body.length - offset} trailing bytes after the last part`);
  return { meta, parts };
}
