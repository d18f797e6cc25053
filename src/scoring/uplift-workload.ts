/**
 * Multi-partner campaign measurement as a federated workload: each partner releases its count table
 * (decile × arm × outcome, uplift.ts) once, as a charged Gaussian release, summed through the
 * job's aggregation path; the key holders turn the decrypted sum into the figures `fedmark uplift`
 * gives for one partner, with intervals widened for the noise (uplift-federated.ts).
 *
 * - Data: the job's dataset is a campaign table (`campaignSchema`): one row per customer in the
 *   randomised campaign with its decile (from the partner's own `fedmark score` run: its top tenth is
 *   decile 1), its arm and its outcome (the label). Consent is the schema's like any dataset's.
 * - One round, every partner (`selection: 'all'`). Part `uplift-counts`: the 40 noisy cells, then
 *   one cell holding the public constant 1 (so the key holders learn how many tables were summed,
 *   which the coordinator already knows, and can size the noise variance without trusting it).
 * - The release: every customer falls in exactly one cell, so adding or removing one changes one
 *   cell by 1 (L2 sensitivity Δ = 1; `adjacency: 'replace-one'` gives Δ = √2). Noise std s = σ·Δ on
 *   every cell is the event (q = 1, σ, steps = 1), label `count`, σ calibrated to the manifest's
 *   target ε for this single release. The partner runtime authorizes and charges it before the part
 *   is encrypted, and both ledgers record it; the audit recomputes ε from them.
 * - Counts never leave a partner without noise: a manifest without `dp` is refused.
 *
 * Not in the built-in registry (src/federation/workloads/index.ts lists the build's workloads):
 * pass `builtinWorkloads.with(upliftWorkload)` to the coordinator, nodes and simulate().
 */
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import type { Dataset } from '../data/dataset.ts';
import { parseSchema, type DatasetSchema } from '../data/schema.ts';
import type { JobManifest } from '../federation/manifest.ts';
import type { LocalContext, PrivacyPlan, RoundPlan, Workload } from '../federation/workload.ts';
import { calibrateNoiseMultiplier } from '../privacy/calibrate.ts';
import { sha256Canonical } from '../privacy/ledger/canonical.ts';
import { DECILES, UPLIFT_CELLS, cellIndex, type UpliftResult } from './uplift.ts';
import { combineUpliftCounts, noisyUpliftCounts, upliftCountEvent } from './uplift-federated.ts';

export const UPLIFT_WORKLOAD = 'uplift';
export const UPLIFT_PART = 'uplift-counts';

export const upliftParamsSchema = z.strictObject({
  decileColumn: z.string().min(1).default('decile'),
  armColumn: z.string().min(1).default('arm'),
  treatment: z.string().min(1).default('treatment'),
  control: z.string().min(1).default('control'),
  adjacency: z.enum(['add-remove', 'replace-one']).default('add-remove'),
  confidence: z.number().gt(0).lt(1).default(0.95),
});
export type UpliftParams = z.infer<typeof upliftParamsSchema>;

/** The public state after the round: how many tables were summed and the summed noisy cells. */
export interface UpliftState {
  partners: number;
  counts: number[];
}

const params = (m: JobManifest): UpliftParams => upliftParamsSchema.parse(m.workload.params ?? {});

const decileFeature = (p: UpliftParams, d: number) => `${p.decileColumn}=${d}`;
const armFeatures = (p: UpliftParams) => [`${p.armColumn}=${p.treatment}`, `${p.armColumn}=${p.control}`];

/**
 * The campaign table's schema: id, decile "1".."10", arm (treatment | control), outcome (label),
 * optionally a consent column. Unknown deciles and arms are errors (bad rows), not an `<other>` bucket.
 */
export function campaignSchema(o: {
  name: string;
  idColumn?: string;
  decileColumn?: string;
  armColumn?: string;
  treatment?: string;
  control?: string;
  outcomeColumn?: string;
  positive?: string[];
  negative?: string[];
  consent?: { column: string; granted: string[] };
}): DatasetSchema {
  return parseSchema(
    {
      name: o.name,
      columns: [
        { name: o.idColumn ?? 'id', role: 'id' },
        { name: o.decileColumn ?? 'decile', type: 'categorical', values: Array.from({ length: DECILES }, (_, i) => String(i + 1)), unknown: 'error' },
        { name: o.armColumn ?? 'arm', type: 'categorical', values: [o.treatment ?? 'treatment', o.control ?? 'control'], unknown: 'error' },
        { name: o.outcomeColumn ?? 'outcome', role: 'label', positive: o.positive ?? ['1', 'yes', 'true'], negative: o.negative ?? ['0', 'no', 'false'] },
        ...(o.consent ? [{ name: o.consent.column, role: 'consent', granted: o.consent.granted }] : []),
      ],
    },
    `campaign schema "${o.name}"`,
  );
}

