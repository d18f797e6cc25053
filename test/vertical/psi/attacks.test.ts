/**
 * Attacks end to end against the real party and coordinator state machines: a malicious party
 * crafting lists, a coordinator (or the network in front of it) that tampers, misroutes, replays
 * and lies about the intersection.
 */
import { p256 } from '@noble/curves/nist.js';
import { afterAll, describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/crypto/identity.ts';
import { runInMemoryPsi, type InMemoryPsiOptions } from '../../../src/vertical/psi/driver.ts';
import { NativeEngine } from '../../../src/vertical/psi/engine.ts';
import { JobView, listHash, openBody, sealAndSign } from '../../../src/vertical/psi/envelope.ts';
import { ELEMENT_BYTES, P256_P, bigintTo32 } from '../../../src/vertical/psi/group.ts';
import { buildTree, multiproof, rootOf, saltsFromSeed, SALT_BYTES } from '../../../src/vertical/psi/merkle.ts';
import type { FullHeader, ListHeader, PsiMessage, ResultHeader } from '../../../src/vertical/psi/messages.ts';
import { specHash, type PsiSpec } from '../../../src/vertical/psi/spec.ts';
import { identities, makeSpec } from './helpers.ts';

const engine = new NativeEngine({ threads: 2, batchSize: 8 });
afterAll(() => engine.close());

const lists = [
  ['a@x.io', 'b@x.io', 'c@x.io', 'd@x.io', 'e@x.io'],
  ['b@x.io', 'c@x.io', 'd@x.io', 'f@x.io'],
  ['c@x.io', 'd@x.io', 'b@x.io', 'g@x.io', 'h@x.io'],
];

function setup(n = 3, overrides: Parameters<typeof makeSpec>[1] = {}) {
  const ids = identities(n);
  const spec = makeSpec(ids, overrides);
  const all = [...ids.parties, ids.coordinator];
  const who = (keyId: string) => all.find((i) => new JobView(spec, specHash(spec)).identity(keyId)?.name === i.name)!;
  const run = (intercept: InMemoryPsiOptions['intercept']) =>
    runInMemoryPsi({ spec, parties: lists.slice(0, n).map((l, i) => ({ identity: ids.parties[i], ids: l })), coordinator: ids.coordinator, engine, intercept });
  return { ids, spec, who, run, view: new JobView(spec, specHash(spec)) };
}

/** The smallest x whose curve equation has no solution. */
function offCurveX(): Uint8Array {
  for (let x = 1n; ; x++) {
    try {
      p256.Point.fromBytes(Buffer.concat([Buffer.from([2]), bigintTo32(x)]));
    } catch {
      return bigintTo32(x);
    }
  }
}

/** What a malicious sender can do: re-seal and re-sign a list it changed (it holds its own keys). */
function resealList(
  spec: PsiSpec,
  view: JobView,
  msg: PsiMessage<ListHeader>,
  recipient: Identity,
  sender: Identity,
  change: (list: Uint8Array) => Uint8Array,
): PsiMessage {
  const list = change(openBody(view, msg, recipient, msg.header.count * ELEMENT_BYTES));
  const { sig: _s, seal: _seal, bodyHash: _b, ...draft } = msg.header;
  return sealAndSign<ListHeader>(
    { ...draft, count: list.length / ELEMENT_BYTES, listHash: listHash(list) },
    list,
    view.identity(msg.header.to)!,
    spec.chunkBytes,
    sender,
  );
}

/** What a lying coordinator can send: any positions, with values and proofs from the real lists. */
function forgeResult(
  spec: PsiSpec,
  view: JobView,
  coordinator: Identity,
  full: PsiMessage<FullHeader>,
  positions: number[],
  { values, to = full.header.origin }: { values?: (Uint8Array | undefined)[]; to?: string } = {},
): PsiMessage<ResultHeader> {
  const h = full.header;
  const plain = openBody(view, full, coordinator, h.count * ELEMENT_BYTES + 32);
  const list = plain.subarray(0, h.count * ELEMENT_BYTES);
  const salts = saltsFromSeed(plain.subarray(h.count * ELEMENT_BYTES), h.count);
  const proof = multiproof(buildTree(list, salts), positions);
  const k = positions.length;
  const body = new Uint8Array(k * (4 + ELEMENT_BYTES + SALT_BYTES) + proof.length);
  positions.forEach((p, i) => {
    new DataView(body.buffer).setUint32(4 * i, p, false);
    body.set(values?.[i] ?? list.subarray(p * ELEMENT_BYTES, (p + 1) * ELEMENT_BYTES), 4 * k + i * ELEMENT_BYTES);
    body.set(salts.subarray(p * SALT_BYTES, (p + 1) * SALT_BYTES), k * (4 + ELEMENT_BYTES) + i * SALT_BYTES);
  });
  body.set(proof, k * (4 + ELEMENT_BYTES + SALT_BYTES));
  return sealAndSign<ResultHeader>(
    { v: 1, kind: 'psi.result', jobId: spec.jobId, specHash: view.specHash, from: h.to, to, intersectionSize: k, full: h },
    body,
    view.identity(to)!,
    spec.chunkBytes,
    coordinator,
  );
}

/** Positions of the real result, read back with the recipient's key. */
function realPositions(view: JobView, msg: PsiMessage<ResultHeader>, recipient: Identity): number[] {
  const body = openBody(view, msg, recipient, msg.header.seal.plainBytes);
  return Array.from({ length: msg.header.intersectionSize }, (_, i) => new DataView(body.buffer, body.byteOffset).getUint32(4 * i, false));
}

describe('a malicious party', () => {
  it('a malformed point in a relayed list is refused, naming the message and the element index', async () => {
    const { spec, view, who, run } = setup();
    const offCurve = offCurveX();
    for (const [bad, reason] of [
      [offCurve, 'not on the P-256 curve'],
      [bigintTo32(P256_P + 0n), 'not reduced mod p'],
    ] as const) {
      await expect(
        run((m) => {
          if (m.header.kind !== 'psi.list' || m.header.keysApplied !== 1 || m.header.origin !== spec.parties[0].keyId) return m;
          return resealList(spec, view, m as PsiMessage<ListHeader>, who(m.header.to), who(m.header.from), (l) => {
            const c = l.slice();
            c.set(bad, 3 * ELEMENT_BYTES);
            return c;
          });
        }),
      ).rejects.toMatchObject({
        code: 'PSI_BAD_POINT',
        message: `psi.list from bank (origin bank, 1 key applied): element 3: x-coordinate is ${reason}${reason.startsWith('not on') ? '' : ' (non-canonical encoding)'}`,
      });
    }
  });

  it('a list longer than the cap is refused by the next party and by the relaying coordinator', async () => {
    const { spec, view, who, run } = setup(2, { maxSetSize: 6 });
    const grow = (m: PsiMessage) =>
      m.header.kind === 'psi.list' && m.header.keysApplied === 1 && m.header.origin === spec.parties[0].keyId
        ? resealList(spec, view, m as PsiMessage<ListHeader>, who(m.header.to), who(m.header.from), (l) => {
            const c = new Uint8Array(l.length + 2 * ELEMENT_BYTES);
            c.set(l);
            c.set(l.subarray(0, 2 * ELEMENT_BYTES), l.length);
            return c;
          })
        : m;
    await expect(run(grow)).rejects.toMatchObject({ code: 'PSI_SET_TOO_LARGE', message: expect.stringContaining('7 elements') });
  });

  it('a party with more distinct ids than the cap cannot start', async () => {
    const { ids, spec } = setup(2, { maxSetSize: 4 });
    await expect(
      runInMemoryPsi({ spec, parties: lists.slice(0, 2).map((l, i) => ({ identity: ids.parties[i], ids: l })), coordinator: ids.coordinator, engine }),
    ).rejects.toMatchObject({ code: 'PSI_SET_TOO_LARGE', message: expect.stringContaining('bank has 5 distinct ids') });
  });

  it('with padding, a list that is not exactly the cap is refused', async () => {
    const { spec, view, who, run } = setup(2, { padToMax: true, maxSetSize: 8 });
    await expect(
      run((m) =>
        m.header.kind === 'psi.list' && m.header.keysApplied === 1 && m.header.origin === spec.parties[0].keyId
          ? resealList(spec, view, m as PsiMessage<ListHeader>, who(m.header.to), who(m.header.from), (l) => l.slice(ELEMENT_BYTES))
          : m,
      ),
    ).rejects.toMatchObject({ code: 'PSI_SET_TOO_LARGE', message: expect.stringContaining('pads every list to exactly 8') });
  });
});

describe('a malicious last blinder', () => {
  /** Re-seals a psi.full the sender changed; `root` recomputes the Merkle root over the new list or keeps the old one. */
  function resealFull(
    spec: PsiSpec,
    view: JobView,
    msg: PsiMessage<FullHeader>,
    coordinator: Identity,
    sender: Identity,
    change: (l: Uint8Array) => Uint8Array,
    root: 'recompute' | 'keep',
  ) {
    const h = msg.header;
    const plain = openBody(view, msg, coordinator, h.count * ELEMENT_BYTES + 32);
    const list = change(plain.slice(0, h.count * ELEMENT_BYTES));
    const seed = plain.subarray(h.count * ELEMENT_BYTES);
    const merkleRoot = root === 'keep' ? h.merkleRoot : Buffer.from(rootOf(buildTree(list, saltsFromSeed(seed, h.count)))).toString('hex');
    const { sig: _s, seal: _seal, bodyHash: _b, ...draft } = h;
    return sealAndSign<FullHeader>(
      { ...draft, listHash: listHash(list), merkleRoot },
      new Uint8Array([...list, ...seed]),
      spec.coordinator,
      spec.chunkBytes,
      sender,
    );
  }
  const duplicateFirst = (l: Uint8Array) => {
    l.set(l.subarray(ELEMENT_BYTES, 2 * ELEMENT_BYTES), 0);
    return l;
  };

  it('a root that does not match the list is refused by the coordinator', async () => {
    const { ids, spec, view, who, run } = setup(2);
    await expect(
      run((m) =>
        m.header.kind === 'psi.full' ? resealFull(spec, view, m as PsiMessage<FullHeader>, ids.coordinator, who(m.header.from), duplicateFirst, 'keep') : m,
      ),
    ).rejects.toMatchObject({
      code: 'PSI_MERKLE_MISMATCH',
    });
  });

  it('a fully blinded list with a repeated element is refused, naming the index', async () => {
    const { ids, spec, view, who, run } = setup(2);
    await expect(
      run((m) =>
        m.header.kind === 'psi.full'
          ? resealFull(spec, view, m as PsiMessage<FullHeader>, ids.coordinator, who(m.header.from), duplicateFirst, 'recompute')
          : m,
      ),
    ).rejects.toMatchObject({
      code: 'PSI_DUPLICATE_ELEMENT',
      message: expect.stringContaining('element 1 repeats an earlier element'),
    });
  });
});

describe('the network or a relaying coordinator', () => {
  it('cannot read a relayed list: it is sealed to the recipient', async () => {
    const { ids, view, run } = setup(2);
    let tried = false;
    await run((m) => {
      if (m.header.kind === 'psi.list') {
        expect(() => openBody(view, m, ids.coordinator, (m as PsiMessage<ListHeader>).header.seal.plainBytes)).toThrow(/does not authenticate/);
        tried = true;
      }
      return m;
    });
    expect(tried).toBe(true);
  });

  it('a flipped byte in a sealed body, an edited header, a misrouted list and another job’s message are refused', async () => {
    const { spec, run } = setup(3);
    const flip = (m: PsiMessage) => ({ header: m.header, body: Uint8Array.from(m.body, (b, i) => (i === 5 ? b ^ 1 : b)) });
    await expect(run((m) => (m.header.kind === 'psi.list' ? flip(m) : m))).rejects.toMatchObject({ code: 'PSI_BAD_BODY' });
    await expect(run((m) => (m.header.kind === 'psi.list' ? { ...m, header: { ...m.header, count: m.header.count - 1 } } : m))).rejects.toMatchObject({
      code: 'PSI_BAD_SIGNATURE',
    });
    await expect(
      run((m) =>
        m.header.kind === 'psi.list' && m.header.keysApplied === 1
          ? { ...m, header: { ...m.header, to: spec.parties[(spec.parties.findIndex((p) => p.keyId === m.header.to) + 1) % 3].keyId } }
          : m,
      ),
    ).rejects.toMatchObject({
      code: 'PSI_UNEXPECTED_SENDER',
    });
    const other = setup(3, { jobId: 'psi-other-job' });
    const foreign: PsiMessage[] = [];
    await other.run((m) => {
      foreign.push(m);
      return m;
    });
    await expect(
      run((m) => (m.header.kind === 'psi.list' ? foreign.find((f) => f.header.kind === 'psi.list' && f.header.to === m.header.to)! : m)),
    ).rejects.toMatchObject({ code: 'PSI_WRONG_JOB' });
  });

  it('a replayed message gets the same answer; a different message for a used slot is refused', async () => {
    const { spec, view, who, run } = setup(2);
    const ok = await run((m) => (m.header.kind === 'psi.receipt' ? m : [m, m]));
    expect(ok.outcomes.map((o) => o.intersectionSize)).toEqual([3, 3]);
    // The sender re-seals (fresh ephemeral key) the same list: same content, a different message.
    await expect(
      run((m) =>
        m.header.kind === 'psi.list' && m.header.origin === spec.parties[0].keyId
          ? [m, resealList(spec, view, m as PsiMessage<ListHeader>, who(m.header.to), who(m.header.from), (l) => l)]
          : m,
      ),
    ).rejects.toMatchObject({ code: 'PSI_DUPLICATE_MESSAGE' });
  });
});

describe('a coordinator that lies about the intersection', () => {
  /** Runs the job, letting `lie` replace the result sent to `victim` (0-based party index). */
  async function withLie(
    victim: number,
    lie: (ctx: { real: PsiMessage<ResultHeader>; full: PsiMessage<FullHeader>; positions: number[] }) => PsiMessage<ResultHeader>,
    padToMax = false,
  ) {
    const { ids, spec, view, run } = setup(3, padToMax ? { padToMax: true, maxSetSize: 12 } : {});
    const fulls = new Map<string, PsiMessage<FullHeader>>();
    return run((m) => {
      if (m.header.kind === 'psi.full') fulls.set(m.header.origin, m as PsiMessage<FullHeader>);
      if (m.header.kind === 'psi.result' && m.header.to === spec.parties[victim].keyId) {
        const real = m as PsiMessage<ResultHeader>;
        return lie({ real, full: fulls.get(m.header.to)!, positions: realPositions(view, real, ids.parties[victim]) });
      }
      return m;
    });
  }

  it('adding a non-member position (with its true value and a valid proof) is caught by the receipts', async () => {
    const { ids, spec, view } = setup(3);
    await expect(
      withLie(0, ({ full, positions }) => {
        const extra = [...Array(full.header.count).keys()].find((p) => !positions.includes(p))!;
        return forgeResult(
          spec,
          view,
          ids.coordinator,
          full,
          [...positions, extra].sort((a, b) => a - b),
        );
      }),
    ).rejects.toMatchObject({ code: 'PSI_RESULT_MISMATCH', message: expect.stringContaining('the coordinator gave the parties different results') });
  });

  it('dropping a member from one party’s result is caught by the receipts', async () => {
    const { ids, spec, view } = setup(3);
    await expect(withLie(1, ({ full, positions }) => forgeResult(spec, view, ids.coordinator, full, positions.slice(1)))).rejects.toMatchObject({
      code: 'PSI_RESULT_MISMATCH',
    });
  });

  it('a made-up value for a position fails the Merkle proof against the signed root', async () => {
    const { ids, spec, view } = setup(3);
    const fake = bigintTo32(12345n);
    await expect(
      withLie(2, ({ full, positions }) =>
        forgeResult(spec, view, ids.coordinator, full, positions, { values: positions.map((_, i) => (i === 0 ? fake : undefined)) }),
      ),
    ).rejects.toMatchObject({ code: 'PSI_RESULT_FORGED', message: expect.stringContaining('not in the list telco blinded and committed to') });
  });

  it('with padding, claiming a padding dummy is caught by its owner', async () => {
    const { ids, spec, view } = setup(3, { padToMax: true, maxSetSize: 12 });
    // Without knowing which positions are dummies the coordinator must guess; here it claims all.
    await expect(withLie(0, ({ full }) => forgeResult(spec, view, ids.coordinator, full, [...Array(full.header.count).keys()]), true)).rejects.toMatchObject({
      code: 'PSI_RESULT_FORGED',
      message: expect.stringContaining('random padding points'),
    });
  });

  it('dropping the same member from every party’s result is not detectable (documented limitation)', async () => {
    const { ids, spec, view, run } = setup(3);
    const fulls = new Map<string, PsiMessage<FullHeader>>();
    let dropped: string | undefined;
    const r = await run((m) => {
      if (m.header.kind === 'psi.full') fulls.set(m.header.origin, m as PsiMessage<FullHeader>);
      if (m.header.kind !== 'psi.result') return m;
      const i = spec.parties.findIndex((p) => p.keyId === m.header.to);
      const real = m as PsiMessage<ResultHeader>;
      const body = openBody(view, real, ids.parties[i], real.header.seal.plainBytes);
      const k = real.header.intersectionSize;
      const positions = realPositions(view, real, ids.parties[i]);
      const values = positions.map((_, j) => Buffer.from(body.subarray(4 * k + 32 * j, 4 * k + 32 * j + 32)).toString('hex'));
      dropped ??= [...values].sort()[0];
      return forgeResult(
        spec,
        view,
        ids.coordinator,
        fulls.get(m.header.to)!,
        positions.filter((_, j) => values[j] !== dropped),
      );
    });
    // Every check passes and all parties agree on two of the three common customers.
    expect(r.outcomes.map((o) => o.intersectionSize)).toEqual([2, 2, 2]);
  });

  it('the enclosed psi.full header must be the victim’s own list, signed by its ring predecessor', async () => {
    const { ids, spec, view } = setup(3);
    const fulls = new Map<string, PsiMessage<FullHeader>>();
    const { run } = setup(3);
    await expect(
      run((m) => {
        if (m.header.kind === 'psi.full') fulls.set(m.header.origin, m as PsiMessage<FullHeader>);
        if (m.header.kind === 'psi.result' && m.header.to === spec.parties[0].keyId) {
          // The telco's list, its root and a valid proof, passed off as the bank's.
          return forgeResult(spec, view, ids.coordinator, fulls.get(spec.parties[1].keyId)!, [0, 1], { to: spec.parties[0].keyId });
        }
        return m;
      }),
    ).rejects.toMatchObject({ code: 'PSI_RESULT_FORGED', message: expect.stringContaining('is not the one retailer must have sent for bank') });
  });
});
