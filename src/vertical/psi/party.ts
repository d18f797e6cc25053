/**
 * One party of a ring ECDH-PSI job, as a message-driven state machine with no I/O: `start()` and
 * `receive(message)` return the messages to send; the elliptic-curve work goes to the injected
 * engine. Phases: new → sent (own list out; foreign lists are blinded whenever they arrive) →
 * checked (result verified, receipt sent) → done (every party's receipt agrees).
 *
 * What the party sends: its own ids only as x([k]·H(id)) under a scalar k drawn for this job, padded
 * with random points to the cap and shuffled; foreign lists re-blinded in their order.
 * What it learns: which of its own ids are in the intersection, and the common order.
 */
import { hash, randomBytes } from 'node:crypto';
import { keyId as keyIdOf, type Identity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import { sha256Hex } from '../../util/hash.ts';
import { freshScalar, type PsiEngine } from './engine.ts';
import { JobView, Slots, listHash, openBody, sealAndSign } from './envelope.ts';
import { ELEMENT_BYTES } from './group.ts';
import { psiLedgerEntry, type PsiLedgerEntry } from './ledger.ts';
import { leafHash, saltsFromSeed, buildTree, rootOf, verifyMultiproof, SALT_BYTES } from './merkle.ts';
import { signHeader, type FullHeader, type ListHeader, type PsiMessage, type ReceiptHeader, type ResultHeader } from './messages.ts';
import { buildElements, rowsOf, type PsiElements } from './normalise.ts';
import { randomPermutation } from './shuffle.ts';
import { hashDomain, keysAppliedOnArrival, listLength, listLengthProblem, partyIndex, ringNext, ringPrevious, specHash, type PsiSpec } from './spec.ts';

export interface PsiPartyOptions {
  spec: PsiSpec;
  identity: Identity;
  /** Raw id cells, one per row (normalised here by the spec's rules), or elements built already. */
  ids: readonly string[] | PsiElements;
  engine: PsiEngine;
}

export interface PsiOutcome {
  jobId: string;
  party: string;
  intersectionSize: number;
  /** Element indices (into elements.values) of the intersection, in the order all parties share. */
  order: Int32Array;
  orderDigest: string;
  elements: PsiElements;
}

/** Aligned rows: entry i lists every row of this party's input that carries the i-th common id. */
export function alignedRows(outcome: PsiOutcome): number[][] {
  return Array.from(outcome.order, (e) => rowsOf(outcome.elements, e));
}

type Phase = 'new' | 'sent' | 'checked' | 'done';

const compareBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b);

export class PsiParty {
  readonly keyId: string;
  readonly index: number;
  private readonly view: JobView;
  private readonly scalar = freshScalar();
  private readonly elements: PsiElements;
  private phase: Phase = 'new';
  /** Position in the sent list → element index, or −1 for a padding dummy. */
  private perm: Int32Array = new Int32Array(0);
  /** Per origin: the answer to its list, stored before the work starts so a concurrent replay waits for it. */
  private readonly hops = new Slots<Promise<PsiMessage[]>>();
  private starting = false;
  private receipt?: ReceiptHeader;
  private resultSig?: string;
  private result?: Omit<PsiOutcome, 'elements' | 'jobId' | 'party'>;
  private readonly ledger: PsiLedgerEntry[] = [];

  constructor(private readonly options: PsiPartyOptions) {
    const { spec, identity } = options;
    this.keyId = keyIdOf(identity.signPublicKey);
    this.index = partyIndex(spec, this.keyId);
    if (this.index < 0) throw new FedmarkError('PSI_NOT_A_PARTY', `${identity.name} (${this.keyId}) is not a party of PSI job ${spec.jobId}`);
    this.view = new JobView(spec, specHash(spec));
    this.elements = Array.isArray(options.ids) ? buildElements(options.ids as string[], spec.id.rules, spec.id.invalid) : (options.ids as PsiElements);
    if (this.elements.values.length > spec.maxSetSize) {
      throw new FedmarkError(
        'PSI_SET_TOO_LARGE',
        `${identity.name} has ${this.elements.values.length} distinct ids; PSI job ${spec.jobId} caps every set at ${spec.maxSetSize}`,
      );
    }
  }

  get spec(): PsiSpec {
    return this.options.spec;
  }

  get state(): Phase {
    return this.phase;
  }

  /** Ledger entries this party has produced so far (psi.party.*), in order. */
  ledgerEntries(): readonly PsiLedgerEntry[] {
    return this.ledger;
  }