/** The exact count table of a partner's campaign rows (train and hold-out: every row once). */
export function campaignCountsOf(m: JobManifest, rows: readonly Dataset[]): Float64Array {
  const p = params(m);
  const names = m.dataset.featureNames;
  const deciles = Array.from({ length: DECILES }, (_, i) => names.indexOf(decileFeature(p, i + 1)));
  const [treat, ctrl] = armFeatures(p).map((f) => names.indexOf(f));
  const counts = new Float64Array(UPLIFT_CELLS);
  for (const ds of rows) {
    for (let i = 0; i < ds.n; i++) {
      const at = i * ds.d;
      const arm = ds.X[at + treat] === 1 ? 'treatment' : ds.X[at + ctrl] === 1 ? 'control' : null;
      const d = deciles.findIndex((j) => ds.X[at + j] === 1);
      // The schema refuses other values; a row outside them (a hand-built dataset) is not counted.
      if (arm === null || d < 0) continue;
      counts[cellIndex(d + 1, arm, ds.y[i] === 1)]++;
    }
  }
  return counts;
}

const privacyCache = new WeakMap<JobManifest, PrivacyPlan>();

function privacy(m: JobManifest): PrivacyPlan {
  const cached = privacyCache.get(m);
  if (cached) return cached;
  if (!m.dp)
    throw new FedmarkError('MANIFEST_INVALID', 'uplift: campaign counts leave the partners, so the job must declare dp (a target ε for the count release)');
  const sensitivity = params(m).adjacency === 'replace-one' ? Math.SQRT2 : 1;
  const noiseMultiplier =
    m.dp.noiseMultiplier === 'calibrate'
      ? calibrateNoiseMultiplier({ targetEpsilon: m.dp.targetEpsilon, delta: m.dp.delta, samplingRate: 1, steps: 1 })
      : m.dp.noiseMultiplier;
  const plan = { targetEpsilon: m.dp.targetEpsilon, delta: m.dp.delta, noiseMultiplier, clipNorm: sensitivity };
  privacyCache.set(m, plan);
  return plan;
}

/** Per-cell noise std of each partner's table. */
const noiseStdOf = (m: JobManifest): number => {
  const dp = privacy(m);
  return dp.noiseMultiplier * dp.clipNorm;
};

function reportOf(m: JobManifest, s: UpliftState): UpliftResult {
  if (s.partners < 1) throw new FedmarkError('UPLIFT_BAD_PARTNERS', `the summed campaign tables say ${s.partners} partners contributed`);
  return combineUpliftCounts(s.counts, { partners: s.partners, noiseStd: noiseStdOf(m), confidence: params(m).confidence });
}

function stateOf(sums: Record<string, Float64Array>): UpliftState {
  const v = sums[UPLIFT_PART];
  if (!v || v.length !== UPLIFT_CELLS + 1) throw new FedmarkError('WORKLOAD_PART', `uplift: part "${UPLIFT_PART}" must hold ${UPLIFT_CELLS + 1} values`);
  // The participation cell is a sum of exact 1s; CKKS returns it to within ~1e-6.
  return { partners: Math.round(v[UPLIFT_CELLS]), counts: Array.from(v.subarray(0, UPLIFT_CELLS)) };
}

export const upliftWorkload: Workload<UpliftState, UpliftResult> = {
  kind: UPLIFT_WORKLOAD,
  validate: (m) => {
    const r = upliftParamsSchema.safeParse(m.workload.params ?? {});
    if (!r.success) throw new FedmarkError('MANIFEST_INVALID', `uplift: workload.params.${r.error.issues[0].path.join('.')}: ${r.error.issues[0].message}`);
    const p = r.data;
    if (p.treatment === p.control) throw new FedmarkError('MANIFEST_INVALID', `uplift: treatment and control are both "${p.treatment}"`);
    const needed = [...Array.from({ length: DECILES }, (_, i) => decileFeature(p, i + 1)), ...armFeatures(p)];
    const missing = needed.filter((f) => !m.dataset.featureNames.includes(f));
    if (missing.length) {
      throw new FedmarkError(
        'MANIFEST_INVALID',
        `uplift: the job's dataset lacks feature(s) ${missing.join(', ')} — use a campaign table (campaignSchema: categorical "${p.decileColumn}" 1..10 and "${p.armColumn}" ${p.treatment}/${p.control}, the outcome as label)`,
      );
    }
    privacy(m);
  },
  totalRounds: () => 1,
  plan: (m): RoundPlan => {
    const dp = privacy(m);
    return {
      kind: 'uplift',
      stages: ['upload'],
      parts: [{ name: UPLIFT_PART, length: UPLIFT_CELLS + 1, domain: 'real', bound: null, use: 'state' }],
      selection: 'all',
      releases: [{ label: 'count', samplingRate: 1, noiseMultiplier: dp.noiseMultiplier, steps: 1, sensitivity: dp.clipNorm }],
      updatesState: true,
    };
  },
  privacy,
  initialState: () => ({ partners: 0, counts: [] }),
  hash: (s) => sha256Canonical(s),
  local: async (ctx: LocalContext<UpliftState>) => {
    const counts = campaignCountsOf(ctx.manifest, [ctx.data.train, ctx.data.test]);
    const [release] = ctx.plan.releases;
    const noisy = noisyUpliftCounts(counts, upliftCountEvent(release.noiseMultiplier * release.sensitivity, release.sensitivity));
    const part = new Float64Array(UPLIFT_CELLS + 1);
    part.set(noisy);
    part[UPLIFT_CELLS] = 1;
    return { parts: { [UPLIFT_PART]: part } };
  },
  apply: (_m, _state, _round, sums) => stateOf(sums),
  report: (m, _round, sums) => reportOf(m, stateOf(sums)),
};
