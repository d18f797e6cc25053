import { defaultSecaggSpec } from '../../src/federation/secagg/spec.ts';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, publicIdentity, writeIdentityFile, type Identity } from '../../src/crypto/identity.ts';
import { BUNDLED_DATASETS, type BundledDatasetName } from '../../src/data/bundled.ts';
import { FedmarkError } from '../../src/errors.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, type JobManifest } from '../../src/federation/manifest.ts';
import { type AnyWorkload, type PrivacyPlan } from '../../src/federation/workload.ts';
import { builtinWorkloads } from '../../src/federation/workloads/index.ts';
import { planDp } from '../../src/federation/workloads/sgd/index.ts';
import { formatReleaseCosts, releaseCosts } from '../../src/federation/release-cost.ts';
import { jobManifestFor, parseModelOption } from '../job-model.ts';
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
  workload: AnyWorkload;
  plan: PrivacyPlan | null;
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
  if (full.n !== raw.rows.length)
    throw new FedmarkError('DEMO_DATA', `bundled ${datasetName}: ${raw.rows.length - full.n} rows failed to load; see the loader's report`);
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
  const preset = jobManifestFor(parseModelOption(o.model), {
    jobId,
    purpose: datasetName === 'bank-marketing' ? 'propensity-model' : 'churn-model',
    schema,
    partners: o.partners,
    rounds: o.rounds,
    epsilon: o.epsilon,
    encryption: o.insecurePlaintext ? { scheme: 'plain-insecure' } : o.masked ? defaultSecaggSpec() : undefined,
    seed: o.seed,
  });
  const manifest: JobManifest = parseManifest({
    ...preset,
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: new Date().toISOString(),
    owner: publicIdentity(owner),
    partners: ids.map(publicIdentity),
  });
  const workload = builtinWorkloads.resolve(manifest);
  const plan = workload.privacy(manifest);
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
  if (o.insecurePlaintext)
    say('[fedmark] WARNING: --insecure-plaintext: updates are aggregated in PLAINTEXT; the coordinator can read every update. Benchmarks only.');
  say(
    `[fedmark] ${datasetName}: ${full.n} rows → ${o.partners} partners (Dirichlet α=${o.alpha}): ${parts.map((p) => p.length).join(', ')} rows; artifacts in ${out}`,
  );
  const sgd = manifest.workload.kind === 'sgd' ? planDp(manifest) : null;
  if (sgd) {
    say(
      `[fedmark] DP-SGD: target ε=${sgd.targetEpsilon}, δ=${sgd.delta}, q=${sgd.samplingRate}, ${sgd.stepsPerRound} steps/round → σ=${sgd.noiseMultiplier.toFixed(4)}, C=${sgd.clipNorm}`,
    );
    const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
    say(
      `[fedmark] budget split (share of the Rényi divergence at order ${sgd.split.order}): training ${pct(sgd.split.training)}, weight ${pct(sgd.split.weight)}, evaluation ${pct(sgd.split.evaluation)}`,
    );
  } else if (plan) say(`[fedmark] ${manifest.workload.kind}: target ε=${plan.targetEpsilon}, δ=${plan.delta} over ${workload.totalRounds(manifest)} rounds`);
  const cost = plan ? releaseCosts(workload, manifest) : null;
  if (cost) say(formatReleaseCosts(cost));
  return { datasetName, names, splits, owner, coordinatorKeyId: publicIdentity(coordinator).keyId, manifest, workload, plan };
}
