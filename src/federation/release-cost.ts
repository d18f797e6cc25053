import { composedEpsilon } from '../privacy/accountant.ts';
import type { LabelledDpEvent } from '../privacy/dp-event.ts';
import type { JobManifest } from './manifest.ts';
import { releasePlan, type AnyWorkload } from './workload.ts';

/** One class of releases a partner makes in a job (e.g. every `update`), and what it costs. */
export interface ReleaseCost {
  label: string;
  /** How many a partner makes at most: job releases once, round releases once per round (if selected in every round). */
  releases: number;
  samplingRate: number;
  noiseMultiplier: number;
  /** Steps of each release (DP-SGD: steps per round). */
  steps: number;
  sensitivity: number;
  /** Standard deviation of the noise on each released value (DP-SGD: per step, on the clipped gradient sum). */
  noiseStd: number;
  /** ε of this class of releases on its own (RDP, at the job's δ). */
  epsilonAlone: number;
}

export interface ReleasePlanCost {
  targetEpsilon: number;
  delta: number;
  releases: ReleaseCost[];
  /** ε of every planned release composed (RDP curves added): what a partner selected in every round spends. */
  epsilon: number;
}

/**
 * Every release a partner would make in the job, from the manifest alone, with its noise and ε —
 * what the owner's `job run`, the demo and `fedmark privacy plan` show before the job starts. Null
 * for a job without differential privacy.
 */
export function releaseCosts(workload: AnyWorkload, manifest: JobManifest): ReleasePlanCost | null {
  const privacy = workload.privacy(manifest);
  if (!privacy) return null;
  const plan = releasePlan(workload, manifest);
  const all: LabelledDpEvent[] = [...plan.job, ...plan.rounds.flatMap((r) => r.releases)];
  const groups = new Map<string, LabelledDpEvent[]>();
  for (const e of all) {
    const key = `${e.label}|${e.samplingRate}|${e.noiseMultiplier}|${e.steps}|${e.sensitivity}`;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  const releases = [...groups.values()].map((list): ReleaseCost => {
    const e = list[0];
    return {
      label: e.label,
      releases: list.length,
      samplingRate: e.samplingRate,
      noiseMultiplier: e.noiseMultiplier,
      steps: e.steps,
      sensitivity: e.sensitivity,
      noiseStd: e.noiseMultiplier * e.sensitivity,
      epsilonAlone: composedEpsilon(list, privacy.delta),
    };
  });
  return { targetEpsilon: privacy.targetEpsilon, delta: privacy.delta, releases, epsilon: all.length ? composedEpsilon(all, privacy.delta) : 0 };
}

const up = (x: number, d = 4) => (Math.ceil(x * 10 ** d - 1e-9) / 10 ** d).toFixed(d);

/** The release plan as a table for a terminal; ε is rounded up. */
export function formatReleaseCosts(c: ReleasePlanCost): string {
  const header = ['release', 'count', 'q', 'σ', 'steps each', 'sensitivity', 'noise std', 'ε alone'];
  const rows = c.releases.map((r) => [
    r.label,
    String(r.releases),
    String(r.samplingRate),
    r.noiseMultiplier.toFixed(4),
    String(r.steps),
    r.sensitivity.toFixed(3),
    r.noiseStd.toFixed(3),
    up(r.epsilonAlone),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  return [
    `releases per partner (if selected in every round), δ = ${c.delta}:`,
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    `all of them composed (RDP): ε ≤ ${up(c.epsilon)} of the target ${c.targetEpsilon}`,
  ].join('\n');
}
