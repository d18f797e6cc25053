import { afterAll, describe, expect, it } from 'vitest';
import { runInMemoryPsi } from '../../../src/vertical/psi/driver.ts';
import { NativeEngine } from '../../../src/vertical/psi/engine.ts';
import { NobleEngine } from '../../../src/vertical/psi/noble-engine.ts';
import { alignedRows } from '../../../src/vertical/psi/party.ts';
import { psiJobEntry, psiLedgerSchemas } from '../../../src/vertical/psi/ledger.ts';
import { identities, makeSpec, orderedValues, plainIntersection } from './helpers.ts';

const engine = new NativeEngine({ threads: 2, batchSize: 8 });
afterAll(() => engine.close());

const bank = [
  'Alice@Example.com',
  '  bob@example.com ',
  'carol@example.com',
  'ALICE@example.COM', // duplicate of row 0 after normalisation
  'dave@example.com',
  'not-an-email',
  'erin@exämple.com',
];
const telco = ['alice@example.com', 'dave@EXAMPLE.com', 'frank@example.com', 'bob@example.com', 'erin@xn--exmple-cua.com', 'bob@example.com '];
const retailer = ['bob@example.com', 'alice@example.com', 'zoe@example.com', 'erin@EXÄMPLE.com', 'carol@example.com'];

