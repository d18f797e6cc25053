/** Shared fixtures of the scoring tests: a customer file, a saved model, a partner's policy and identity. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { featureCount, featureNames, loadSchema, type DatasetSchema } from '../../src/data/schema.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { initParameters } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { saveModel } from '../../src/model/tfjs-io.ts';
import { writeIdentityFile, publicIdentity } from '../../src/crypto/identity.ts';
import { createRng } from '../../src/util/rng.ts';
import { deterministicIdentity } from '../helpers/identities.ts';

export const SCHEMA_PATH = fileURLToPath(new URL('./fixtures/campaign.schema.json', import.meta.url));
export const PURPOSE = 'churn-retention';

export function fixtureSchema(): Promise<DatasetSchema> {
  return loadSchema(SCHEMA_PATH);
}

export type Customer = Record<string, string>;

const COLUMNS = ['customer', 'consent', 'tenure', 'monthly', 'balance', 'contract', 'plan', 'paperless', 'gender', 'age', 'clv', 'offer', 'churned'];

/**
 * n customers with seeded values. About 10 % have consent "no"; a few have a blank monthly charge
 * (imputed as the minimum); offers rise with tenure when `loyaltyPenalty` > 0.
 */
export function makeCustomers(n: number, seed = 1, o: { loyaltyPenalty?: number; noConsentShare?: number } = {}): Customer[] {
  const rng = createRng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)];
  const out: Customer[] = [];
  for (let i = 0; i < n; i++) {
    const tenure = rng.int(73);
    const monthly = Math.round((20 + rng.next() * 150) * 100) / 100;
    const price = 30 + 20 * rng.next() + (o.loyaltyPenalty ?? 0) * (tenure / 72);
    out.push({
      customer: `C-${String(i).padStart(6, '0')}`,
      consent: rng.next() < (o.noConsentShare ?? 0.1) ? 'no' : 'yes',
      tenure: String(tenure),
      monthly: i % 97 === 5 ? '' : String(monthly),
      balance: String(Math.round((rng.next() * 2 - 0.04) * 20000)),
      contract: pick(['monthly', 'yearly', 'two-year']),
      plan: pick(['basic', 'plus', 'max']),
      paperless: pick(['Yes', 'No']),
      gender: pick(['F', 'M']),
      age: String(18 + rng.int(70)),
      clv: String(Math.round(100 + rng.next() * 5000)),
      offer: price.toFixed(2),
      churned: rng.next() < 0.3 ? '1' : '0',
    });
  }
  return out;
}

const quote = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

export function toCsv(rows: Customer[], o: { label?: boolean; columns?: string[] } = {}): string {
  const cols = (o.columns ?? COLUMNS).filter((c) => o.label !== false || c !== 'churned');
  return [cols.join(','), ...rows.map((r) => cols.map((c) => quote(r[c] ?? '')).join(','))].join('\n') + '\n';
}

export function tempDir(prefix = 'fedmark-scoring-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Seeded, non-trivial parameters (not a trained model: every feature matters, both signs). */
export function fixtureParams(spec: ModelSpec, d: number, seed = 3): Float64Array {
  const p = initParameters(spec, d, seed);
  const rng = createRng(seed + 100);
  for (let i = 0; i < p.length; i++) p[i] = spec.kind === 'logistic' ? (rng.next() * 2 - 1) * 1.5 : p[i] * 2 + (rng.next() - 0.5) * 0.2;
  return p;
}

export async function saveFixtureModel(
  dir: string,
  schema: DatasetSchema,
  spec: ModelSpec = { kind: 'logistic' },
  o: { seed?: number; metadata?: Record<string, unknown> } = {},
): Promise<Float64Array> {
  const d = featureCount(schema);
  const params = fixtureParams(spec, d, o.seed);
  await saveModel(dir, spec, d, params, {
    jobId: 'churn-2026q1',
    purpose: PURPOSE,
    schemaHash: schemaHash(schema),
    featureNames: featureNames(schema),
    ...o.metadata,
  });
  return params;
}

/** A partner's identity file and policy file in `dir`. */
export function partnerFiles(dir: string, name = 'telco-north', o: { purposes?: string[]; columns?: string[] } = {}) {
  const identity = deterministicIdentity(name);
  const identityFile = join(dir, `${name}.key.json`);
  writeIdentityFile(identityFile, identity, { force: true });
  const policyFile = join(dir, `${name}.policy.json`);
  writeFileSync(
    policyFile,
    JSON.stringify({
      partner: name,
      datasetId: `${name}-customers`,
      maxEpsilonPerJob: 2,
      lifetimeEpsilon: 5,
      maxDelta: 1e-5,
      allowedColumns: o.columns ?? ['tenure', 'monthly', 'balance', 'contract', 'plan', 'paperless', 'clv', 'offer', 'churned'],
      allowedPurposes: o.purposes ?? [PURPOSE],
    }),
  );
  mkdirSync(join(dir, `${name}-state`), { recursive: true });
  const publicFile = join(dir, `${name}.pub.json`);
  writeFileSync(publicFile, JSON.stringify(publicIdentity(identity)));
  return { identity, identityFile, policyFile, publicFile, stateDir: join(dir, `${name}-state`), ledger: join(dir, `${name}-state`, `${name}.ledger.jsonl`) };
}

/** The options naming the partner's purpose, policy, identity and state directory, as `score` and `serve` take them. */
export function partnerArgs(p: ReturnType<typeof partnerFiles>, purpose = PURPOSE): string[] {
  return ['--purpose', purpose, '--policy', p.policyFile, '--identity', p.identityFile, '--state-dir', p.stateDir];
}

/** Runs the fedmark CLI to completion. */
export { runCli as fedmark } from '../helpers/cli-process.ts';

export const MAIN_TS = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
