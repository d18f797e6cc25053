import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { runJobOwner, type OwnerResult } from '../../owner/node.ts';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/index.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import type { EncryptionSpec } from '../../src/federation/manifest.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { ManualPartner, makeIdentities, makeJob, silentLog, TEST_POLL_MS, telcoPartners, waitForStatus, type PartnerData } from '../helpers/partners.ts';
import { isDistinctive, listFiles, scanFiles, vectorNeedles, type Hit, type Needle } from '../helpers/plaintext-scan.ts';

/**
 * Acceptance: after a job, nothing the coordinator wrote — its SQLite database with the WAL and SHM
 * files, and its log — holds any partner's plaintext update or evaluation vector. The partners are
 * driven by hand so the test holds the exact plaintext vectors that each one encrypted.
 */

const ROUNDS = 2;

interface Released {
  partner: string;
  round: number;
  update?: Float64Array;
  evaluation: Float64Array;
}

interface DrivenJob {
  owner: OwnerResult;
  released: Released[];
  /** What the coordinator would hold if it could decrypt: per round, the sums in submission order. */
  sums: { round: number; update?: Float64Array; evaluation: Float64Array }[];
  /** The global model after each training round (the coordinator only ever sees its hash). */
  models: { round: number; params: Float64Array }[];
}

function addInOrder(vectors: Float64Array[]): Float64Array {
  // Same order and operations as the coordinator's plaintext sum, so the control can find it bit for bit.
  const acc = Float64Array.from(vectors[0]);
  for (const v of vectors.slice(1)) for (let i = 0; i < v.length; i++) acc[i] += v[i];
  return acc;
}

/** Runs a whole job: the owner's node concurrently, three hand-driven partners in lock step. */
async function driveJob(coord: TestCoordinator, jobId: string, encryption: EncryptionSpec, schema: DatasetSchema, parts: PartnerData[]): Promise<DrivenJob> {
  const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'retail-c']);
  const { manifest, signed } = makeJob({ jobId, schema, owner, partners: ids, rounds: ROUNDS, encryption, seed: 3 });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`job ${jobId} did not finish in time`)), 45_000);
  const ownerRun = runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed, log: silentLog, pollMs: TEST_POLL_MS, signal: abort.signal });
  // A failing owner (e.g. job creation refused) must end the test with its own error, not a timeout.
  ownerRun.catch((err: unknown) => abort.abort(err));
  const partners: ManualPartner[] = [];
  try {
    for (const [i, id] of ids.entries())
      partners.push(await ManualPartner.join({ url: coord.url, identity: id, jobId, train: parts[i].train, test: parts[i].test, signal: abort.signal }));
    const watcher = new CoordinatorClient(coord.url, owner);
    const released: Released[] = [];
    const sums: DrivenJob['sums'] = [];
    const models: DrivenJob['models'] = [];
    for (let round = 1; round <= manifest.rounds + 1; round++) {
      await waitForStatus(watcher, jobId, (s) => s.round === round && s.roundState === 'open', `round ${round} to open`, { signal: abort.signal });
      const mine: Released[] = [];
      for (const p of partners) {
        const built = await p.build(round);
        await p.submit(round, built.body);
        mine.push({ partner: p.identity.name, round, update: built.update, evaluation: built.evaluation });
      }
      released.push(...mine);
      sums.push({
        round,
        update: round <= manifest.rounds ? addInOrder(mine.map((m) => m.update!)) : undefined,
        evaluation: addInOrder(mine.map((m) => m.evaluation)),
      });
      await waitForStatus(watcher, jobId, (s) => s.closedRounds.includes(round), `round ${round} to close`, { signal: abort.signal });
      if (round <= manifest.rounds) {
        const hashes = new Set<string>();
        for (const p of partners) hashes.add(await p.applyRound(round));
        expect(hashes.size, `partners disagree on the model after round ${round}`).toBe(1);
        models.push({ round, params: Float64Array.from(partners[0].runtime.state.params) });
      }
    }
    const ownerResult = await ownerRun;
    expect(ownerResult.state, ownerResult.reason ?? '').toBe('completed');
    expect(ownerResult.modelHash).toBe(partners[0].runtime.hash);
    // The job really trained: the scan below looks for values that only exist because it did.
    expect(ownerResult.finalMetrics!.auc).toBeGreaterThan(0.6);
    return { owner: ownerResult, released, sums, models };
  } finally {
    clearTimeout(timer);
    abort.abort();
    await ownerRun.catch(() => undefined);
    for (const p of partners) p.dispose();
  }
}

function partnerNeedles(job: DrivenJob): Needle[] {
  return job.released.flatMap((r) => [
    ...(r.update ? vectorNeedles(`${r.partner} round ${r.round} update`, r.update) : []),
    ...vectorNeedles(`${r.partner} round ${r.round} evaluation`, r.evaluation),
  ]);
}

function sumNeedles(job: DrivenJob): Needle[] {
  return job.sums.flatMap((s) => [
    ...(s.update ? vectorNeedles(`round ${s.round} update sum`, s.update) : []),
    ...vectorNeedles(`round ${s.round} evaluation sum`, s.evaluation),
  ]);
}

function describeHits(hits: Hit[]): string {
  return hits
    .slice(0, 10)
    .map((h) => `${h.label} in ${basename(h.file)} at byte ${h.offset}`)
    .join('\n');
}