describe('ring ECDH-PSI in memory', () => {
  it('two parties: the result is the plaintext intersection, in one common order, with every duplicate row aligned', async () => {
    const ids = identities(2);
    const spec = makeSpec(ids);
    const run = await runInMemoryPsi({
      spec,
      parties: [
        { identity: ids.parties[0], ids: bank },
        { identity: ids.parties[1], ids: telco },
      ],
      coordinator: ids.coordinator,
      engine,
    });
    const expected = plainIntersection(spec, [bank, telco]);
    expect(expected).toEqual(['alice@example.com', 'bob@example.com', 'dave@example.com', 'erin@xn--exmple-cua.com']);
    const [a, b] = run.outcomes;
    expect([...orderedValues(a)].sort()).toEqual(expected);
    expect(orderedValues(a)).toEqual(orderedValues(b));
    expect(a.orderDigest).toBe(b.orderDigest);
    // Row alignment: alice is rows 0 and 3 at the bank; bob is rows 3 and 5 at the telco.
    const aliceAt = orderedValues(a).indexOf('alice@example.com');
    expect(alignedRows(a)[aliceAt]).toEqual([0, 3]);
    const bobAt = orderedValues(b).indexOf('bob@example.com');
    expect(alignedRows(b)[bobAt]).toEqual([3, 5]);
    expect(a.elements.invalidRows).toBe(1);
  });

  it('three parties (native pool for two, the noble reference for the third) agree with the plaintext intersection', async () => {
    const ids = identities(3);
    const spec = makeSpec(ids);
    const run = await runInMemoryPsi({
      spec,
      parties: [
        { identity: ids.parties[0], ids: bank },
        { identity: ids.parties[1], ids: telco, engine: new NobleEngine() },
        { identity: ids.parties[2], ids: retailer },
      ],
      coordinator: ids.coordinator,
      engine,
    });
    const expected = plainIntersection(spec, [bank, telco, retailer]);
    expect(expected).toEqual(['alice@example.com', 'bob@example.com', 'erin@xn--exmple-cua.com']);
    for (const o of run.outcomes) expect(orderedValues(o)).toEqual(orderedValues(run.outcomes[0]));
    expect([...orderedValues(run.outcomes[0])].sort()).toEqual(expected);
    expect(run.coordinator.intersection()?.intersectionSize).toBe(3);
    // The order is the same for any ring member's view and is not the input order of anyone.
    expect(run.outcomes.map((o) => o.intersectionSize)).toEqual([3, 3, 3]);
  });

  it('the RFC 9380 suite on the noble reference gives the same membership as the fast path', async () => {
    const ids = identities(3);
    const fast = await runInMemoryPsi({
      spec: makeSpec(ids),
      parties: [bank, telco, retailer].map((l, i) => ({ identity: ids.parties[i], ids: l })),
      coordinator: ids.coordinator,
      engine,
    });
    const noble = new NobleEngine();
    const ref = await runInMemoryPsi({
      spec: makeSpec(ids, { suite: 'p256-rfc9380-sswu', jobId: 'psi-test-rfc' }),
      parties: [bank, telco, retailer].map((l, i) => ({ identity: ids.parties[i], ids: l })),
      coordinator: ids.coordinator,
      engine: noble,
    });
    for (let i = 0; i < 3; i++) expect([...orderedValues(ref.outcomes[i])].sort()).toEqual([...orderedValues(fast.outcomes[i])].sort());
  });

  it('phone numbers in national, international and E.164 forms match', async () => {
    const ids = identities(2);
    const spec = makeSpec(ids, { rules: { kind: 'phone', defaultCountryCode: '49' } });
    const a = ['030 1234567', '+49 (30) 7654321', '0049 151 2345678', '0171-1112223', 'call me'];
    const b = ['+49301234567', '030/7654321', '+49 151 234 5678', '+44 20 7946 0000'];
    const run = await runInMemoryPsi({
      spec,
      parties: [
        { identity: ids.parties[0], ids: a },
        { identity: ids.parties[1], ids: b },
      ],
      coordinator: ids.coordinator,
      engine,
    });
    expect([...orderedValues(run.outcomes[0])].sort()).toEqual(['+49151 2345678'.replace(' ', ''), '+49301234567', '+49307654321'].sort());
    expect(orderedValues(run.outcomes[0])).toEqual(orderedValues(run.outcomes[1]));
  });

  it('empty sets and disjoint sets give an empty, agreed intersection', async () => {
    const ids = identities(3);
    for (const lists of [
      [[], ['a@b.cd'], ['a@b.cd']],
      [['a@b.cd'], ['x@y.zz'], ['a@b.cd']],
      [[], [], []],
    ]) {
      const run = await runInMemoryPsi({
        spec: makeSpec(ids),
        parties: lists.map((l, i) => ({ identity: ids.parties[i], ids: l })),
        coordinator: ids.coordinator,
        engine,
      });
      expect(run.outcomes.map((o) => o.intersectionSize)).toEqual([0, 0, 0]);
      expect(new Set(run.outcomes.map((o) => o.orderDigest)).size).toBe(1);
    }
  });

  it('padding: every list has the cap as its length, dummies never match, the result is unchanged', async () => {
    const ids = identities(3);
    const spec = makeSpec(ids, { padToMax: true, maxSetSize: 20 });
    const counts: number[] = [];
    const run = await runInMemoryPsi({
      spec,
      parties: [bank, telco, retailer].map((l, i) => ({ identity: ids.parties[i], ids: l })),
      coordinator: ids.coordinator,
      engine,
      onMessage: (m) => {
        if (m.header.kind === 'psi.list' || m.header.kind === 'psi.full') counts.push(m.header.count);
      },
    });
    expect(counts.length).toBe(9);
    expect(new Set(counts)).toEqual(new Set([20]));
    expect([...orderedValues(run.outcomes[0])].sort()).toEqual(plainIntersection(spec, [bank, telco, retailer]));
    const list = run.parties[0].ledgerEntries()[0];
    expect(list.type).toBe('psi.party.list');
    expect(list.payload).toMatchObject({ distinctIds: 5, releasedCount: 20, dummies: 15, duplicateRows: 1, invalidRows: 1 });
  });

  it('writes ledger proposals that validate and contain no id', async () => {
    const ids = identities(2);
    const run = await runInMemoryPsi({
      spec: makeSpec(ids),
      parties: [
        { identity: ids.parties[0], ids: bank },
        { identity: ids.parties[1], ids: telco },
      ],
      coordinator: ids.coordinator,
      engine,
    });
    const entries = [...run.parties.flatMap((p) => p.ledgerEntries()), ...run.coordinator.ledgerEntries()];
    expect(entries.map((e) => e.type).sort()).toEqual([
      'psi.full',
      'psi.full',
      'psi.intersection',
      'psi.party.hop',
      'psi.party.hop',
      'psi.party.list',
      'psi.party.list',
      'psi.party.result',
      'psi.party.result',
    ]);
    for (const e of entries) expect(psiLedgerSchemas[e.type].safeParse(e.payload).success).toBe(true);
    const text = JSON.stringify(entries).toLowerCase();
    for (const id of [...bank, ...telco]) expect(text).not.toContain(id.trim().toLowerCase());
    expect(psiJobEntry(run.coordinator.spec).payload).toMatchObject({
      hashDomain: 'fedmark-psi-v1|psi-test-1',
      ring: run.parties.map((p) => p.keyId),
      padToMax: false,
    });
    const result = run.parties[0].ledgerEntries().find((e) => e.type === 'psi.party.result')!;
    expect(result.payload).toMatchObject({ intersectionSize: 4, alignedRows: 5 });
  });
});
