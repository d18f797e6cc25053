/**
 * The messages of a PSI job. A message is a zod-validated JSON header plus an opaque binary body
 * (a sealed stream, seal-stream.ts); transports move the two as they like (encodeFrame/decodeFrame
 * give one binary frame). Every header is signed by its sender over its RFC 8785 canonical form and
 * carries the job id, the spec hash, sender and recipient, so a message cannot be moved to another
 * job, slot or recipient, and the body is bound by its SHA-256.
 *
 * Flow for parties P0…P(m−1) in ring order and coordinator C:
 *   psi.list     Pi → P(i+1) (relayed by C): a list with `keysApplied` keys, sealed to the recipient
 *   psi.full     → C, from the last party to blind a list: the fully blinded list, its salted Merkle root
 *   psi.result   C → origin: positions of the origin's intersecting elements, their fully blinded
 *                values with a multiproof against the signed root, and that signed psi.full header
 *   psi.receipt  Pi → C: what Pi accepted (intersection size and order digest)
 *   psi.receipts C → Pi: every party's signed receipt, so each checks that all agree
 */
import { z } from 'zod';
import { signBytes, verifyBytes, type Identity, type PublicIdentity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import { canonicalJson } from '../../privacy/ledger/canonical.ts';
import { sha256Hex } from '../../util/hash.ts';
import { psiJobIdSchema } from './spec.ts';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
const keyId = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-character key id');
const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');
const count = z.number().int().nonnegative();

const base = {
  v: z.literal(1),
  jobId: psiJobIdSchema,
  specHash: hex64,
  from: keyId,
  to: keyId,
  sig: b64,
};

export const sealParamsSchema = z.strictObject({
  ephemeralPublicKey: b64,
  chunkBytes: z.number().int().positive(),
  chunks: z.number().int().positive(),
  plainBytes: count,
});

const listFields = {
  origin: keyId,
  keysApplied: z.number().int().positive(),
  count,
  /** SHA-256 of the packed plaintext list (count × 32 bytes). */
  listHash: hex64,
  seal: sealParamsSchema,
  bodyHash: hex64,
};

export const listHeaderSchema = z.strictObject({ ...base, kind: z.literal('psi.list'), ...listFields });
export const fullHeaderSchema = z.strictObject({
  ...base,
  kind: z.literal('psi.full'),
  ...listFields,
  /** Root of the salted Merkle tree over the fully blinded list (merkle.ts). */
  merkleRoot: hex64,
});
export const resultHeaderSchema = z.strictObject({
  ...base,
  kind: z.literal('psi.result'),
  intersectionSize: count,
  /** The signed psi.full header of the recipient's own list, as the coordinator received it. */
  full: fullHeaderSchema,
  seal: sealParamsSchema,
  bodyHash: hex64,
});
export const receiptHeaderSchema = z.strictObject({
  ...base,
  kind: z.literal('psi.receipt'),
  intersectionSize: count,
  /** SHA-256 over the sorted SHA-256 hashes of the intersection's fully blinded values. */
  orderDigest: hex64,
});
export const receiptsHeaderSchema = z.strictObject({
  ...base,
  kind: z.literal('psi.receipts'),
  receipts: z.array(receiptHeaderSchema).min(2),
});

export const psiHeaderSchema = z.discriminatedUnion('kind', [
  listHeaderSchema,
  fullHeaderSchema,
  resultHeaderSchema,
  receiptHeaderSchema,
  receiptsHeaderSchema,
]);

export type ListHeader = z.infer<typeof listHeaderSchema>;
export type FullHeader = z.infer<typeof fullHeaderSchema>;
export type ResultHeader = z.infer<typeof resultHeaderSchema>;
export type ReceiptHeader = z.infer<typeof receiptHeaderSchema>;
export type ReceiptsHeader = z.infer<typeof receiptsHeaderSchema>;
export type PsiHeader = z.infer<typeof psiHeaderSchema>;
export type PsiKind = PsiHeader['kind'];

export interface PsiMessage<H extends PsiHeader = PsiHeader> {
  header: H;
  body: Uint8Array;
}

type Unsigned<H> = H extends PsiHeader ? Omit<H, 'sig'> : never;

/** A short name for errors: "psi.list from bank (origin telco, 2 keys)". */
export function describe(header: PsiHeader, names: (keyId: string) => string): string {
  const from = names(header.from);
  if (header.kind === 'psi.list' || header.kind === 'psi.full') {
    return `${header.kind} from ${from} (origin ${names(header.origin)}, ${header.keysApplied} key${header.keysApplied === 1 ? '' : 's'} applied)`;
  }
  return `${header.kind} from ${from}`;
}

/** Validates an untrusted message's shape (not its signature: see verifyHeader). */
export function parsePsiMessage(input: unknown): PsiMessage {
  const m = input as { header?: unknown; body?: unknown } | null;
  if (!m || typeof m !== 'object') throw new FedmarkError('PSI_BAD_MESSAGE', 'a PSI message is an object { header, body }');
  const r = psiHeaderSchema.safeParse(m.header);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new FedmarkError('PSI_BAD_MESSAGE', `PSI message header: ${i?.path.join('.') || '(root)'}: ${i?.message}`);
  }
  if (!(m.body instanceof Uint8Array)) throw new FedmarkError('PSI_BAD_MESSAGE', 'PSI message body must be bytes');
  return { header: r.data, body: m.body };
}