  /** Hashes, blinds, pads and shuffles the own set and sends it to the ring successor. */
  async start(): Promise<PsiMessage[]> {
    if (this.phase !== 'new' || this.starting) throw new FedmarkError('PSI_BAD_PHASE', `${this.options.identity.name} has already sent its list`);
    this.starting = true;
    const { spec, engine } = this.options;
    const distinct = this.elements.values.length;
    const length = listLength(spec, distinct);
    const blinded = await engine.hashAndBlind(this.elements.values, spec.suite, hashDomain(spec), this.scalar);
    const dummies = await engine.randomElements(length - distinct);
    this.perm = randomPermutation(length);
    const list = new Uint8Array(length * ELEMENT_BYTES);
    for (let pos = 0; pos < length; pos++) {
      const item = this.perm[pos];
      const src = item < distinct ? blinded : dummies;
      const at = item < distinct ? item : item - distinct;
      list.set(src.subarray(at * ELEMENT_BYTES, (at + 1) * ELEMENT_BYTES), pos * ELEMENT_BYTES);
      if (item >= distinct) this.perm[pos] = -1;
    }
    const next = ringNext(spec, this.index);
    const msg = this.listMessage(this.keyId, 1, list, next.keyId);
    this.ledger.push(
      psiLedgerEntry('psi.party.list', {
        jobId: spec.jobId,
        party: this.keyId,
        specHash: this.view.specHash,
        rowsRead: this.elements.rowsRead,
        invalidRows: this.elements.invalidRows,
        duplicateRows: this.elements.duplicateRows,
        distinctIds: distinct,
        releasedCount: length,
        dummies: length - distinct,
        listHash: msg.header.listHash,
        sentTo: next.keyId,
      }),
    );
    this.phase = 'sent';
    return [msg];
  }

  private listMessage(origin: string, keysApplied: number, list: Uint8Array, to: string): PsiMessage<ListHeader> {
    const { spec, identity } = this.options;
    const draft = {
      v: 1 as const,
      kind: 'psi.list' as const,
      jobId: spec.jobId,
      specHash: this.view.specHash,
      from: this.keyId,
      to,
      origin,
      keysApplied,
      count: list.length / ELEMENT_BYTES,
      listHash: listHash(list),
    };
    return sealAndSign<ListHeader>(draft, list, this.view.identity(to)!, spec.chunkBytes, identity);
  }

  async receive(input: unknown): Promise<PsiMessage[]> {
    const msg = this.view.accept(input, this.keyId, (h) => (h.kind === 'psi.list' ? ringPrevious(this.spec, this.index).keyId : this.spec.coordinator.keyId));
    switch (msg.header.kind) {
      case 'psi.list':
        return this.blindForeign(msg as PsiMessage<ListHeader>);
      case 'psi.result':
        return this.checkResult(msg as PsiMessage<ResultHeader>);
      case 'psi.receipts':
        this.checkReceipts(msg.header.receipts);
        return [];
      default:
        throw new FedmarkError('PSI_UNEXPECTED_MESSAGE', `${this.view.describe(msg.header)}: a party never receives this kind of message`);
    }
  }

  private blindForeign(msg: PsiMessage<ListHeader>): Promise<PsiMessage[]> {
    const { spec } = this.options;
    const h = msg.header;
    const what = this.view.describe(h);
    const origin = partyIndex(spec, h.origin);
    if (origin < 0 || origin === this.index) throw new FedmarkError('PSI_BAD_ORIGIN', `${what}: the origin must be another party of the job`);
    const cached = this.hops.get(h.origin, h, what);
    if (cached) return cached;
    const work = this.blindChecked(msg, origin, what);
    this.hops.set(h.origin, h, work);
    return work;
  }

  private async blindChecked(msg: PsiMessage<ListHeader>, origin: number, what: string): Promise<PsiMessage[]> {
    const { spec, engine, identity } = this.options;
    const h = msg.header;
    const expectedKeys = keysAppliedOnArrival(spec, origin, this.index);
    if (h.keysApplied !== expectedKeys) {
      throw new FedmarkError('PSI_BAD_HOP', `${what}: this list must reach ${identity.name} with ${expectedKeys} key(s) applied`);
    }
    const lengthProblem = listLengthProblem(spec, h.count);
    if (lengthProblem) throw new FedmarkError('PSI_SET_TOO_LARGE', `${what}: ${lengthProblem}`);
    const list = openBody(this.view, msg, identity, h.count * ELEMENT_BYTES);
    if (listHash(list) !== h.listHash) throw new FedmarkError('PSI_BAD_BODY', `${what}: the list does not match its signed hash`);
    let out: Uint8Array;
    try {
      out = await engine.blind(list, this.scalar);
    } catch (err) {
      if (err instanceof FedmarkError && err.code === 'PSI_BAD_POINT') {
        throw new FedmarkError('PSI_BAD_POINT', `${what}: ${err.message}`, { ...err.details, message: h.kind, from: h.from, origin: h.origin });
      }
      throw err;
    }
    const keys = h.keysApplied + 1;
    const reply = keys === spec.parties.length ? this.fullMessage(h.origin, out) : this.listMessage(h.origin, keys, out, ringNext(spec, this.index).keyId);
    this.ledger.push(
      psiLedgerEntry('psi.party.hop', {
        jobId: spec.jobId,
        party: this.keyId,
        origin: h.origin,
        receivedFrom: h.from,
        keysApplied: keys,
        count: h.count,
        inListHash: h.listHash,
        outListHash: reply.header.listHash,
        sentTo: reply.header.to,
      }),
    );
    return [reply];
  }

