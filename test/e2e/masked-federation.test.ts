import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSecaggSpec } from '../../src/federation/secagg/spec.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { checkSecaggLedger } from '../../src/federation/secagg/ledger-record.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, runFederation, telcoPartners } from '../helpers/partners.ts';

/** Masked aggregation inside BFV as the aggregation of the real federation: coordinator and partner nodes over HTTP. */
describe('masked aggregation (secagg-bfv) in real nodes', () => {
  let coord: TestCoordinator;
  let stateDir: string;

  beforeAll(async () => {
    coord = await startTestCoordinator();
    stateDir = mkdtempSync(join(tmpdir(), 'fedmark-masked-'));
  });
  afterAll(async () => {
    await coord?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('trains a job whose every sum (updates and evaluation histograms) is masked: the nodes agree, the model equals the owner’s, the ledgers audit', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300 });
    const owner = makeIdentities(['owner'])[0];
    const identities = makeIdentities(['bank-a', 'telco-b', 'retail-c']);
    const { manifest, signed } = makeJob({ jobId: 'masked-e2e', schema, owner, partners: identities, rounds: 2, encryption: defaultSecaggSpec() });
    const run = await runFederation({ url: coord.url, owner, identities, signed, parts, schemaHash, stateDir, timeoutMs: 90_000 });
    expect(run.owner.state).toBe('completed');
    for (const n of run.nodes) {
      expect(n.state).toBe('completed');
      expect(n.modelHash).toBe(run.owner.modelHash);
    }
    // Every round's sum is the one masked part, with the attempt's evidence published beside it.
    const client = new CoordinatorClient(coord.url, identities[0]);
    const contents = await client.contents(manifest.jobId, 1);
    expect(contents.secagg).toBeDefined();
    expect((await client.aggregate(manifest.jobId, 1, 'masked')).length).toBeGreaterThan(1000);
    // The final evaluation round's histograms went through the same masked path: the owner read its metrics.
    expect(run.owner.finalMetrics).not.toBeNull();
    // The partners' secagg secrets live in their state dirs, readable by the node's user only.
    const dir = join(stateDir, `${manifest.jobId}-bank-a`, 'secagg', manifest.jobId);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o077).toBe(0);
    const audit = auditLedgers({
      coordinator: join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`),
      partners: identities.map((id) => join(stateDir, `${manifest.jobId}-${id.name}`, 'partner.ledger.jsonl')),
      epsilonOf: composedEpsilon,
    });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);

    // Every round entry records its attempt's secure-aggregation config, and the audit recomputes it
    // from the signed manifest and the selected partners; a record that differs is flagged.
    const entries = readLedger(join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`)).entries;
    const rounds = entries.filter((e) => e.type === 'round');
    expect(rounds).toHaveLength(2);
    for (const e of rounds)
      expect((e.payload as { secagg?: { threshold: number; graph: unknown } }).secagg).toMatchObject({ threshold: 2, graph: { kind: 'complete' } });
    expect(await checkSecaggLedger('job', entries)).toEqual([]);
    const tamper = (edit: (p: { selected: string[]; secagg?: Record<string, unknown> }) => void) =>
      entries.map((e) => {
        if (e !== rounds[0]) return e;
        const copy = structuredClone(e);
        edit(copy.payload as { selected: string[]; secagg?: Record<string, unknown> });
        return copy;
      });
    const codes = async (edit: Parameters<typeof tamper>[0]) => (await checkSecaggLedger('job', tamper(edit))).map((f) => `${f.seq}:${f.code}`);
    const seq = rounds[0].seq;
    expect(await codes((p) => void (p.secagg!.threshold = 3))).toEqual([`${seq}:SECAGG_CONFIG_MISMATCH`]);
    expect(await codes((p) => void (p.selected = p.selected.slice(0, 2)))).toEqual([`${seq}:SECAGG_CONFIG_MISMATCH`]);
    expect(await codes((p) => void delete p.secagg)).toEqual([`${seq}:SECAGG_CONFIG_MISSING`]);
  }, 120_000);
});
