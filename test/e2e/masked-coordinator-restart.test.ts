import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildCoordinator } from '../../coordinator/server.ts';
import { SecaggStore } from '../../coordinator/secagg-store.ts';
import { parseManifest, signManifest } from '../../src/federation/manifest.ts';
import { defaultSecaggSpec } from '../../src/federation/secagg/spec.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { deterministicIdentity, makeJob, runFederation, telcoPartners } from '../helpers/partners.ts';

/**
 * The coordinator stops in the middle of a masked attempt (after the share stage closed) and a new
 * process starts on the same data dir and port: it replays the stage log into the same machine, its
 * views are the same signed bytes (a partner would refuse a second, different roster or inbox as
 * equivocation), and the attempt completes without a retry — with the final model of the same job
 * run without the restart (the stochastic rounding's bits are seeded: secagg/round-config.ts).
 */
describe('masked aggregation: a coordinator restart mid-attempt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmark-masked-restart-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const owner = deterministicIdentity('owner', 'masked-restart-owner');
  const identities = ['a', 'b', 'c'].map((n) => deterministicIdentity(n, `masked-restart-${n}`));
  const job = async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 200 });
    const { manifest: m0 } = makeJob({ jobId: 'masked-coord-restart', schema, owner, partners: identities, rounds: 1, encryption: defaultSecaggSpec() });
    const manifest = parseManifest({ ...m0, createdAt: '2026-01-01T00:00:00.000Z', roundDeadlineSeconds: 60 });
    return { manifest, signed: signManifest(manifest, owner), schemaHash, parts };
  };
  let reference: string | null = null;

  it('uninterrupted reference run', async () => {
    const { signed, schemaHash, parts } = await job();
    const built = await buildCoordinator({ dataDir: join(dir, 'reference'), logger: pino({ level: 'silent' }), tickMs: 50 });
    const url = await built.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const r = await runFederation({ url, owner, identities, signed, parts, schemaHash, stateDir: join(dir, 'reference-nodes'), timeoutMs: 150_000 });
      expect(r.owner.state).toBe('completed');
      reference = r.owner.modelHash;
    } finally {
      await built.app.close();
    }
  }, 180_000);

  it('resumes the same attempt from its stage log; the nodes finish with the model of the uninterrupted run', async () => {
    const dataDir = join(dir, 'coordinator');
    const logger = pino({ level: 'info' }, pino.destination({ dest: join(dir, 'coordinator.log'), sync: true }));
    let built = await buildCoordinator({ dataDir, logger, tickMs: 50 });
    const url = await built.app.listen({ host: '127.0.0.1', port: 0 });
    const { manifest, signed, schemaHash, parts } = await job();
    const run = runFederation({ url, owner, identities, signed, parts, schemaHash, stateDir: join(dir, 'nodes'), timeoutMs: 150_000 });
    const failed = run.then(
      () => null,
      (err: unknown) => err,
    );
    const sharesClosed = () => new SecaggStore(built.store.db).event(manifest.jobId, 1, 0, 'close-shares', '');
    for (let i = 0; i < 1200 && !sharesClosed(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(sharesClosed()).toBeDefined();
    // Stopped mid-attempt: the unmask stage has not closed (the partners are still training and uploading).
    const doneBeforeStop = new SecaggStore(built.store.db).event(manifest.jobId, 1, 0, 'close-unmask', '');
    await built.app.close();
    await new Promise((r) => setTimeout(r, 500));
    built = await buildCoordinator({ dataDir, logger, tickMs: 50 });
    await built.app.listen({ host: '127.0.0.1', port: Number(new URL(url).port) });
    try {
      expect(doneBeforeStop).toBeUndefined();
      expect(await failed).toBeNull();
      const r = await run;
      expect(r.owner.state).toBe('completed');
      for (const n of r.nodes) expect(n.modelHash).toBe(r.owner.modelHash);
      expect(reference).not.toBeNull();
      expect(r.owner.modelHash).toBe(reference);
      const entries = readLedger(join(dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`)).entries;
      expect(entries.filter((e) => e.type === 'attempt.failed')).toHaveLength(0);
      const round1 = entries.find((e) => e.type === 'round' && (e.payload as { round: number }).round === 1)!;
      expect(round1.payload).toMatchObject({ attempt: 0 });
      expect((round1.payload as { submitted: string[] }).submitted).toHaveLength(3);
    } finally {
      await built.app.close();
    }
  }, 180_000);
});
