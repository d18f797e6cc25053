import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, publicIdentity, writeIdentityFile, type Identity } from '../../src/crypto/identity.ts';
import { BUNDLED_DATASETS, type BundledDatasetName } from '../../src/data/bundled.ts';
import { FedmarkError } from '../../src/errors.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, type JobManifest } from '../../src/federation/manifest.ts';
import { planDp, sgdWorkload, type DpPlan } from '../../src/federation/workloads/sgd/index.ts';
import { formatReleaseCosts, releaseCosts } from '../../src/federation/release-cost.ts';
import { bundledPartners } from '../partner-data.ts';
import type { DemoOptions } from '../demo.ts';

export interface DemoSetup {
  datasetName: BundledDatasetName;
  names: string[];
  splits: Awaited<ReturnType<typeof bundledPartners>>['splits'];
  owner: Identity;
  /** Key id of the coordinator's identity (created here, in <out>/coordinator): partners and the owner pin it. */
  coordinatorKeyId: string;
  manifest: JobManifest;
  plan: DpPlan | null;
}

/** Raw data lines of a bundled CSV by data-row index (the files hold no quoted newlines). */
function rawLines(csvPath: string): { header: string; rows: string[]; eol: string } {
  const text = readFileSync(csvPath, 'utf8');
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(eol);
  if (lines[lines.length - 1] === '') lines.pop();
  return { header: lines[0], rows: lines.slice(1), eol };
}

/**
 * Stage 1: split the bundled data across partners (non-IID label skew), write each partner's own
 * CSV, identity and policy, and the job manifest the owner will sign.
 */
export async function setUpDemo(o: DemoOptions, datasetName: BundledDatasetName, out: string, say: (line: string) => void): Promise<DemoSetup> {
  const bundled = BUNDLED_DATASETS[datasetName];
  const { schema, full, parts, names, splits } = await bundledPartners(datasetName, o.partners, o.alpha, o.seed);
  const raw = rawLines(bundled.csv);
  if (full.n !== raw.rows.length) throw new FedmarkError('DEMO_DATA', `bundled ${datasetName}: ${raw.rows.length - full.n} rows failed to load; see the loader's report`);
  const owner = generateIdentity('data-scientist');
  await writeIdentityFile(join(out, 'keys', 'owner.json'), owner, { force: true });
  // The coordinator's identity is made before it starts (it loads <data-dir>/coordinator.key.json), so every node can pin it.
  const coordinator = generateIdentity('coordinator');
  mkdirSync(join(out, 'coordinator'), { recursive: true });
  await writeIdentityFile(join(out, 'coordinator', 'coordinator.key.json'), coordinator, { force: true });
  const ids: Identity[] = [];
  for (const [i, idx] of parts.entries()) {
    const dir = join(out, 'partners', names[i]);
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(join(dir, 'data.csv'), [raw.header, ...Array.from(idx, (r) => raw.rows[r])].join(raw.eol) + raw.eol);
    const id = generateIdentity(names[i]);
    ids.push(id);
    await writeIdentityFile(join(out, 'keys', `${names[i]}.json`), id, { force: true });
  }
  const jobId = `${datasetName}-${Date.now().toString(36)}`;
  const preset = jobPreset({
    jobId,
    purpose: datasetName === 'bank-marketing' ? 'propensity-model' : 'churn-model',
    schema,
    partners: o.partners,
    rounds: o.rounds,
    model: o.model === 'mlp' ? { kind: 'mlp', hidden: [16], activation: 'relu' } : { kind: 'logistic' },
    epsilon: o.epsilon,
    encryption: o.insecurePlaintext ? { scheme: 'plain-insecure' } : undefined,
    seed: o.seed,
  });
  const manifest: JobManifest = parseManifest({ ...preset, schemaVersion: MANIFEST_SCHEMA_VERSION, createdAt: new Date().toISOString(), owner: publicIdentity(owner), partners: ids.map(publicIdentity) });
  const plan = planDp(manifest);
  for (const [i] of parts.entries()) {
    writeFileSync(
      join(out, 'partners', names[i], 'policy.json'),
      JSON.stringify(
        {
          partner: names[i],
          datasetId: `${datasetName}:${names[i]}`,
          maxEpsilonPerJob: plan ? plan.targetEpsilon : 10,
          lifetimeEpsilon: 10,
          maxDelta: 1e-5,
          allowedColumns: manifest.dataset.columns,
          allowedPurposes: [manifest.purpose],
          allowNonPrivateJobs: !plan,
          trustedOwnerKeyIds: [publicIdentity(owner).keyId],
          ...(o.insecurePlaintext ? { allowPlaintextAggregation: true } : {}),
        },
        null,
        2,
      ),
    );
  }
  if (o.insecurePlaintext) say('[fedmark] WARNING: --insecure-plaintext: updates are aggregated in PLAINTEXT; the coordinator can read every update. Benchmarks only.');
  say(`[fedmark] ${datasetName}: ${full.n} rows → ${o.partners} partners (Dirichlet α=${o.alpha}): ${parts.map((p) => p.length).join(', ')} rows; artifacts in ${out}`);
  if (plan) {
    say(`[fedmark] DP-SGD: target ε=${plan.targetEpsilon}, δ=${plan.delta}, q=${plan.samplingRate}, ${plan.stepsPerRound} steps/round → σ=${plan.noiseMultiplier.toFixed(4)}, C=${plan.clipNorm}`);
    say(formatReleaseCosts(releaseCosts(sgdWorkload, manifest)!));
    const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
    say(`[fedmark] budget split (share of the Rényi divergence at order ${plan.split.order}): training ${pct(plan.split.training)}, weight ${pct(plan.split.weight)}, evaluation ${pct(plan.split.evaluation)}`);
  }
  return { datasetName, names, splits, owner, coordinatorKeyId: publicIdentity(coordinator).keyId, manifest, plan };
}
