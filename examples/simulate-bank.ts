// The README's library example: a federated simulation on the bundled bank-marketing data.
// Run: npx tsx examples/simulate-bank.ts
import { loadBundled, partitionDirichlet, subsetDataset, trainTestSplit, jobPreset, simulate } from 'fedmark';

const rounds = Number(process.env.ROUNDS ?? 20);
const { schema, dataset } = await loadBundled('bank-marketing');
const partners = partitionDirichlet(dataset.y, 5, 1.0, 42).map((rows, i) => {
  const own = subsetDataset(dataset, rows);
  const split = trainTestSplit(own.y, 0.2, 7);
  return { name: `partner-${i}`, train: subsetDataset(own, split.train), test: subsetDataset(own, split.test) };
});
const result = await simulate({
  job: jobPreset({ jobId: 'propensity-2026-q4', schema, partners: 5, rounds, epsilon: 3 }),
  partners,
  onRound: (r) => console.log(r.round, r.metrics.auc, r.epsilon),
});
console.log(result.finalMetrics.auc, result.epsilon, result.wireBytes.perParameter);