  /** The fully blinded list goes to the coordinator with a salted Merkle root over it. */
  private fullMessage(origin: string, list: Uint8Array): PsiMessage<FullHeader> {
    const { spec, identity } = this.options;
    const seed = randomBytes(32);
    const n = list.length / ELEMENT_BYTES;
    const root = rootOf(buildTree(list, saltsFromSeed(seed, n)));
    const plain = new Uint8Array(list.length + seed.length);
    plain.set(list, 0);
    plain.set(seed, list.length);
    const draft = {
      v: 1 as const,
      kind: 'psi.full' as const,
      jobId: spec.jobId,
      specHash: this.view.specHash,
      from: this.keyId,
      to: spec.coordinator.keyId,
      origin,
      keysApplied: spec.parties.length,
      count: n,
      listHash: listHash(list),
      merkleRoot: Buffer.from(root).toString('hex'),
    };
    return sealAndSign<FullHeader>(draft, plain, spec.coordinator, spec.chunkBytes, identity);
  }

  private forged(what: string, why: string): FedmarkError {
    return new FedmarkError('PSI_RESULT_FORGED', `${what}: ${why}; the coordinator's result is refused`);
  }

  /** Checks the coordinator's result for our list, fixes the common order and answers with a receipt. */
  private checkResult(msg: PsiMessage<ResultHeader>): PsiMessage[] {
    const { spec, identity } = this.options;
    const h = msg.header;
    const what = this.view.describe(h);
    if (this.phase === 'checked' || this.phase === 'done') {
      if (this.receipt && h.sig === this.resultSig) return [{ header: this.receipt, body: new Uint8Array(0) }];
      throw new FedmarkError('PSI_DUPLICATE_MESSAGE', `${what}: a different result was already accepted`);
    }
    if (this.phase !== 'sent') throw new FedmarkError('PSI_BAD_PHASE', `${what}: arrived before ${identity.name} sent its list`);
    this.checkEnclosedFull(h, what);
    const { elements, hashes } = this.verifiedMatches(msg, what);
    // Common order: by SHA-256 of the fully blinded value, which every party holds for the same id.
    const idx = [...hashes.keys()].sort((a, b) => compareBytes(hashes[a], hashes[b]));
    for (let i = 1; i < idx.length; i++) {
      if (compareBytes(hashes[idx[i - 1]], hashes[idx[i]]) === 0) throw this.forged(what, 'the same value is returned for two positions');
    }
    const orderDigest = sha256Hex(Buffer.concat(idx.map((i) => hashes[i])));
    const k = idx.length;
    this.result = { intersectionSize: k, order: Int32Array.from(idx, (i) => elements[i]), orderDigest };
    this.receipt = signHeader<ReceiptHeader>(
      {
        v: 1,
        kind: 'psi.receipt',
        jobId: spec.jobId,
        specHash: this.view.specHash,
        from: this.keyId,
        to: spec.coordinator.keyId,
        intersectionSize: k,
        orderDigest,
      },
      identity,
    );
    this.resultSig = h.sig;
    this.phase = 'checked';
    return [{ header: this.receipt, body: new Uint8Array(0) }];
  }

  /** The Merkle root must be the one the last party to blind our list signed, for our list. */
  private checkEnclosedFull(h: ResultHeader, what: string): void {
    const { spec, identity } = this.options;
    const full = h.full;
    const last = ringPrevious(spec, this.index);
    const L = this.perm.length;
    if (
      full.origin !== this.keyId ||
      full.from !== last.keyId ||
      full.to !== spec.coordinator.keyId ||
      full.keysApplied !== spec.parties.length ||
      full.count !== L
    ) {
      throw this.forged(what, `the enclosed psi.full header is not the one ${last.name} must have sent for ${identity.name}'s list of ${L}`);
    }
    try {
      this.view.verifySigned(full, spec.coordinator.keyId, last.keyId);
    } catch (err) {
      throw this.forged(what, `the enclosed psi.full header does not verify (${(err as Error).message})`);
    }
    if (h.intersectionSize > L) throw this.forged(what, `${h.intersectionSize} matches claimed for a list of ${L}`);
  }

