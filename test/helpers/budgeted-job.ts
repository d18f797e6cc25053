/** A small DP job over HTTP in which every partner has its own policy, budget file and ledger. */
import { join } from 'node:path';
import type { JobManifest } from '../../src/federation/manifest.ts';
import type { WorkloadRegistry } from '../../src/federation/workload.ts';
import { PolicyBudgetGuard } from '../../src/privacy/budget/policy-guard.ts';
import { BudgetStore } from '../../src/privacy/budget/store.ts';
import { parsePolicy, type PartnerPolicy } from '../../src/privacy/policy.ts';
import { makeIdentities, runFederation, signJob, type PartnerData } from './partners.ts';

/**
 * For each partner, a budget guard over its own budget file under its own policy (the job's columns
 * and purpose, δ ≤ 1e-5, ε limits from `policy`) and the path of its own ledger, files in `dir`
 * named `<prefix><partner>`; the stores are returned so a test can reopen them and read the charges.
 */
export function partnerBudgets(o: {
  dir: string;
  prefix?: string;
  parts: PartnerData[];
  manifest: JobManifest;
  policy: (i: number) => Pick<PartnerPolicy, 'maxEpsilonPerJob' | 'lifetimeEpsilon'> & Partial<PartnerPolicy>;
}): { stores: BudgetStore[]; ledgers: string[]; guards: PolicyBudgetGuard[] } {
  const file = (p: PartnerData, ext: string) => join(o.dir, `${o.prefix ?? ''}${p.name}.${ext}`);
  const stores = o.parts.map((p) => BudgetStore.open(file(p, 'budget.json')));
  const guards = o.parts.map((p, i) => {
    const policy = parsePolicy({
      partner: p.name,
      datasetId: `${p.name}-customers`,
      maxDelta: 1e-5,
      allowedColumns: o.manifest.dataset.columns,
      allowedPurposes: [o.manifest.purpose],
      ...o.policy(i),
    });
    return new PolicyBudgetGuard(policy, stores[i]);
  });
  return { stores, ledgers: o.parts.map((p) => file(p, 'ledger.jsonl')), guards };
}

/**
 * A job from `preset` (any workload's) run over HTTP by a fresh owner and one node per part, every
 * node with its own policy guard (unless `guarded` is false, for a job without DP) and its own
 * ledger from partnerBudgets; returns what a test checks afterwards.
 */
export async function runBudgetedJob<S, R>(o: {
  url: string;
  dir: string;
  parts: PartnerData[];
  preset: Omit<JobManifest, 'owner' | 'partners' | 'schemaVersion' | 'createdAt'>;
  policy: (i: number) => Pick<PartnerPolicy, 'maxEpsilonPerJob' | 'lifetimeEpsilon'> & Partial<PartnerPolicy>;
  prefix?: string;
  guarded?: boolean;
  timeoutMs: number;
  workloads?: WorkloadRegistry;
}) {
  const owner = makeIdentities(['owner'])[0];
  const ids = makeIdentities(o.parts.map((p) => p.name));
  const { manifest, signed } = signJob(o.preset, owner, ids);
  const { stores, ledgers, guards } = partnerBudgets({ dir: o.dir, prefix: o.prefix, parts: o.parts, manifest, policy: o.policy });
  const run = await runFederation<S, R>({
    url: o.url,
    owner,
    identities: ids,
    signed,
    parts: o.parts,
    schemaHash: manifest.dataset.schemaHash,
    stateDir: o.dir,
    timeoutMs: o.timeoutMs,
    workloads: o.workloads,
    node: (i) => ({ budget: o.guarded === false ? undefined : guards[i], ledgerPath: ledgers[i] }),
  });
  return { manifest, ids, result: run.owner, nodeResults: run.nodes, stores, ledgers };
}
