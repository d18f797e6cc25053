/**
 * The security properties of secure aggregation, each tested as an attack that would succeed if the
 * property broke: what a single upload reveals, what a coalition of the coordinator and t − 1
 * partners can recover, and what a lying coordinator can make honest partners do.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyId } from '../../../src/crypto/identity.ts';
import { applyPairMask, applySelfMask, pairSign } from '../../../src/crypto/secagg/masking.ts';
import { MaskAccumulator } from '../../../src/crypto/secagg/prg.ts';
import { recoverSecret } from '../../../src/crypto/secagg/shamir.ts';
import { x25519PublicKey } from '../../../src/crypto/secagg/x25519.ts';
import {
  SecaggPartner,
  encodeValues,
  runSecaggInMemory,
  signBody,
  unmaskAggregate,
  type SignedInbox,
  type SignedReveal,
  type SignedSurvivors,
  type SignedUnmask,
} from '../../../src/crypto/secagg/index.ts';
import { COORDINATOR, COORD_KEY, Round, expectCode, expectCodeAsync, identities, openBfv, realInputs, seededRandom, type Bfv } from './helpers.ts';

let bfv: Bfv;
beforeAll(async () => {
  bfv = await openBfv();
});
afterAll(() => bfv?.dispose());

const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** χ² statistic of residues in [0, t) over `bins` equal bins. */
function chiSquare(v: Float64Array, t: number, bins: number): number {
  const counts = new Float64Array(bins);
  for (const x of v) counts[Math.floor((x * bins) / t)]++;
  const expected = v.length / bins;
  let chi = 0;
  for (const c of counts) chi += (c - expected) ** 2 / expected;
  return chi;
}
/** Upper 0.1% point of χ² with 63 degrees of freedom (tables; Abramowitz & Stegun 26.4). */
const CHI2_63_P001 = 103.44;

function pearson(a: Float64Array, b: Float64Array): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** A structured update: what an attacker would love to see. */
function signal(length: number): Float64Array {
  return Float64Array.from({ length }, (_, i) => 0.9 * Math.sin(i / 40));
}

describe('what one masked upload reveals to a key holder', () => {
  it("a single partner's upload decrypted with the job key is uniform modulo t (χ², 64 bins, α = 0.001)", async () => {
    const people = identities(5, 'chi');
    const L = 40_000;
    const inputs = people.map(() => ({ update: signal(L) }));
    const r = await runSecaggInMemory({
      partners: people,
      coordinator: COORDINATOR,
      inputs,
      parts: [{ name: 'update', length: L, kind: 'real', maxAbs: 1 }],
      bfv: bfv.ctx,
      secretKey: bfv.secretKey,
      random: seededRandom('chi-square'),
    });
    const t = bfv.ctx.plainModulus;
    for (const [id, blob] of r.uploads) {
      const decrypted = bfv.cipher.decryptResidues(blob, L);
      expect(chiSquare(decrypted, t, 64), `upload of ${id}`).toBeLessThan(CHI2_63_P001);
      // Control: the same partner's encoded input, unmasked, is nowhere near uniform.
      expect(chiSquare(r.encoded.get(id)!, t, 64)).toBeGreaterThan(100 * CHI2_63_P001);
    }
  });
});

