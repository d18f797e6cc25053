/**
 * Feature importance of a tree model for the model card: total gain per schema column, summed over
 * the column's encoded features (one-hot slots), from the importance the released model itself
 * carries (src/trees/model.ts). Those gains were computed by the key holders from the decrypted,
 * already-noised sums of the job's releases, so they are post-processing of released values: showing
 * them costs no ε. Nothing here reads partner data or training state.
 */
import type { FeatureLayout } from '../trees/layout.ts';
import type { GbdtModel } from '../trees/model.ts';
import type { ReportInputDraft } from './schema.ts';

export type FeatureImportanceInput = NonNullable<ReportInputDraft['featureImportance']>;

/** Total gain per column (layout groups), largest first; null when the model carries no importance. */
export function gbdtFeatureImportance(model: Pick<GbdtModel, 'importance' | 'numFeature'>, layout: FeatureLayout): FeatureImportanceInput | null {
  const imp = model.importance;
  if (!imp || imp.length !== model.numFeature || model.numFeature !== layout.d) return null;
  const rows = layout.groups.map((g) => {
    let gain = 0;
    if (g.kind === 'categorical') for (let s = 0; s < g.slots; s++) gain += imp[g.offset + s];
    else gain += imp[g.feature];
    return { feature: g.name, gain };
  });
  // Noisy sums can make a split's gain slightly negative; a share is of the positive total.
  const total = rows.reduce((a, r) => a + Math.max(0, r.gain), 0);
  return {
    measure: 'total gain',
    rows: rows.map((r) => ({ ...r, share: total > 0 ? Math.max(0, r.gain) / total : 0 })).sort((a, b) => b.gain - a.gain),
  };
}
