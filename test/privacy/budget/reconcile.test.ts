import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateIdentity, keyId } from '../../../src/crypto/identity.ts';
import { FedmarkError } from '../../../src/errors.ts';
import { assertStoreCoversLedger, ledgerCharges, missingCharges, rebuildFromLedger } from '../../../src/privacy/budget/reconcile.ts';
import { BudgetStore } from '../../../src/privacy/budget/store.ts';
import { readLedger } from '../../../src/privacy/ledger/reader.ts';
import { signerFromSecretKey, toBase64 } from '../../../src/privacy/ledger/signing.ts';
import { LedgerWriter } from '../../../src/privacy/ledger/writer.ts';

const DELTA = 1e-5;
const dir = mkdtempSync(join(tmpdir(), 'fedmark-reconcile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const me = generateIdentity('bank-a');
const self = keyId(me.signPublicKey);
let n = 0;

/** A partner ledger recording `rounds` (q, σ, steps per round) of `jobId` as the node writes them. */
function ledgerWith(jobId: string, rounds: { q: number; sigma: number; steps: number }[]): string {
  const path = join(dir, `ledger-${n++}.jsonl`);
  const w = LedgerWriter.open(path, signerFromSecretKey(me.signSecretKey), { sync: false });
  w.append('ledger.genesis', { ledgerId: 'bank-a', role: 'partner', owner: { name: 'bank-a', keyId: self, signPublicKey: toBase64(me.signPublicKey) } });
  rounds.forEach((r, i) =>
    w.append('partner.round', {
      jobId,
      round: i + 1,
      samplingRate: r.q,
      noiseMultiplier: r.sigma,
      clipNorm: 1,
      steps: r.steps,
      delta: DELTA,
      epsilonSpent: 0.1,
      epsilonCumulative: 0.1 * (i + 1),
      ciphertextHashes: [],
    }),
  );
  w.close();
  return path;
}
const store = () => BudgetStore.open(join(dir, `budget-${n++}.json`));

describe('the budget store against the partner ledger', () => {
  it("reads every charged event of the node's own entries, with the round from the enclosing record", () => {
    const path = ledgerWith('job-1', [
      { q: 0.02, sigma: 1.1, steps: 50 },
      { q: 0.02, sigma: 1.1, steps: 50 },
    ]);
    const charges = ledgerCharges(readLedger(path).entries, self);
    expect(charges.map((c) => [c.jobId, c.round, c.noiseMultiplier])).toEqual([
      ['job-1', 1, 1.1],
      ['job-1', 2, 1.1],
    ]);
    // Nested releases (several per round, with labels and attempts) are read the same way.
    const nested = ledgerCharges(
      [
        {
          seq: 5,
          author: self,
          payload: {
            jobId: 'j',
            round: 3,
            attempt: 1,
            releases: [
              { label: 'update', samplingRate: 0.1, noiseMultiplier: 2, steps: 5 },
              { label: 'weight', samplingRate: 1, noiseMultiplier: 9, steps: 1 },
            ],
          },
        } as never,
      ],
      self,
    );
    expect(nested.map((c) => `${c.round}.${c.attempt} ${c.label} σ=${c.noiseMultiplier}`)).toEqual(['3.1 update σ=2', '3.1 weight σ=9']);
    // Version 3: the attempt's partner.release and its partner.round (whose top-level fields repeat
    // the primary release) are one charge per release, not two or three.
    const release = { label: 'update', samplingRate: 0.1, noiseMultiplier: 2, steps: 5, sensitivity: 1 };
    const weight = { label: 'weight', samplingRate: 1, noiseMultiplier: 9, steps: 1, sensitivity: 1 };
    const v3 = ledgerCharges(
      [
        { seq: 6, author: self, payload: { jobId: 'j', round: 4, kind: 'train', attempt: 0, releases: [release, weight], delta: DELTA } },
        {
          seq: 7,
          author: self,
          payload: {
            jobId: 'j',
            round: 4,
            samplingRate: 0.1,
            noiseMultiplier: 2,
            clipNorm: 1,
            steps: 5,
            attempt: 0,
            releases: [release, weight],
            delta: DELTA,
          },
        },
        // A later attempt of the same round with the same event is another charge.
        { seq: 8, author: self, payload: { jobId: 'j', round: 4, kind: 'train', attempt: 1, releases: [release], delta: DELTA } },
      ] as never,
      self,
    );
    expect(v3.map((c) => `${c.round}.${c.attempt} ${c.label} seq ${c.seq}`)).toEqual(['4.0 update seq 6', '4.0 weight seq 6', '4.1 update seq 8']);
    const s3 = store();
    s3.charge('j', 'ds', 4, release, DELTA, 0, 'update');
    s3.charge('j', 'ds', 4, weight, DELTA, 0, 'weight');
    expect(missingCharges(s3, v3).map((c) => `${c.round}.${c.attempt} ${c.label}`)).toEqual(['4.1 update']);
    // Entries written by another key are not this node's charges.
    expect(ledgerCharges(readLedger(path).entries, 'f'.repeat(32))).toEqual([]);
  });

  it('passes a store that holds every charge the ledger records (the store may be ahead: it is charged first)', () => {
    const path = ledgerWith('job-2', [{ q: 0.02, sigma: 1.1, steps: 50 }]);
    const s = store();
    s.charge('job-2', 'ds', 1, { samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 }, DELTA);
    s.charge('job-2', 'ds', 2, { samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 }, DELTA);
    expect(() => assertStoreCoversLedger(s, readLedger(path).entries, self, path)).not.toThrow();
  });

  it('refuses a store that was emptied, and one edited to a lower noise, naming the charges and the way back', () => {
    const path = ledgerWith('job-3', [
      { q: 0.02, sigma: 1.1, steps: 50 },
      { q: 0.02, sigma: 1.1, steps: 50 },
    ]);
    const empty = store();
    let err: unknown;
    try {
      assertStoreCoversLedger(empty, readLedger(path).entries, self, path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FedmarkError);
    expect((err as FedmarkError).code).toBe('BUDGET_BEHIND_LEDGER');
    expect((err as FedmarkError).message).toMatch(/lacks 2 charge\(s\).*job-3 round 1.*fedmark privacy rebuild-budget/);
    const edited = store();
    edited.charge('job-3', 'ds', 1, { samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 }, DELTA);
    edited.charge('job-3', 'ds', 2, { samplingRate: 0.02, noiseMultiplier: 5, steps: 50 }, DELTA);
    expect(missingCharges(edited, ledgerCharges(readLedger(path).entries, self)).map((c) => c.round)).toEqual([2]);
  });

  it('rebuilds a lost store from the ledger, adding what it records and never removing a charge', () => {
    const path = ledgerWith('job-4', [
      { q: 0.02, sigma: 1.1, steps: 50 },
      { q: 0.02, sigma: 1.3, steps: 40 },
    ]);
    const s = store();
    s.charge('job-9', 'ds', 1, { samplingRate: 0.5, noiseMultiplier: 2, steps: 1 }, DELTA);
    const added = rebuildFromLedger(s, readLedger(path).entries, self, 'ds', DELTA);
    expect(added.map((c) => c.round)).toEqual([1, 2]);
    expect(s.charges('job-4').map((c) => [c.round, c.noiseMultiplier, c.steps])).toEqual([
      [1, 1.1, 50],
      [2, 1.3, 40],
    ]);
    expect(s.charges('job-9')).toHaveLength(1);
    expect(() => assertStoreCoversLedger(s, readLedger(path).entries, self, path)).not.toThrow();
    expect(rebuildFromLedger(s, readLedger(path).entries, self, 'ds', DELTA)).toEqual([]);
  });
});
