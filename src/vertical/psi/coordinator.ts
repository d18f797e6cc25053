/**
 * The coordinator of a ring ECDH-PSI job, as a message-driven state machine with no I/O. It relays
 * the ring's sealed lists (checking who may send what to whom, but unable to open them), receives
 * the fully blinded lists, intersects them and returns to each party only the positions of that
 * party's own matching elements, with a Merkle multiproof against the root the last blinder signed.
 * It holds no blinding key, so it learns no id: it sees list lengths (the public cap when padded)
 * and which fully blinded values are shared by which lists.
 */
import { keyId as keyIdOf, type Identity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import { JobView, Slots, listHash, openBody, sealAndSign } from './envelope.ts';
import { ELEMENT_BYTES } from './group.ts';
import { psiLedgerEntry, type PsiLedgerEntry } from './ledger.ts';
import { buildTree, multiproof, rootOf, saltsFromSeed, SALT_BYTES } from './merkle.ts';
import { bodyHash, signHeader, type FullHeader, type ListHeader, type PsiMessage, type ReceiptHeader, type ResultHeader } from './messages.ts';
import { keysAppliedOnArrival, listLengthProblem, partyIndex, ringPrevious, specHash, type PsiSpec } from './spec.ts';

interface FullList {
  header: FullHeader;
  list: Uint8Array;
  levels: Uint8Array[];
  salts: Uint8Array;
}

export interface IntersectionSummary {
  intersectionSize: number;
  /** Per origin (ring order): list length and the positions returned. */
  lists: { origin: string; count: number; positions: number }[];
}

export class PsiCoordinator {
  readonly keyId: string;
  private readonly view: JobView;
  /** origin → list length announced on the ring (every hop must carry the same length). */
  private readonly counts = new Map<string, number>();
  private readonly fulls = new Slots<PsiMessage[]>();
  private readonly lists = new Map<string, FullList>();
  private results: PsiMessage<ResultHeader>[] = [];
  private readonly receipts = new Map<string, ReceiptHeader>();
  private summary?: IntersectionSummary;
  private readonly ledger: PsiLedgerEntry[] = [];

  constructor(
    readonly spec: PsiSpec,
    private readonly identity: Identity,
  ) {
    this.keyId = keyIdOf(identity.signPublicKey);
    if (this.keyId !== spec.coordinator.keyId)
      throw new FedmarkError('PSI_NOT_THE_COORDINATOR', `${identity.name} is not the coordinator of PSI job ${spec.jobId}`);
    this.view = new JobView(spec, specHash(spec));
  }

  ledgerEntries(): readonly PsiLedgerEntry[] {
    return this.ledger;
  }

  intersection(): IntersectionSummary | undefined {
    return this.summary;
  }

  private checkCount(h: ListHeader | FullHeader, what: string): void {
    const { spec } = this;
    const lengthProblem = listLengthProblem(spec, h.count);
    if (lengthProblem) throw new FedmarkError('PSI_SET_TOO_LARGE', `${what}: ${lengthProblem}`);
    const prior = this.counts.get(h.origin);
    if (prior !== undefined && prior !== h.count)
      throw new FedmarkError('PSI_BAD_HOP', `${what}: ${h.count} elements, but this list started the ring with ${prior}`);
    this.counts.set(h.origin, h.count);
  }

  /**
   * Checks a ring message before passing it on (returned unchanged): the sender is the party
   * before the recipient, the hop count fits the origin, the length is within the cap and constant.
   */
  relay(input: unknown): PsiMessage {
    const parsed = input as PsiMessage;
    const to = parsed?.header?.to;
    const at = typeof to === 'string' ? partyIndex(this.spec, to) : -1;
    if (at < 0) throw new FedmarkError('PSI_MISROUTED', 'a relayed PSI message must be addressed to a party of the job');
    const msg = this.view.accept(input, to, () => ringPrevious(this.spec, at).keyId);
    const h = msg.header;
    const what = this.view.describe(h);
    if (h.kind !== 'psi.list') throw new FedmarkError('PSI_UNEXPECTED_MESSAGE', `${what}: only psi.list messages travel between parties`);
    const origin = partyIndex(this.spec, h.origin);
    if (origin < 0 || h.keysApplied !== keysAppliedOnArrival(this.spec, origin, at)) {
      throw new FedmarkError('PSI_BAD_HOP', `${what}: cannot reach ${this.view.name(to)} at this point of the ring`);
    }
    this.checkCount(h, what);
    return msg;
  }

  receive(input: unknown): PsiMessage[] {
    const msg = this.view.accept(input, this.keyId, (h) => {
      if (h.kind === 'psi.full') {
        const origin = partyIndex(this.spec, h.origin);
        return origin < 0 ? undefined : ringPrevious(this.spec, origin).keyId;
      }
      return undefined;
    });
    const h = msg.header;
    if (h.kind === 'psi.full') return this.receiveFull(msg as PsiMessage<FullHeader>);
    if (h.kind === 'psi.receipt') return this.receiveReceipt(h);
    throw new FedmarkError('PSI_UNEXPECTED_MESSAGE', `${this.view.describe(h)}: the coordinator never receives this kind of message`);
  }

  private receiveFull(msg: PsiMessage<FullHeader>): PsiMessage[] {
    const { spec } = this;
    const h = msg.header;
    const what = this.view.describe(h);
    if (partyIndex(spec, h.origin) < 0) throw new FedmarkError('PSI_BAD_ORIGIN', `${what}: the origin is not a party of the job`);
    const cached = this.fulls.get(h.origin, h, what);
    if (cached) return cached;
    if (h.keysApplied !== spec.parties.length) throw new FedmarkError('PSI_BAD_HOP', `${what}: a full list carries all ${spec.parties.length} keys`);
    this.checkCount(h, what);
    const plain = openBody(this.view, msg, this.identity, h.count * ELEMENT_BYTES + 32);
    const list = plain.subarray(0, h.count * ELEMENT_BYTES);
    if (listHash(list) !== h.listHash) throw new FedmarkError('PSI_BAD_BODY', `${what}: the list does not match its signed hash`);
    const salts = saltsFromSeed(plain.subarray(h.count * ELEMENT_BYTES), h.count);
    const levels = buildTree(list, salts);
    if (Buffer.from(rootOf(levels)).toString('hex') !== h.merkleRoot) {
      throw new FedmarkError('PSI_MERKLE_MISMATCH', `${what}: the signed Merkle root does not match the list and salt seed it came with`);
    }
    const seen = new Set<string>();
    for (let i = 0; i < h.count; i++) {
      const v = Buffer.from(list.buffer, list.byteOffset + i * ELEMENT_BYTES, ELEMENT_BYTES).toString('latin1');
      if (seen.has(v)) throw new FedmarkError('PSI_DUPLICATE_ELEMENT', `${what}: element ${i} repeats an earlier element of the same list`, { index: i });
      seen.add(v);
    }
    this.lists.set(h.origin, { header: h, list, levels, salts });
    this.ledger.push(
      psiLedgerEntry('psi.full', {
        jobId: spec.jobId,
        origin: h.origin,
        lastBlindedBy: h.from,
        count: h.count,
        listHash: h.listHash,
        merkleRoot: h.merkleRoot,
      }),
    );
    const out = this.lists.size === spec.parties.length ? this.intersect() : [];
    this.fulls.set(h.origin, h, out);
    return out;
  }

  /** Values shared by every list; to each origin, its own matching positions only. */
  private intersect(): PsiMessage<ResultHeader>[] {
    const { spec } = this;
    const ordered = spec.parties.map((p) => this.lists.get(p.keyId)!);
    const key = (l: FullList, i: number) => Buffer.from(l.list.buffer, l.list.byteOffset + i * ELEMENT_BYTES, ELEMENT_BYTES).toString('latin1');
    // Start from the shortest list: the map holds at most its length.
    const shortest = ordered.reduce((a, b) => (b.header.count < a.header.count ? b : a));
    const hits = new Map<string, number>();
    for (let i = 0; i < shortest.header.count; i++) hits.set(key(shortest, i), 1);
    for (const l of ordered) {
      if (l === shortest) continue;
      for (let i = 0; i < l.header.count; i++) {
        const k = key(l, i);
        const c = hits.get(k);
        if (c !== undefined) hits.set(k, c + 1);
      }
    }
    const m = ordered.length;
    const summary: IntersectionSummary = { intersectionSize: 0, lists: [] };
    this.results = ordered.map((l) => {
      const positions: number[] = [];
      for (let i = 0; i < l.header.count; i++) if (hits.get(key(l, i)) === m) positions.push(i);
      summary.intersectionSize = positions.length;
      summary.lists.push({ origin: l.header.origin, count: l.header.count, positions: positions.length });
      return this.resultMessage(l, positions);
    });
    this.summary = summary;
    return this.results;
  }

  private resultMessage(l: FullList, positions: number[]): PsiMessage<ResultHeader> {
    const { spec } = this;
    const k = positions.length;
    const proof = multiproof(l.levels, positions);
    const body = new Uint8Array(k * (4 + ELEMENT_BYTES + SALT_BYTES) + proof.length);
    const dv = new DataView(body.buffer);
    positions.forEach((pos, i) => {
      dv.setUint32(4 * i, pos, false);
      body.set(l.list.subarray(pos * ELEMENT_BYTES, (pos + 1) * ELEMENT_BYTES), 4 * k + i * ELEMENT_BYTES);
      body.set(l.salts.subarray(pos * SALT_BYTES, (pos + 1) * SALT_BYTES), k * (4 + ELEMENT_BYTES) + i * SALT_BYTES);
    });
    body.set(proof, k * (4 + ELEMENT_BYTES + SALT_BYTES));
    const to = this.view.identity(l.header.origin)!;
    const draft = {
      v: 1 as const,
      kind: 'psi.result' as const,
      jobId: spec.jobId,
      specHash: this.view.specHash,
      from: this.keyId,
      to: to.keyId,
      intersectionSize: k,
      full: l.header,
    };
    return sealAndSign<ResultHeader>(draft, body, to, spec.chunkBytes, this.identity);
  }

  private receiveReceipt(h: ReceiptHeader): PsiMessage[] {
    const { spec } = this;
    const what = this.view.describe(h);
    if (partyIndex(spec, h.from) < 0) throw new FedmarkError('PSI_UNEXPECTED_SENDER', `${what}: only parties send receipts`);
    if (!this.summary) throw new FedmarkError('PSI_BAD_PHASE', `${what}: no result has been sent yet`);
    const prior = this.receipts.get(h.from);
    if (prior && prior.sig !== h.sig) throw new FedmarkError('PSI_DUPLICATE_MESSAGE', `${what}: this party already sent a different receipt`);
    this.receipts.set(h.from, h);
    if (this.receipts.size !== spec.parties.length) return [];
    const all = spec.parties.map((p) => this.receipts.get(p.keyId)!);
    const agreed = all.every((r) => r.intersectionSize === all[0].intersectionSize && r.orderDigest === all[0].orderDigest);
    if (!prior) {
      this.ledger.push(
        psiLedgerEntry('psi.intersection', {
          jobId: spec.jobId,
          intersectionSize: all[0].intersectionSize,
          orderDigest: all[0].orderDigest,
          perParty: all.map((r, i) => ({
            party: r.from,
            listCount: this.counts.get(r.from) ?? 0,
            resultBodyHash: bodyHash(this.results[i].body),
            receiptSig: r.sig,
          })),
          receiptsAgreed: agreed,
        }),
      );
    }
    return spec.parties.map((p) => ({
      header: signHeader(
        { v: 1, kind: 'psi.receipts', jobId: spec.jobId, specHash: this.view.specHash, from: this.keyId, to: p.keyId, receipts: all },
        this.identity,
      ),
      body: new Uint8Array(0),
    }));
  }
}
