import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity } from '../../../src/crypto/identity.ts';
import { composedEpsilon } from '../../../src/privacy/accountant.ts';
import { auditLedgers } from '../../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../../src/privacy/ledger/reader.ts';
import { normaliseId } from '../../../src/vertical/psi/normalise.ts';
import { psiSpecOf } from '../../../src/vertical/jobs/psi-workload.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';
import { orderedValues, plainIntersection } from '../psi/helpers.ts';
import { runPsiJob, tempDir } from './helpers.ts';

let coord: TestCoordinator;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  coord = await startTestCoordinator({ tickMs: 40 });
  tmp = tempDir('fedmark-psi-http-');
});
afterAll(async () => {
  await coord?.close();
  tmp?.cleanup();
});

const lists = [
  ['Ann@Example.com', 'bob@example.com', ' carol@example.com ', 'dave@example.com', 'bob@example.com', 'not-an-email', 'erin@example.com'],
  ['BOB@example.com', 'carol@EXAMPLE.com', 'frank@example.com', 'ann@example.com', 'ann@example.com '],
  ['carol@example.com', 'ann@example.com', 'bob@example.com', 'zed@example.com'],
];

describe('PSI as a job kind over the real coordinator and partner nodes', () => {
  it('three parties: the plaintext intersection (duplicates, case and whitespace variants), one common order, both ledgers, a clean audit', async () => {
    const parties = ['bank', 'telco', 'retailer'].map((n) => generateIdentity(n));
    const run = await runPsiJob({ url: coord.url, jobId: 'psi-http-3', parties, ids: lists, dir: tmp.dir });
    expect(run.owner.state).toBe('completed');
    const spec = psiSpecOf(run.manifest);
    const want = plainIntersection(spec, lists);
    expect(want).toEqual(['ann@example.com', 'bob@example.com', 'carol@example.com']);
    const orders = run.nodes.map((n) => orderedValues(n.outcome!));
    for (const o of orders) expect([...o].sort()).toEqual(want);
    expect(orders[1]).toEqual(orders[0]);
    expect(orders[2]).toEqual(orders[0]);
    // Each party knows which of its own rows are in: every row carrying a common id, duplicates included.
    const own = (i: number) =>
      lists[i]
        .map((v, r) => [r, normaliseId(v, spec.id.rules)] as const)
        .filter(([, n]) => n.ok && want.includes((n as { value: string }).value))
        .map(([r]) => r);
    run.nodes.forEach((n, i) => expect(n.alignment!.flat().sort((a, b) => a - b)).toEqual(own(i)));
    // The alignment file holds only the party's own rows and ids.
    const file = readFileSync(run.nodes[1].outPath!, 'utf8');
    expect(file).toContain('position,row,id');
    expect(file).not.toContain('dave');
    expect(file).not.toContain('zed');

    const jobLedger = coord.engine.ledgerPath('psi-http-3');
    const entries = readLedger(jobLedger).entries;
    const types = entries.map((e) => e.type);
    expect(types.filter((t) => t === 'psi.full')).toHaveLength(3);
    expect(types).toContain('psi.job');
    const inter = entries.find((e) => e.type === 'psi.intersection')!.payload as {
      intersectionSize: number;
      receiptsAgreed: boolean;
      perParty: { listCount: number }[];
    };
    expect(inter.intersectionSize).toBe(3);
    expect(inter.receiptsAgreed).toBe(true);
    // Padded: every list the others and the coordinator saw has the cap's length, never the real set size.
    expect(inter.perParty.every((p) => p.listCount === 64)).toBe(true);
    expect(types.filter((t) => t === 'relay.round')).toHaveLength(run.manifest.rounds);
    const partnerLedgers = parties.map((p) => join(tmp.dir, `psi-http-3-${p.name}`, 'partner.ledger.jsonl'));
    const mine = readLedger(partnerLedgers[0]).entries;
    const list = mine.find((e) => e.type === 'psi.party.list')!.payload as {
      distinctIds: number;
      releasedCount: number;
      invalidRows: number;
      duplicateRows: number;
    };
    expect(list).toMatchObject({ distinctIds: 5, releasedCount: 64, invalidRows: 1, duplicateRows: 1 });
    expect(mine.some((e) => e.type === 'psi.party.result')).toBe(true);
    const audit = auditLedgers({ coordinator: jobLedger, partners: partnerLedgers, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(audit.ok).toBe(true);
  }, 90_000);

  it('two parties one of which brings an empty set: an empty intersection, agreed by both', async () => {
    const parties = ['bank', 'telco'].map((n) => generateIdentity(n));
    const run = await runPsiJob({ url: coord.url, jobId: 'psi-http-empty', parties, ids: [lists[0], []], dir: tmp.dir, maxSetSize: 16 });
    expect(run.owner.state).toBe('completed');
    expect(run.nodes.map((n) => n.outcome!.intersectionSize)).toEqual([0, 0]);
    expect(run.nodes[0].outcome!.orderDigest).toBe(run.nodes[1].outcome!.orderDigest);
  }, 60_000);
});