describe('a coalition of the coordinator and t − 1 partners', () => {
  it("recovers nothing correlated with a victim's update from everything it holds — and t shares would", async () => {
    const people = identities(6, 'coalition');
    const ids = people.map((p) => keyId(p.signPublicKey)).sort();
    const L = 20_000;
    const victim = ids[2];
    const inputs = people.map((p, i) => (keyId(p.signPublicKey) === victim ? { update: signal(L) } : realInputs(1, L, 100 + i)[0]));
    const r = await runSecaggInMemory({
      partners: people,
      coordinator: COORDINATOR,
      inputs,
      parts: [{ name: 'update', length: L, kind: 'real', maxAbs: 1 }],
      bfv: bfv.ctx,
      secretKey: bfv.secretKey,
    });
    const t = bfv.ctx.plainModulus;
    const threshold = r.config.threshold;
    expect(threshold).toBe(4);
    const coalition = ids.filter((id) => id !== victim).slice(0, threshold - 1); // t − 1 partners
    const honestOthers = ids.filter((id) => id !== victim && !coalition.includes(id));
    expect(honestOthers.length).toBe(2);
    const ads = new Map(r.evidence.roster.body.advertisements.map((a) => [a.body.from, a.body]));
    const binding = r.config;
    const x = signal(L);
    const part = r.config.encoding.parts[0];
    const decodeOne = (z: Float64Array) => Float64Array.from(z, (v) => (v - part.offset) / 2 ** part.fractionBits);

    // 1. The coalition holds the job key (its partners are key holders): it decrypts the victim's upload.
    const y = bfv.cipher.decryptResidues(r.uploads.get(victim)!, L);
    // 2. The victim survived, so its seed was revealed: the self-mask comes off.
    const seedShares = r.evidence.reveals.flatMap((rv) => rv.body.seedShares.filter((s) => s.of === victim).map((s) => fromB64(s.share)));
    const seed = await recoverSecret(seedShares);
    const acc = new MaskAccumulator(Float64Array.from(y), t);
    applySelfMask(acc, binding, victim, seed, -1);
    // 3. The coalition's own pairwise masks with the victim come off too (they hold their mask keys).
    for (const w of coalition) {
      const snap = r.snapshots.get(w)!;
      applyPairMask(
        acc,
        binding,
        { a: victim, b: w },
        fromB64(snap.maskSecretKey),
        fromB64(ads.get(victim)!.maskPublicKey),
        pairSign(victim, w) === 1 ? -1 : 1,
      );
    }
    const z = acc.finish();
    // What is left hides x_v under the honest partners' pairwise masks: no correlation.
    const estimate = decodeOne(z);
    expect(Math.abs(pearson(estimate, x))).toBeLessThan(5 / Math.sqrt(L));
    // 4. The victim's mask key from the coalition's t − 1 shares is not the victim's key.
    const keyShares = coalition.map((w) => fromB64(r.snapshots.get(w)!.inbox!.received.find((s) => s.from === victim)!.keyShare));
    const guess = await recoverSecret(keyShares);
    expect(Buffer.from(x25519PublicKey(guess)).toString('base64')).not.toBe(ads.get(victim)!.maskPublicKey);

    // Control — the attack is real: with one more share (t in all) the key is recovered and the
    // victim's update falls out exactly.
    const extra = fromB64(r.snapshots.get(honestOthers[0])!.inbox!.received.find((s) => s.from === victim)!.keyShare);
    const key = await recoverSecret([...keyShares, extra]);
    expect(Buffer.from(x25519PublicKey(key)).toString('base64')).toBe(ads.get(victim)!.maskPublicKey);
    const full = new MaskAccumulator(z, t);
    for (const h of honestOthers) {
      applyPairMask(full, binding, { a: victim, b: h }, key, fromB64(ads.get(h)!.maskPublicKey), pairSign(victim, h) === 1 ? -1 : 1);
    }
    expect(full.finish()).toEqual(r.encoded.get(victim));
    expect(pearson(decodeOne(z), x)).toBeGreaterThan(0.999);
  });
});

