/**
 * The envelope of every point-to-point message of a vertical job (SecureBoost and scoring): a JSON
 * header signed by the sender (Ed25519, over its RFC 8785 canonical form) and a body sealed to the
 * recipient (X25519 + AES-256-GCM STREAM, ./psi/seal-stream.ts). The header names the job, the spec
 * it was computed under, the relay round, the message kind, sender and recipient, and the byte length
 * of every named section of the body, so a relaying coordinator can check the addressing but not read
 * a byte of the body, and a recipient refuses a message moved to another round, kind or recipient.
 *
 * Frame: "FMVT1" ‖ u32 header length ‖ header JSON ‖ sealed body.
 */
import { z } from 'zod';
import { signBytes, verifyBytes, type Identity, type PublicIdentity } from '../crypto/identity.ts';
import { FedmarkError } from '../errors.ts';
import { canonicalJson } from '../privacy/ledger/canonical.ts';
import { sha256Hex } from '../util/hash.ts';
import { openStream, sealStream } from './psi/seal-stream.ts';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const keyId = z.string().regex(/^[0-9a-f]{32}$/);
const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);

export const envelopeHeaderSchema = z.strictObject({
  v: z.literal(1),
  protocol: z.literal('fedmark-vertical-1'),
  jobId: z.string().min(1).max(128),
  /** Hash of the job's workload parameters: a party running other parameters is refused. */
  specHash: hex64,
  round: z.number().int().positive(),
  kind: z.string().regex(/^[a-z][a-z-]{0,31}$/),
  from: keyId,
  to: keyId,
  sections: z.array(z.strictObject({ name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/), bytes: z.number().int().nonnegative() })).max(64),
  seal: z.strictObject({
    ephemeralPublicKey: b64,
    chunkBytes: z.number().int().positive(),
    chunks: z.number().int().positive(),
    plainBytes: z.number().int().nonnegative(),
  }),
  bodyHash: hex64,
  sig: b64,
});
export type EnvelopeHeader = z.infer<typeof envelopeHeaderSchema>;

export interface Addressing {
  jobId: string;
  specHash: string;
  round: number;
  kind: string;
  from: string;
  to: string;
}

const MAGIC = Buffer.from('FMVT1');
const MAX_HEADER_BYTES = 64 * 1024;
const CHUNK_BYTES = 1 << 20;

function signedBytes(h: Omit<EnvelopeHeader, 'sig'> | EnvelopeHeader): Uint8Array {
  const { sig: _sig, ...rest } = h as EnvelopeHeader;
  return new TextEncoder().encode(`FEDMARK-VERTICAL-MESSAGE-1\n${canonicalJson(rest)}`);
}

/** What the sealed body is bound to: every header field fixed before sealing. */
function sealContext(h: Addressing & { sections: EnvelopeHeader['sections'] }): string {
  const { jobId, specHash, round, kind, from, to, sections } = h;
  return canonicalJson({ protocol: 'fedmark-vertical-1', jobId, specHash, round, kind, from, to, sections });
}

