import { loadSchema, featureCount } from './src/data/schema.ts';
import { loadDataset } from './src/data/encode.ts';
import { denseScorer } from './src/scoring/dense-scorers.ts';
import { buildBaseline } from './src/scoring/baseline.ts';
import { initParameters } from './src/model/params.ts';
import { completenessGap } from './src/scoring/scorer.ts';
import { createRng } from './src/util/rng.ts';
const schema = await loadSchema('data/telco-churn.schema.json'); const d = featureCount(schema);
const ds = await loadDataset('data/telco-churn.csv', schema);
for (const spec of [{ kind: 'mlp' as const, hidden: [32, 16], activation: 'tanh' as const }, { kind: 'mlp' as const, hidden: [16], activation: 'relu' as const }]) {
const p = initParameters(spec, d, 5); const rng = createRng(9); for (let i = 0; i < p.length; i++) p[i] = p[i] * 2 + rng.normal() * 0.1;
const s = denseScorer(spec, d, p, buildBaseline(schema));
const n = 3000; const X = ds.X.subarray(0, n * d);
let t = performance.now(); const phi = s.contributions(X, n); const el = (performance.now() - t) / 1000;
const g = completenessGap(s, X, n, phi);
console.log(spec.activation, 'rows/s', (n / el).toFixed(0), 'max gap', Math.max(...g));
}
