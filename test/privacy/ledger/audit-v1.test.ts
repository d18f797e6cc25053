import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { composedEpsilon } from '../../../src/privacy/accountant.ts';
import {
  auditLedgers,
  attestPayload,
  entryHash,
  GENESIS_PREV,
  signEntry,
  signerFromSecretKey,
  toBase64,
  verifyLedger,
  type LedgerEntry,
  type LedgerSigner,
  type UnsignedEntry,
} from '../../../src/privacy/ledger/index.ts';

/**
 * Ledger schema 2 renamed the manifest entry's `participants` / `clientsPerRound` to `partners` /
 * `partnersPerRound`. Ledgers written before (schema 1) must still verify and audit: signatures and
 * hashes cover the bytes as written, and the audit reads the old names.
 */
const signer = (name: string): LedgerSigner & { name: string; signPublicKey: Uint8Array } => ({
  ...signerFromSecretKey(nacl.sign.keyPair.fromSeed(createHash('sha256').update(`v1-ledger:${name}`).digest()).secretKey),
  name,
});
const owner = signer('owner');
const coordinator = signer('coordinator');
const bank = signer('bank');
const telco = signer('telco');
const party = (k: { name: string; keyId: string; signPublicKey: Uint8Array }) => ({ name: k.name, keyId: k.keyId, signPublicKey: toBase64(k.signPublicKey) });

function ledger(version: 1 | 2, names: { partners: string; perRound: string }): LedgerEntry[] {
  const entries: LedgerEntry[] = [];
  const push = (author: LedgerSigner, type: string, payload: unknown) => {
    const prev = entries.length ? entryHash(entries[entries.length - 1]) : GENESIS_PREV;
    const unsigned = {
      schemaVersion: version,
      seq: entries.length,
      ts: `2025-06-01T00:00:0${entries.length}.000Z`,
      type,
      author: author.keyId,
      prev,
      payload,
    } as unknown as UnsignedEntry;
    entries.push(signEntry(unsigned, author));
  };
  push(owner, 'job.manifest', {
    jobId: 'old-job',
    owner: party(owner),
    coordinator: party(coordinator),
    [names.partners]: [party(bank), party(telco)],
    purpose: 'churn',
    columns: ['tenure'],
    rounds: 2,
    [names.perRound]: 2,
    quorum: 2,
    dp: null,
  });
  const anchor = entryHash(entries[0]);
  for (const p of [bank, telco])
    push(
      coordinator,
      'partner.acceptance',
      attestPayload({ jobId: 'old-job', partner: p.keyId, manifestHash: anchor, policy: { maxEpsilon: 3, maxDelta: 1e-5 } }, p),
    );
  push(coordinator, 'job.halt', { jobId: 'old-job', reason: 'owner stopped it', afterRound: 0 });
  return entries;
}

describe('ledgers written under schema 1', () => {
  it('verify and audit like the same job written under schema 2', () => {
    const v1 = auditLedgers({ coordinator: ledger(1, { partners: 'participants', perRound: 'clientsPerRound' }), epsilonOf: composedEpsilon });
    const v2 = auditLedgers({ coordinator: ledger(2, { partners: 'partners', perRound: 'partnersPerRound' }), epsilonOf: composedEpsilon });
    expect(v1.findings).toEqual([]);
    expect(v1.ok).toBe(true);
    expect(v1.partners.map((p) => [p.name, p.status])).toEqual([
      ['bank', 'accepted'],
      ['telco', 'accepted'],
    ]);
    expect(v1.partners).toEqual(v2.partners);
    expect(verifyLedger(ledger(1, { partners: 'participants', perRound: 'clientsPerRound' })).keyRing.partners).toEqual([bank.keyId, telco.keyId]);
  });

  it('hold each version to its own names: a schema-1 entry with the new names, or a schema-2 entry with the old ones, is invalid', () => {
    for (const bad of [
      ledger(1, { partners: 'partners', perRound: 'partnersPerRound' }),
      ledger(2, { partners: 'participants', perRound: 'clientsPerRound' }),
    ]) {
      const r = verifyLedger(bad);
      expect(r.ok).toBe(false);
      expect(r.findings.map((f) => f.code)).toContain('NO_TRUST_ANCHOR');
    }
  });
});