/** Seals named sections to the recipient and signs the header: the bytes a sender relays. */
export function sealMessage(a: Addressing, sections: { name: string; bytes: Uint8Array }[], sender: Identity, recipient: PublicIdentity): Uint8Array {
  const layout = sections.map((s) => ({ name: s.name, bytes: s.bytes.length }));
  const plain = new Uint8Array(layout.reduce((acc, s) => acc + s.bytes, 0));
  let at = 0;
  for (const s of sections) {
    plain.set(s.bytes, at);
    at += s.bytes.length;
  }
  const { params, sealed } = sealStream(
    plain,
    new Uint8Array(Buffer.from(recipient.boxPublicKey, 'base64')),
    sealContext({ ...a, sections: layout }),
    CHUNK_BYTES,
  );
  plain.fill(0);
  const draft = {
    v: 1 as const,
    protocol: 'fedmark-vertical-1' as const,
    ...a,
    sections: layout,
    seal: {
      ephemeralPublicKey: Buffer.from(params.ephemeralPublicKey).toString('base64'),
      chunkBytes: params.chunkBytes,
      chunks: params.chunks,
      plainBytes: params.plainBytes,
    },
    bodyHash: sha256Hex(sealed),
  };
  const header: EnvelopeHeader = { ...draft, sig: signBytes(signedBytes(draft), sender) };
  const hbytes = Buffer.from(JSON.stringify(header), 'utf8');
  const out = new Uint8Array(MAGIC.length + 4 + hbytes.length + sealed.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(MAGIC.length, hbytes.length, false);
  out.set(hbytes, MAGIC.length + 4);
  out.set(sealed, MAGIC.length + 4 + hbytes.length);
  return out;
}

/** Parses a frame's header and checks it is signed by `from` (what a relay can check without opening anything). */
export function readEnvelope(frame: Uint8Array, keyOf: (keyId: string) => PublicIdentity | undefined): { header: EnvelopeHeader; body: Uint8Array } {
  const bad = (m: string) => new FedmarkError('VERTICAL_BAD_MESSAGE', m);
  if (!(frame instanceof Uint8Array) || frame.length < MAGIC.length + 4 || !Buffer.from(frame.subarray(0, MAGIC.length)).equals(MAGIC))
    throw bad('not a vertical message frame (bad magic)');
  const len = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(MAGIC.length, false);
  if (len > MAX_HEADER_BYTES || MAGIC.length + 4 + len > frame.length) throw bad(`message header length ${len} does not fit the ${frame.length}-byte frame`);
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(frame.subarray(MAGIC.length + 4, MAGIC.length + 4 + len)).toString('utf8'));
  } catch (err) {
    throw bad(`message header is not JSON: ${(err as Error).message}`);
  }
  const parsed = envelopeHeaderSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw bad(`message header: ${i?.path.join('.') || '(root)'}: ${i?.message}`);
  }
  const header = parsed.data;
  const signer = keyOf(header.from);
  if (!signer) throw new FedmarkError('VERTICAL_UNKNOWN_SENDER', `${header.kind} message from unknown key ${header.from}`);
  if (!verifyBytes(signedBytes(header), header.sig, signer.signPublicKey))
    throw new FedmarkError('VERTICAL_BAD_SIGNATURE', `${header.kind} message from ${signer.name}: the signature does not verify`);
  const body = frame.subarray(MAGIC.length + 4 + len);
  if (sha256Hex(body) !== header.bodyHash)
    throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${header.kind} message from ${signer.name}: the body does not match its signed hash`);
  if (header.seal.plainBytes !== header.sections.reduce((a, s) => a + s.bytes, 0))
    throw bad(`${header.kind} message from ${signer.name}: the sections do not add up to the sealed length`);
  return { header, body };
}

/**
 * Opens a message addressed to `me`: the header must say exactly what the recipient expects at this
 * point of the protocol (job, spec, round, kind, sender), else it is refused — a relay that reorders,
 * replays or redirects messages is caught here.
 */
export function openMessage(
  frame: Uint8Array,
  me: Identity & { keyId: string },
  expected: Addressing,
  keyOf: (keyId: string) => PublicIdentity | undefined,
): Map<string, Uint8Array> {
  const { header, body } = readEnvelope(frame, keyOf);
  const got: Addressing = { jobId: header.jobId, specHash: header.specHash, round: header.round, kind: header.kind, from: header.from, to: header.to };
  const wrong = (Object.keys(expected) as (keyof Addressing)[]).filter((k) => got[k] !== expected[k]);
  if (wrong.length) {
    throw new FedmarkError(
      'VERTICAL_UNEXPECTED_MESSAGE',
      `expected ${expected.kind} of round ${expected.round} from ${keyOf(expected.from)?.name ?? expected.from}, got a message with ${wrong.map((k) => `${k} ${String(got[k])}`).join(', ')}`,
    );
  }
  if (header.to !== me.keyId) throw new FedmarkError('VERTICAL_UNEXPECTED_MESSAGE', `message addressed to ${header.to}, not to ${me.keyId}`);
  let plain: Uint8Array;
  try {
    plain = openStream(
      body,
      { ...header.seal, ephemeralPublicKey: new Uint8Array(Buffer.from(header.seal.ephemeralPublicKey, 'base64')) },
      me.boxSecretKey,
      me.boxPublicKey,
      sealContext({ ...got, sections: header.sections }),
    );
  } catch (err) {
    if (err instanceof FedmarkError) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${header.kind} message: ${err.message}`);
    throw err;
  }
  const out = new Map<string, Uint8Array>();
  let at = 0;
  for (const s of header.sections) {
    if (out.has(s.name)) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${header.kind} message: section "${s.name}" appears twice`);
    out.set(s.name, plain.subarray(at, at + s.bytes));
    at += s.bytes;
  }
  return out;
}