describe('the coordinator keeps no plaintext of any partner at rest (telco sample, 3 partners, 2 rounds)', () => {
  let schema: DatasetSchema;
  let parts: PartnerData[];
  const coords: TestCoordinator[] = [];

  beforeAll(async () => {
    ({ schema, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300 }));
  });
  afterAll(async () => {
    for (const c of coords) await c.close();
  });

  it('the scanner finds every needle kind in a file that holds the values (positive control)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-scan-control-'));
    try {
      const values = Float64Array.from([0.123456789012, -2.718281828459045, 17.25, 3, 1e-9, 0.000987654321, -41.0000123]);
      const needles = vectorNeedles('control', values);
      // 17.25 is an exact float32 and 3 and 1e-9 are not distinctive: their exclusion is part of the contract.
      expect(needles.some((n) => n.label.startsWith('control[3]') || n.label.startsWith('control[4]'))).toBe(false);
      const f32 = Buffer.from(Float32Array.from(values).buffer);
      const f64 = Buffer.from(values.buffer);
      const text = Array.from(values, (v) => `${v} ${Math.fround(v)} ${v.toFixed(6)}`).join(',');
      // Odd offsets: a leak need not be aligned, and the scanner must not assume it is.
      const file = join(dir, 'leak.bin');
      writeFileSync(
        file,
        Buffer.concat([
          Buffer.from([1, 2, 3]),
          f64,
          Buffer.from([9]),
          f32,
          Buffer.from(` ${text} ${f64.toString('base64')} x${Buffer.concat([Buffer.from([7]), f64]).toString('base64')}`),
        ]),
      );
      const found = new Set(scanFiles([file], needles).map((h) => h.label));
      const missed = needles.filter((n) => !found.has(n.label) && !n.label.includes('base64'));
      expect(missed.map((n) => n.label)).toEqual([]);
      // base64 needles: one alignment per run is present in each of the two encodings written.
      const base64Runs = new Set(needles.filter((n) => n.label.includes('base64') && found.has(n.label)).map((n) => n.label.replace(/ \(alignment \d\)$/, '')));
      expect(base64Runs.size).toBe(needles.filter((n) => n.label.endsWith('(alignment 0)')).length);
      for (const kind of ['float64', 'float32', 'text', 'base64'])
        expect(
          needles.some((n) => n.label.includes(kind) && found.has(n.label)),
          kind,
        ).toBe(true);
      // And a file without the values yields nothing.
      const clean = join(dir, 'clean.bin');
      writeFileSync(clean, Buffer.from(Float64Array.from([0.5, 0.25, 1234.5]).buffer));
      expect(scanFiles([clean], needles)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('after a CKKS job neither the SQLite files (db, WAL, SHM) nor the log hold any partner vector, sum or model', async () => {
    const coord = await startTestCoordinator({ logLevel: 'trace' });
    coords.push(coord);
    const job = await driveJob(coord, 'at-rest-ckks', DEFAULT_HE_PARAMS, schema, parts);

    const needles = [...partnerNeedles(job), ...sumNeedles(job), ...job.models.flatMap((m) => vectorNeedles(`global model after round ${m.round}`, m.params))];
    // Enough values are searched that a leak of any one vector could not slip through for lack of needles.
    const perVector = job.released.filter((r) => r.update).map((r) => Array.from(r.update!).filter(isDistinctive).length);
    expect(Math.min(...perVector)).toBeGreaterThan(30);
    expect(job.released.every((r) => Array.from(r.evaluation).filter(isDistinctive).length >= 1)).toBe(true);
    expect(job.released).toHaveLength(3 * (ROUNDS + 1));

    // While the coordinator runs, recent pages live in the WAL: scan it before a checkpoint folds it away.
    const live = [...listFiles(coord.dataDir), coord.logPath];
    expect(
      live.some((f) => f.endsWith('-wal')),
      `files scanned: ${live.map((f) => basename(f)).join(', ')}`,
    ).toBe(true);
    expect(live.some((f) => f.endsWith('-shm'))).toBe(true);
    const liveHits = scanFiles(live, needles);
    expect(liveHits, `plaintext found while running:\n${describeHits(liveHits)}`).toEqual([]);

    await coord.stop();
    const after = [...listFiles(coord.dataDir), coord.logPath];
    const afterHits = scanFiles(after, needles);
    expect(afterHits, `plaintext found after shutdown:\n${describeHits(afterHits)}`).toEqual([]);
    // The scans covered real content: the database, the job ledger and a log with every request in it.
    expect(after.some((f) => f.endsWith('.sqlite'))).toBe(true);
    expect(after.some((f) => f.includes('ledger'))).toBe(true);
    expect(readFileSync(coord.logPath, 'utf8')).toMatch(/submission accepted/);
  });

  it('control: with plaintext aggregation the same scan does find the round sums in the SQLite files', async () => {
    const coord = await startTestCoordinator({ logLevel: 'trace' });
    coords.push(coord);
    const job = await driveJob(coord, 'at-rest-plain', { scheme: 'plain-insecure' }, schema, parts);
    const needles = sumNeedles(job).filter((n) => n.label.endsWith('as float64'));
    expect(needles.length).toBeGreaterThan(50);
    const found = new Set(scanFiles([...listFiles(coord.dataDir)], needles).map((h) => h.label));
    const missed = needles.filter((n) => !found.has(n.label));
    // The insecure scheme stores each sum as float64 bytes: every value of it must be found, which shows
    // the CKKS scan above was able to see stored plaintext had there been any.
    expect(missed.map((n) => n.label)).toEqual([]);
  });
});
