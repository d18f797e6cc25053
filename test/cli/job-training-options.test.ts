import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NON_PRIVATE_TRAINING } from '../../src/federation/job-presets.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';

/**
 * `fedmark job run` exposes local training: the options land in the manifest partners review, a job
 * without DP gets the non-private defaults (not DP-SGD's batch size), DP-only settings are refused on
 * a job without DP, and a bad value is named.
 */
const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const schema = fileURLToPath(new URL('../../data/telco-churn.schema.json', import.meta.url));
const fedmark = (...args: string[]) => spawnSync(process.execPath, [tsx, main, ...args], { encoding: 'utf8', timeout: 60_000 });

let dir: string;
let common: string[];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedmark-job-options-'));
  for (const name of ['owner', 'p1', 'p2']) {
    const r = fedmark('keys', 'init', '--out', join(dir, `${name}.key.json`), '--name', name);
    expect(r.status, r.stderr).toBe(0);
    // keys init prints the public identity; the job names its partners by it.
    if (name !== 'owner') writeFileSync(join(dir, `${name}.pub.json`), r.stdout);
  }
  common = [
    'job',
    'run',
    '--coordinator',
    'http://127.0.0.1:1',
    '--identity',
    join(dir, 'owner.key.json'),
    '--job',
    'options-job',
    '--schema',
    schema,
    '--partner',
    join(dir, 'p1.pub.json'),
    join(dir, 'p2.pub.json'),
    '--manifest-only',
  ];
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function manifestOf(out: string): JobManifest {
  return JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as JobManifest;
}

describe('fedmark job run: local-training options', () => {
  it('a job without DP gets the non-private defaults; the options override them', () => {
    const plain = join(dir, 'plain');
    let r = fedmark(...common, '--no-dp', '--out', plain);
    expect(r.status, r.stderr).toBe(0);
    expect(manifestOf(plain).dp).toBeNull();
    expect(manifestOf(plain).localTraining).toEqual(NON_PRIVATE_TRAINING);

    const tuned = join(dir, 'tuned');
    r = fedmark(...common, '--no-dp', '--epochs', '3', '--batch-size', '16', '--learning-rate', '0.05', '--optimizer', 'adam', '--l2', '0.001', '--out', tuned);
    expect(r.status, r.stderr).toBe(0);
    expect(manifestOf(tuned).localTraining).toEqual({ epochs: 3, batchSize: 16, learningRate: 0.05, optimizer: 'adam', l2: 0.001 });
  }, 60_000);

  it('a DP job takes the DP-SGD settings into the manifest', () => {
    const out = join(dir, 'dp');
    const r = fedmark(...common, '--epsilon', '2', '--sampling-rate', '0.05', '--clip-norm', '0.5', '--batch-size', '256', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const m = manifestOf(out);
    expect(m.localTraining).toMatchObject({ samplingRate: 0.05, batchSize: 256 });
    expect(m.dp).toMatchObject({ targetEpsilon: 2, clipNorm: 0.5 });
  }, 60_000);

  it('refuses DP-only settings without DP, and names a bad value', () => {
    let r = fedmark(...common, '--no-dp', '--clip-norm', '1', '--out', join(dir, 'x'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--sampling-rate and --clip-norm are DP-SGD settings/);
    r = fedmark(...common, '--no-dp', '--batch-size', 'lots', '--out', join(dir, 'y'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--batch-size must be a number, got "lots"/);
    r = fedmark(...common, '--no-dp', '--optimizer', 'rmsprop', '--out', join(dir, 'z'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--optimizer must be sgd, momentum or adam, got "rmsprop"/);
    r = fedmark(...common, '--no-dp', '--epochs', '1.5', '--out', join(dir, 'w'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/epochs/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it('--round-deadline and --quorum go into the manifest, checked by its schema (issue 19 item 8)', () => {
    const out = join(dir, 'rounds');
    let r = fedmark(...common, '--no-dp', '--round-deadline', '30', '--quorum', '2', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(manifestOf(out)).toMatchObject({ roundDeadlineSeconds: 30, quorum: 2 });
    r = fedmark(...common, '--no-dp', '--quorum', '3', '--out', join(dir, 'q3'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/quorum \(3\) exceeds partnersPerRound \(2\)/);
    r = fedmark(...common, '--no-dp', '--round-deadline', '-5', '--out', join(dir, 'dl'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/roundDeadlineSeconds/);
    r = fedmark(...common, '--no-dp', '--quorum', 'most', '--out', join(dir, 'qm'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--quorum must be a number, got "most"/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});
