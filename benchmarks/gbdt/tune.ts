/**
 * Parameter sweep behind the private GBDT defaults (src/trees/params.ts): each configuration trained
 * in process on the demo's split (trainFederated: every partner's full local noise, sums in plaintext,
 * as the federation computes them under HE), at the trees' share of the target ε (the workload gives
 * `dp.split.evaluation` of it to the final evaluation release), AUC on the pooled hold-out, mean of
 * --reps fresh-noise runs.
 *
 * Run: npx tsx benchmarks/gbdt/tune.ts --dataset bank|telco --epsilon 3 --eval-share 0.1 --reps 3 --configs '[{...}, …]'
 */
import { auc } from '../../src/metrics/classification.ts';
import { featureLayout, parseGbdtParams, predictProba, trainFederated } from '../../src/trees/index.ts';
import { demoSplit } from './demo-split.ts';

const argv = process.argv.slice(2);
const arg = (name: string, d: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : d;
};
const dataset = arg('--dataset', 'bank') === 'telco' ? 'telco-churn' : 'bank-marketing';
const epsilon = Number(arg('--epsilon', '3'));
const evalShare = Number(arg('--eval-share', '0.1'));
const reps = Number(arg('--reps', '3'));
const configs = JSON.parse(arg('--configs', '[{}]')) as Record<string, unknown>[];

const split = await demoSplit(dataset);
const layout = featureLayout(split.schema);
const te = split.pooledTest;
const partners = split.partners.map((p) => p.train);
for (const c of configs) {
  const { dp: knobs, ...rest } = c as { dp?: Record<string, unknown> };
  const p = parseGbdtParams({ ...rest, dp: { ...knobs, epsilon: epsilon * (1 - evalShare) } });
  const aucs: number[] = [];
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) aucs.push(auc(predictProba(trainFederated(p, layout, partners).model, te.X, te.n), te.y));
  const m = aucs.reduce((a, b) => a + b, 0) / reps;
  const sd = Math.sqrt(aucs.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, reps - 1));
  process.stdout.write(
    `${JSON.stringify({ dataset, epsilon, config: c, auc: Math.round(m * 1e4) / 1e4, sd: Math.round(sd * 1e4) / 1e4, s: Math.round((performance.now() - t0) / reps) / 1000 })}\n`,
  );
}
