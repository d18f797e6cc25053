import { describe, expect, it } from 'vitest';
import { gbdtFeatureImportance } from '../../src/report/importance.ts';
import { renderModelCard, renderReport, sampleReportInput } from '../../src/report/index.ts';
import { featureLayout, fromXgboostJson, parseGbdtParams, toXgboostJson, trainFederated, type GbdtModel } from '../../src/trees/index.ts';
import { SYNTH_SCHEMA, splitRows, syntheticDataset } from '../trees/helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const parts = splitRows(syntheticDataset(6000, 5), [3000, 2000, 1000]);

/** A private job's released model, after the XGBoost JSON round trip a data scientist would load. */
function releasedModel(): GbdtModel {
  const run = trainFederated(parseGbdtParams({ dp: { epsilon: 3 } }), layout, parts);
  return fromXgboostJson(toXgboostJson(run.model));
}

describe('feature importance in the model card (gbdt)', () => {
  const model = releasedModel();
  const fi = gbdtFeatureImportance(model, layout)!;

  it('sums the released model’s per-feature gains over each column’s encoded features, largest first', () => {
    expect(fi.measure).toBe('total gain');
    expect(fi.rows.map((r) => r.feature).sort()).toEqual(layout.groups.map((g) => g.name).sort());
    const channel = layout.groups.find((g) => g.name === 'channel')!;
    if (channel.kind !== 'categorical') throw new Error('channel is categorical');
    const slots = model.importance!.slice(channel.offset, channel.offset + channel.slots).reduce((a, b) => a + b, 0);
    expect(fi.rows.find((r) => r.feature === 'channel')!.gain).toBeCloseTo(slots, 9);
    for (let i = 1; i < fi.rows.length; i++) expect(fi.rows[i - 1].gain).toBeGreaterThanOrEqual(fi.rows[i].gain);
    expect(fi.rows.reduce((a, r) => a + r.share, 0)).toBeCloseTo(1, 9);
    // The synthetic label leans hardest on channel = phone and score: they lead, whatever the noise draws.
    expect(['channel', 'score']).toContain(fi.rows[0].feature);
  });

  it('reads nothing but the model: other importance values give another table, none gives none', () => {
    const flipped = { ...model, importance: model.importance!.map((_, j) => (j === 0 ? 1 : 0)) };
    expect(gbdtFeatureImportance(flipped, layout)!.rows[0]).toMatchObject({ feature: layout.groups[0].name, gain: 1, share: 1 });
    expect(gbdtFeatureImportance({ ...model, importance: null }, layout)).toBeNull();
  });

  it('is a section of the Markdown model card and of the HTML report, with the no-ε note', () => {
    const input = { ...sampleReportInput(), featureImportance: fi };
    const md = renderModelCard(input);
    expect(md).toContain('## Feature importance');
    expect(md).toContain('cost no further ε');
    expect(md).toMatch(new RegExp(`\\| ${fi.rows[0].feature} \\| [0-9.,]+ \\| [0-9.]+ %`));
    const html = renderReport(input);
    expect(html).toContain('Feature importance</h3>');
    expect(html).toContain(`<td>${fi.rows[0].feature}</td>`);
    expect(renderModelCard(sampleReportInput())).not.toContain('Feature importance');
  });
});