  /**
   * Opens the result body (positions ‖ values ‖ salts ‖ multiproof) and checks every returned
   * position against our padding and the signed Merkle root.
   */
  private verifiedMatches(msg: PsiMessage<ResultHeader>, what: string): { elements: Int32Array; hashes: Uint8Array[] } {
    const { identity } = this.options;
    const h = msg.header;
    const k = h.intersectionSize;
    const L = this.perm.length;
    const fixed = k * (4 + ELEMENT_BYTES + SALT_BYTES);
    const proofBytes = h.seal.plainBytes - fixed;
    if (proofBytes < 0 || proofBytes % 32 !== 0)
      throw new FedmarkError('PSI_BAD_BODY', `${what}: the body does not hold ${k} positions, values, salts and a proof`);
    const body = openBody(this.view, msg, identity, h.seal.plainBytes);
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const values = body.subarray(4 * k, 4 * k + ELEMENT_BYTES * k);
    const salts = body.subarray(4 * k + ELEMENT_BYTES * k, fixed);
    const leaves: { index: number; hash: Uint8Array }[] = [];
    const hashes: Uint8Array[] = [];
    const elements = new Int32Array(k);
    for (let i = 0; i < k; i++) {
      const pos = dv.getUint32(4 * i, false);
      if (pos >= L || (i > 0 && pos <= leaves[i - 1].index)) throw this.forged(what, 'positions must be distinct, ascending and inside the list');
      if (this.perm[pos] < 0) throw this.forged(what, `position ${pos} is one of ${identity.name}'s random padding points, which no real id can match`);
      const value = values.subarray(i * ELEMENT_BYTES, (i + 1) * ELEMENT_BYTES);
      leaves.push({ index: pos, hash: leafHash(salts.subarray(i * SALT_BYTES, (i + 1) * SALT_BYTES), pos, value) });
      hashes.push(hash('sha256', value, 'buffer'));
      elements[i] = this.perm[pos];
    }
    if (!verifyMultiproof(new Uint8Array(Buffer.from(h.full.merkleRoot, 'hex')), L, leaves, body.subarray(fixed))) {
      throw this.forged(what, `the returned values are not in the list ${ringPrevious(this.spec, this.index).name} blinded and committed to`);
    }
    return { elements, hashes };
  }

  /** Every party must have accepted the same intersection, in the same order. */
  private checkReceipts(receipts: ReceiptHeader[]): void {
    const { spec, identity } = this.options;
    if (this.phase === 'done') return;
    if (this.phase !== 'checked' || !this.result || !this.receipt) {
      throw new FedmarkError('PSI_BAD_PHASE', `psi.receipts: arrived before ${identity.name} accepted a result`);
    }
    const from = new Set(receipts.map((r) => r.from));
    if (receipts.length !== spec.parties.length || spec.parties.some((p) => !from.has(p.keyId))) {
      throw new FedmarkError('PSI_RESULT_MISMATCH', `psi.receipts: need exactly one receipt from each of the ${spec.parties.length} parties`);
    }
    for (const r of receipts) {
      this.view.verifySigned(r, spec.coordinator.keyId);
      if (r.from === this.keyId && r.sig !== this.receipt.sig) {
        throw new FedmarkError('PSI_RESULT_MISMATCH', `psi.receipts: the receipt under ${identity.name}'s name is not the one it signed`);
      }
      if (r.intersectionSize !== this.result.intersectionSize || r.orderDigest !== this.result.orderDigest) {
        throw new FedmarkError(
          'PSI_RESULT_MISMATCH',
          `psi.receipts: ${this.view.name(r.from)} accepted ${r.intersectionSize} matches (order ${r.orderDigest.slice(0, 12)}…), ${identity.name} ${this.result.intersectionSize} (order ${this.result.orderDigest.slice(0, 12)}…): the coordinator gave the parties different results`,
        );
      }
    }
    this.ledger.push(
      psiLedgerEntry('psi.party.result', {
        jobId: spec.jobId,
        party: this.keyId,
        intersectionSize: this.result.intersectionSize,
        alignedRows: Array.from(this.result.order).reduce((s, e) => s + this.elements.rowStart[e + 1] - this.elements.rowStart[e], 0),
        orderDigest: this.result.orderDigest,
        receiptsFrom: spec.parties.map((p) => p.keyId),
      }),
    );
    this.phase = 'done';
  }

  /** The agreed result; only after every party's receipt matched. */
  outcome(): PsiOutcome {
    if (this.phase !== 'done' || !this.result)
      throw new FedmarkError('PSI_NOT_DONE', `PSI job ${this.spec.jobId} has not finished for ${this.options.identity.name}`);
    return { jobId: this.spec.jobId, party: this.keyId, ...this.result, elements: this.elements };
  }
}
