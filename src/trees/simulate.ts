/**
 * In-process runs of the GBDT steps: the pooled reference trainer (all rows in one place) and a
 * federated simulation in which every partner computes its local statistics, adds its own release noise,
 * and the parts are summed in plaintext — the statistics the federation computes under HE (HE changes
 * only the precision). Both are the same step functions the workload adapter calls.
 */
import { FedmarkError } from '../errors.ts';
import { addReleaseNoise, stepRelease, type GbdtNoisePlan } from './dp.ts';
import type { FeatureLayout } from './layout.ts';
import { GbdtLocalData, localStep, type LocalRows } from './local.ts';
import { modelFromState, type GbdtModel } from './model.ts';
import type { GbdtParams } from './params.ts';
import { stepAt, totalSteps } from './schedule.ts';
import { applyStep, initialState, isComplete, type GbdtState, type GbdtSums } from './state.ts';

export interface GbdtRunOptions {
  /** Called after every step (progress output). */
  onStep?: (info: { step: number; totalSteps: number; kind: string; tree: number | null }) => void;
}

export interface GbdtRunResult {
  state: GbdtState;
  model: GbdtModel;
  noise: GbdtNoisePlan;
  /** Per partner: CPU milliseconds spent in local steps (statistics + noise), summed over the job. */
  localCpuMs: number[];
  /** Values each partner uploaded over the job (all parts of all steps). */
  valuesUploaded: number;
}

/** Element-wise sum of every partner's parts (what the coordinator computes under HE). */
export function sumParts(list: readonly GbdtSums[]): GbdtSums {
  if (list.length === 0) throw new FedmarkError('GBDT_NO_PARTNERS', 'nothing to sum: no partner uploaded');
  const out: GbdtSums = {};
  for (const name of Object.keys(list[0])) {
    const acc = new Float64Array(list[0][name].length);
    for (const parts of list) {
      const v = parts[name];
      if (!v || v.length !== acc.length) throw new FedmarkError('GBDT_BAD_PART', `partners disagree on part "${name}"`);
      for (let i = 0; i < acc.length; i++) acc[i] += v[i];
    }
    out[name] = acc;
  }
  return out;
}

/** Federated training simulated in one process: each partner's (noised, when the job is private) parts are summed in plaintext. */
export function trainFederated(params: GbdtParams, layout: FeatureLayout, partners: readonly LocalRows[], options: GbdtRunOptions = {}): GbdtRunResult {
  if (partners.length === 0) throw new FedmarkError('GBDT_NO_PARTNERS', 'federated training needs at least one partner');
  const locals = partners.map((p) => new GbdtLocalData(p));
  const localCpuMs = partners.map(() => 0);
  let state = initialState(params, layout);
  const noise = state.noise;
  let values = 0;
  const total = totalSteps(params, layout);
  while (!isComplete(state)) {
    const release = stepRelease(params, layout, noise, state.step);
    const uploads = locals.map((local, k) => {
      const t0 = process.cpuUsage();
      const parts = localStep(state, local);
      if (release) addReleaseNoise(parts, release);
      const used = process.cpuUsage(t0);
      localCpuMs[k] += (used.user + used.system) / 1000;
      return parts;
    });
    values += Object.values(uploads[0]).reduce((a, v) => a + v.length, 0);
    const step = stepAt(params, layout, state.step);
    state = applyStep(state, sumParts(uploads), uploads.length);
    options.onStep?.({ step: step.step, totalSteps: total, kind: step.kind, tree: 'tree' in step ? step.tree : null });
  }
  return { state, model: modelFromState(state), noise, localCpuMs, valuesUploaded: values };
}

/** The pooled reference trainer: all rows in one place, the same steps (noise only if the parameters ask for DP). */
export function trainPooled(params: GbdtParams, layout: FeatureLayout, rows: LocalRows, options: GbdtRunOptions = {}): GbdtRunResult {
  return trainFederated(params, layout, [rows], options);
}