/** Drives a Round up to the consistency stage; returns what the coordinator would send next. */
async function upToSurvivors(r: Round, skipUpload: string[] = []): Promise<SignedSurvivors> {
  for (const p of r.partners) r.coordinator.acceptAdvertise(p.advertise());
  const roster = r.coordinator.closeAdvertise();
  for (const p of r.partners) r.coordinator.acceptShares(await p.onRoster(roster));
  r.coordinator.closeShares();
  for (const p of r.partners) {
    if (skipUpload.includes(p.id)) continue;
    const encoded = encodeValues(r.config.encoding, { update: new Float64Array(r.config.encoding.parts[0].length).fill(0.25) });
    const { message, blob } = p.onInbox(r.coordinator.inboxFor(p.id), encoded, (m) => bfv.cipher.encryptResidues(m));
    r.coordinator.acceptMasked(message, sha(blob!));
    r.agg.add(blob!);
  }
  return r.coordinator.closeUpload();
}

const PARTS = [{ name: 'update', length: 50, kind: 'real' as const, maxAbs: 1 }];

describe('a lying coordinator', () => {
  it('showing different survivor sets to different partners is detected before any share is revealed', async () => {
    const r = new Round(bfv, identities(7, 'split'), PARTS, { threshold: 4 });
    try {
      const honest = await upToSurvivors(r);
      // The coordinator tells partners 0–3 that everyone uploaded, and partners 4–6 that partner 0 did not.
      const lie = signBody({ ...honest.body, survivors: honest.body.survivors.filter((id) => id !== r.ids[0]) }, COORDINATOR);
      const sigsA = [0, 1, 2, 3].map((i) => r.at(i).onSurvivors(honest));
      const sigsB = [4, 5, 6].map((i) => r.at(i).onSurvivors(lie));
      // To unmask partner 0's self-mask from group A and its key from group B it must show A ≥ t
      // signatures on A's set; it has only 4 — and mixing in B's signatures is caught.
      const { configId, jobId, round, attempt } = honest.body;
      const mixed: SignedUnmask = signBody(
        { type: 'unmask', configId, jobId, round, attempt, survivors: honest.body.survivors, consistency: [...sigsA, ...sigsB] },
        COORDINATOR,
      );
      const err = expectCode(() => r.at(0).onUnmask(mixed), 'SECAGG_INCONSISTENT_SURVIVORS');
      expect(err.message).toMatch(/different survivor set/);
      // Group B, shown A's set in the unmask request, refuses: it is not the set it signed.
      expectCode(() => r.at(5).onUnmask(mixed), 'SECAGG_INCONSISTENT_SURVIVORS');
      // Showing B its own set with only B's 3 signatures is below t: nothing is revealed.
      const onlyB: SignedUnmask = signBody({ ...mixed.body, survivors: lie.body.survivors, consistency: sigsB }, COORDINATOR);
      expectCode(() => r.at(5).onUnmask(onlyB), 'SECAGG_ATTEMPT_FAILED');
    } finally {
      r.agg.dispose();
    }
  });

  it('a request that would reveal both shares of one partner is refused, however it is asked', async () => {
    const r = new Round(bfv, identities(6, 'both'), PARTS, { threshold: 3 });
    try {
      const survivors = await upToSurvivors(r);
      const victim = r.ids[1];
      const responder = r.at(4);
      for (const i of [0, 2, 3, 4, 5]) r.coordinator.acceptConsistency(r.at(i).onSurvivors(survivors));
      const unmask = r.coordinator.closeConsistency();
      const reveal = responder.onUnmask(unmask);
      expect(reveal.body.seedShares.map((s) => s.of)).toContain(victim);
      // (a) A second survivor set without the victim, to get its key share: refused — one set per attempt.
      const without = signBody({ ...survivors.body, survivors: survivors.body.survivors.filter((id) => id !== victim) }, COORDINATOR);
      expectCode(() => responder.onSurvivors(without), 'SECAGG_EQUIVOCATION');
      // (b) An unmask request naming that other set: refused.
      const otherUnmask = signBody({ ...unmask.body, survivors: without.body.survivors }, COORDINATOR);
      expectCode(() => responder.onUnmask(otherUnmask), 'SECAGG_EQUIVOCATION');
      // (c) Even if its state were rolled back to before it signed (a restored old snapshot), the
      //     record of what it revealed survives and stops the second share.
      const people = identities(6, 'both');
      const rollBack = (p: SecaggPartner) =>
        SecaggPartner.restore(
          { config: r.config, identity: people.find((i) => keyId(i.signPublicKey) === p.id)!, partners: r.publics, coordinatorSignPublicKey: COORD_KEY },
          { ...p.snapshot(), survivors: undefined, unmask: undefined },
        );
      const rolledBack = rollBack(responder);
      const signatures = [rolledBack, ...[0, 2, 3].map((i) => rollBack(r.at(i)))].map((p) => p.onSurvivors(without));
      const forged = signBody({ ...unmask.body, survivors: without.body.survivors, consistency: signatures }, COORDINATOR);
      const double = expectCode(() => rolledBack.onUnmask(forged), 'SECAGG_DOUBLE_REVEAL');
      expect(double.message).toContain(victim);
      // (d) A reveal carrying both shares of one partner is refused by the coordinator and key holders.
      const both: SignedReveal = signBody(
        { ...reveal.body, keyShares: [{ of: victim, share: reveal.body.seedShares[0].share }] },
        people.find((i) => keyId(i.signPublicKey) === responder.id)!,
      );
      expectCode(() => r.coordinator.acceptReveal(both), 'SECAGG_DOUBLE_REVEAL');
    } finally {
      r.agg.dispose();
    }
  });

  it('shares, messages and masks from another round or attempt are refused', async () => {
    const people = identities(5, 'replay');
    const a0 = new Round(bfv, people, PARTS, { attempt: 0, threshold: 3 });
    const a1 = new Round(bfv, people, PARTS, { attempt: 1, threshold: 3 });
    const r2 = new Round(bfv, people, PARTS, { round: 2, attempt: 0, threshold: 3 });
    try {
      const s0 = await upToSurvivors(a0);
      // An advertisement of attempt 0 replayed into attempt 1.
      expectCode(() => a1.coordinator.acceptAdvertise(a0.at(0).advertise()), 'SECAGG_WRONG_ATTEMPT');
      expectCode(() => r2.coordinator.acceptAdvertise(a0.at(0).advertise()), 'SECAGG_WRONG_ATTEMPT');
      // A survivor set of attempt 0 shown in attempt 1.
      for (const p of a1.partners) a1.coordinator.acceptAdvertise(p.advertise());
      const roster1 = a1.coordinator.closeAdvertise();
      for (const p of a1.partners) a1.coordinator.acceptShares(await p.onRoster(roster1));
      a1.coordinator.closeShares();
      // A sealed share from attempt 0, moved into attempt 1's inbox (re-signed by the coordinator).
      const target = a1.at(2).id;
      const inbox1 = a1.coordinator.inboxFor(target);
      const inbox0 = a0.coordinator.inboxFor(target);
      const moved: SignedInbox = signBody(
        { ...inbox1.body, shares: inbox1.body.shares.map((s, i) => (i === 0 ? inbox0.body.shares.find((x) => x.from === s.from)! : s)) },
        COORDINATOR,
      );
      const encoded = encodeValues(a1.config.encoding, { update: new Float64Array(50) });
      const wrong = expectCode(() => a1.at(2).onInbox(moved, encoded, (m) => bfv.cipher.encryptResidues(m)), 'SECAGG_WRONG_ATTEMPT');
      expect(wrong.message).toMatch(/attempt 0, not round 1 attempt 1/);
      // A masked-upload commitment of attempt 0 offered in attempt 1.
      const upload0 = a0.at(0).onInbox(a0.coordinator.inboxFor(a0.at(0).id), encoded, () => new Uint8Array(0)).message;
      expectCode(() => a1.coordinator.acceptMasked(upload0, upload0.body.blobSha256), 'SECAGG_WRONG_ATTEMPT');
      // A survivor set of attempt 0 shown to a partner in attempt 1.
      expectCode(() => a1.at(0).onSurvivors(s0), 'SECAGG_WRONG_ATTEMPT');
      // Reveals of attempt 0 are refused by key holders checking attempt 1's evidence.
      for (const i of [0, 1, 2, 3, 4]) a0.coordinator.acceptConsistency(a0.at(i).onSurvivors(s0));
      const unmask0 = a0.coordinator.closeConsistency();
      for (const p of a0.partners) a0.coordinator.acceptReveal(p.onUnmask(unmask0));
      const ev0 = a0.coordinator.closeUnmask();
      const residues = bfv.cipher.decryptResidues(a0.agg.toBytes(), a0.config.encoding.totalSlots);
      await expectCodeAsync(
        () => unmaskAggregate({ config: a1.config, partners: a1.publics, coordinatorSignPublicKey: COORD_KEY, evidence: ev0, residues }),
        'SECAGG_WRONG_ATTEMPT',
      );
      // …while in its own attempt the same evidence unmasks to 5 × 0.25.
      const ok = await unmaskAggregate({ config: a0.config, partners: a0.publics, coordinatorSignPublicKey: COORD_KEY, evidence: ev0, residues });
      const part = a0.config.encoding.parts[0];
      expect((ok.residues[0] - 5 * part.offset) / 2 ** part.fractionBits).toBe(1.25);
    } finally {
      for (const r of [a0, a1, r2]) r.agg.dispose();
    }
  });

  it('withholding, altering or re-addressing messages is detected', async () => {
    const people = identities(5, 'withhold');
    const r = new Round(bfv, people, PARTS, { threshold: 3 });
    try {
      for (const p of r.partners) r.coordinator.acceptAdvertise(p.advertise());
      const roster = r.coordinator.closeAdvertise();
      // A roster with another config (threshold lowered) is refused by every partner.
      const lowered = signBody({ ...roster.body, config: { ...roster.body.config, threshold: 2 } }, COORDINATOR);
      await expectCodeAsync(() => r.at(0).onRoster(lowered), 'SECAGG_CONFIG_MISMATCH');
      // A roster signed by someone else, or malformed.
      await expectCodeAsync(
        () => r.at(0).onRoster({ ...roster, signature: roster.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }),
        'SECAGG_BAD_SIGNATURE',
      );
      await expectCodeAsync(() => r.at(0).onRoster({ body: { type: 'roster' }, signature: 'x' }), 'SECAGG_BAD_MESSAGE');
      // A roster leaving out a partner's own advertisement.
      const without = signBody({ ...roster.body, advertisements: roster.body.advertisements.filter((a) => a.body.from !== r.at(1).id) }, COORDINATOR);
      await expectCodeAsync(() => r.at(1).onRoster(without), 'SECAGG_INCONSISTENT_ROSTER');
      for (const p of r.partners) r.coordinator.acceptShares(await p.onRoster(roster));
      // Answering the same roster twice returns the same shares; a different roster is equivocation.
      expect(await r.at(0).onRoster(roster)).toEqual(await r.at(0).onRoster(roster));
      await expectCodeAsync(() => r.at(0).onRoster(without), 'SECAGG_EQUIVOCATION');
      r.coordinator.closeShares();
      // An inbox with one partner's share withheld.
      const inbox = r.coordinator.inboxFor(r.at(2).id);
      const short = signBody({ ...inbox.body, shares: inbox.body.shares.slice(1) }, COORDINATOR);
      const encoded = encodeValues(r.config.encoding, { update: new Float64Array(50) });
      expectCode(() => r.at(2).onInbox(short, encoded, (m) => bfv.cipher.encryptResidues(m)), 'SECAGG_BAD_INBOX');
      // A share sealed to partner 2, re-addressed to partner 3 (same sender, same attempt): it does not
      // authenticate, because the recipient is bound into the seal.
      const inbox3 = r.coordinator.inboxFor(r.at(3).id);
      const readdressed = signBody(
        { ...inbox3.body, shares: inbox3.body.shares.map((s) => ({ ...s, sealed: inbox.body.shares.find((x) => x.from === s.from)?.sealed ?? s.sealed })) },
        COORDINATOR,
      );
      expect(readdressed.body.shares.some((s, i) => s.sealed !== inbox3.body.shares[i].sealed)).toBe(true);
      expectCode(() => r.at(3).onInbox(readdressed, encoded, (m) => bfv.cipher.encryptResidues(m)), 'SECAGG_BAD_SHARE');
      // A tampered sealed share.
      const tampered = signBody(
        {
          ...inbox.body,
          shares: inbox.body.shares.map((s, i) =>
            i === 0 ? { ...s, sealed: Buffer.from(fromB64(s.sealed).map((b, j) => (j === 30 ? b ^ 1 : b))).toString('base64') } : s,
          ),
        },
        COORDINATOR,
      );
      expectCode(() => r.at(2).onInbox(tampered, encoded, (m) => bfv.cipher.encryptResidues(m)), 'SECAGG_BAD_SHARE');
      // A blob that is not the one the partner signed.
      const { message, blob } = r.at(2).onInbox(inbox, encoded, (m) => bfv.cipher.encryptResidues(m));
      expectCode(() => r.coordinator.acceptMasked(message, sha(Uint8Array.from(blob!, (b, i) => (i === 100 ? b ^ 1 : b)))), 'SECAGG_SUM_MISMATCH');
    } finally {
      r.agg.dispose();
    }
  });

  it('a crash between stages resumes from the persisted state to the exact sum', async () => {
    const people = identities(4, 'crash');
    const r = new Round(bfv, people, PARTS, { threshold: 3 });
    try {
      for (const p of r.partners) r.coordinator.acceptAdvertise(p.advertise());
      const roster = r.coordinator.closeAdvertise();
      for (const p of r.partners) r.coordinator.acceptShares(await p.onRoster(roster));
      r.coordinator.closeShares();
      const encoded = r.partners.map((_, i) => encodeValues(r.config.encoding, { update: new Float64Array(50).fill(i / 8) }));
      // Partner 0 restarts from its snapshot after sharing.
      const restarted = SecaggPartner.restore(
        { config: r.config, identity: people.find((x) => keyId(x.signPublicKey) === r.at(0).id)!, partners: r.publics, coordinatorSignPublicKey: COORD_KEY },
        JSON.parse(JSON.stringify(r.at(0).snapshot())),
      );
      const live = r.ids.map((id, i) => (i === 0 ? restarted : r.byId.get(id)!));
      live.forEach((p) => {
        const i = r.partners.indexOf(r.byId.get(p.id)!);
        const { message, blob } = p.onInbox(r.coordinator.inboxFor(p.id), encoded[i], (m) => bfv.cipher.encryptResidues(m));
        r.coordinator.acceptMasked(message, sha(blob!));
        r.agg.add(blob!);
      });
      const survivors = r.coordinator.closeUpload();
      for (const p of live) r.coordinator.acceptConsistency(p.onSurvivors(survivors));
      const unmask = r.coordinator.closeConsistency();
      for (const p of live) r.coordinator.acceptReveal(p.onUnmask(unmask));
      const evidence = r.coordinator.closeUnmask();
      const residues = bfv.cipher.decryptResidues(r.agg.toBytes(), r.config.encoding.totalSlots);
      const out = await unmaskAggregate({ config: r.config, partners: r.publics, coordinatorSignPublicKey: COORD_KEY, evidence, residues, sumSummands: 4 });
      const t = bfv.ctx.plainModulus;
      for (let i = 0; i < 50; i++) expect(out.residues[i]).toBe(encoded.reduce((a, e) => (a + e[i]) % t, 0));
    } finally {
      r.agg.dispose();
    }
  });
});
