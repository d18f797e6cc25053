/**
 * The checks and sealing every PSI role applies to a message, in one place: right job and spec,
 * addressed to me, from the sender the protocol expects at this point, signature, body hash, and
 * opening the sealed body.
 */
import { type Identity, type PublicIdentity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import { sha256Hex } from '../../util/hash.ts';
import { bodyHash, describe, headerVerifies, parsePsiMessage, sealContext, signHeader, type PsiHeader, type PsiMessage } from './messages.ts';
import { openStream, sealStream } from './seal-stream.ts';
import type { PsiSpec } from './spec.ts';

export class JobView {
  readonly specHash: string;
  private readonly byKey = new Map<string, PublicIdentity>();

  constructor(
    readonly spec: PsiSpec,
    specHash: string,
  ) {
    this.specHash = specHash;
    for (const p of [...spec.parties, spec.coordinator]) this.byKey.set(p.keyId, p);
  }

  name = (keyId: string): string => this.byKey.get(keyId)?.name ?? `unknown key ${keyId}`;

  identity(keyId: string): PublicIdentity | undefined {
    return this.byKey.get(keyId);
  }

  describe(header: PsiHeader): string {
    return describe(header, this.name);
  }

  /** Parses and checks job, spec, recipient, expected sender, signature and body hash. */
  accept(input: unknown, me: string, expectedFrom?: (h: PsiHeader) => string | undefined): PsiMessage {
    const msg = parsePsiMessage(input);
    const h = msg.header;
    const what = this.describe(h);
    this.verifySigned(h, me, expectedFrom?.(h));
    if ('bodyHash' in h && bodyHash(msg.body) !== h.bodyHash) {
      throw new FedmarkError('PSI_BAD_BODY', `${what}: the body does not match the signed body hash`);
    } else if (!('bodyHash' in h) && msg.body.length !== 0) {
      throw new FedmarkError('PSI_BAD_BODY', `${what}: this kind of message has no body`);
    }
    return msg;
  }

  /** Checks a (possibly relayed) header: job, spec, recipient, expected sender and signature. */
  verifySigned(h: PsiHeader, to: string, expected?: string): void {
    const what = this.describe(h);
    if (h.jobId !== this.spec.jobId || h.specHash !== this.specHash) {
      throw new FedmarkError(
        'PSI_WRONG_JOB',
        `${what}: belongs to job ${h.jobId} with spec ${h.specHash.slice(0, 12)}…, not job ${this.spec.jobId} with spec ${this.specHash.slice(0, 12)}…`,
      );
    }
    if (h.to !== to) throw new FedmarkError('PSI_MISROUTED', `${what}: addressed to ${this.name(h.to)}, not to ${this.name(to)}`);
    const signer = this.identity(h.from);
    if (!signer) throw new FedmarkError('PSI_UNKNOWN_SENDER', `${what}: the sender's key is not part of this job`);
    if (expected !== undefined && expected !== h.from) {
      throw new FedmarkError('PSI_UNEXPECTED_SENDER', `${what}: the protocol expects this message from ${this.name(expected)}`);
    }
    if (!headerVerifies(h, signer)) throw new FedmarkError('PSI_BAD_SIGNATURE', `${what}: the signature does not verify`);
  }
}

type SealedHeader = Extract<PsiHeader, { seal: unknown }>;
type Draft<H> = H extends SealedHeader ? Omit<H, 'sig' | 'seal' | 'bodyHash'> : never;

/** Seals `plain` to the recipient named in the header, fills in seal + bodyHash, and signs. */
export function sealAndSign<H extends SealedHeader>(
  draft: Draft<H>,
  plain: Uint8Array,
  recipient: PublicIdentity,
  chunkBytes: number,
  sender: Identity,
): PsiMessage<H> {
  const { params, sealed } = sealStream(plain, new Uint8Array(Buffer.from(recipient.boxPublicKey, 'base64')), sealContext(draft), chunkBytes);
  const header = signHeader<H>(
    {
      ...draft,
      seal: {
        ephemeralPublicKey: Buffer.from(params.ephemeralPublicKey).toString('base64'),
        chunkBytes: params.chunkBytes,
        chunks: params.chunks,
        plainBytes: params.plainBytes,
      },
      bodyHash: bodyHash(sealed),
    } as unknown as Omit<H, 'sig'> as never,
    sender,
  );
  return { header, body: sealed };
}

/** Opens a sealed body addressed to `me` and checks its plaintext length. */
export function openBody(view: JobView, msg: PsiMessage, me: Identity, expectedBytes: number): Uint8Array {
  const h = msg.header as SealedHeader;
  const what = view.describe(h);
  if (h.seal.plainBytes !== expectedBytes) {
    throw new FedmarkError('PSI_BAD_BODY', `${what}: the sealed body holds ${h.seal.plainBytes} bytes, ${expectedBytes} expected`);
  }
  try {
    return openStream(
      msg.body,
      { ...h.seal, ephemeralPublicKey: new Uint8Array(Buffer.from(h.seal.ephemeralPublicKey, 'base64')) },
      me.boxSecretKey,
      me.boxPublicKey,
      sealContext(h),
    );
  } catch (err) {
    if (err instanceof FedmarkError) throw new FedmarkError(err.code, `${what}: ${err.message}`, err.details);
    throw err;
  }
}

export function listHash(list: Uint8Array): string {
  return sha256Hex(list);
}

/** Idempotent slots: the same message again gets the same answer; a different one is refused. */
export class Slots<T> {
  private readonly seen = new Map<string, { sig: string; out: T }>();

  get(slot: string, header: PsiHeader, what: string): T | undefined {
    const prior = this.seen.get(slot);
    if (!prior) return undefined;
    if (prior.sig !== header.sig) throw new FedmarkError('PSI_DUPLICATE_MESSAGE', `${what}: a different message for this slot was already processed`);
    return prior.out;
  }

  set(slot: string, header: PsiHeader, out: T): void {
    this.seen.set(slot, { sig: header.sig, out });
  }

  get size(): number {
    return this.seen.size;
  }
}