function signedBytes(header: Unsigned<PsiHeader> | PsiHeader): Uint8Array {
  const { sig: _sig, ...rest } = header as PsiHeader;
  return new TextEncoder().encode(`FEDMARK-PSI-MESSAGE-1\n${canonicalJson(rest)}`);
}

export function signHeader<H extends PsiHeader>(header: Unsigned<H>, identity: Identity): H {
  return { ...header, sig: signBytes(signedBytes(header), identity) } as unknown as H;
}

export function headerVerifies(header: PsiHeader, signer: PublicIdentity): boolean {
  return header.from === signer.keyId && verifyBytes(signedBytes(header), header.sig, signer.signPublicKey);
}

/** The context a sealed body is bound to: every header field that exists before sealing. */
export function sealContext(header: Record<string, unknown>): string {
  const { sig: _s, seal: _seal, bodyHash: _b, ...rest } = header;
  return canonicalJson(rest);
}

export function bodyHash(body: Uint8Array): string {
  return sha256Hex(body);
}

const MAGIC = Buffer.from('FMPSI1');
const MAX_HEADER_BYTES = 1 << 20;

/** One binary frame: "FMPSI1" ‖ u32 header length ‖ header JSON ‖ body. */
export function encodeFrame(msg: PsiMessage): Uint8Array {
  const header = Buffer.from(JSON.stringify(msg.header), 'utf8');
  const out = new Uint8Array(MAGIC.length + 4 + header.length + msg.body.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(MAGIC.length, header.length, false);
  out.set(header, MAGIC.length + 4);
  out.set(msg.body, MAGIC.length + 4 + header.length);
  return out;
}

export function decodeFrame(frame: Uint8Array): PsiMessage {
  if (frame.length < MAGIC.length + 4 || !Buffer.from(frame.subarray(0, MAGIC.length)).equals(MAGIC)) {
    throw new FedmarkError('PSI_BAD_MESSAGE', 'not a PSI message frame (bad magic)');
  }
  const len = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(MAGIC.length, false);
  if (len > MAX_HEADER_BYTES || MAGIC.length + 4 + len > frame.length) {
    throw new FedmarkError('PSI_BAD_MESSAGE', `PSI frame header length ${len} does not fit the ${frame.length}-byte frame`);
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(frame.subarray(MAGIC.length + 4, MAGIC.length + 4 + len)).toString('utf8'));
  } catch (err) {
    throw new FedmarkError('PSI_BAD_MESSAGE', `PSI frame header is not JSON: ${(err as Error).message}`);
  }
  return parsePsiMessage({ header, body: frame.slice(MAGIC.length + 4 + len) });
}
