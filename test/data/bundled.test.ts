import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLED_DATASETS, isBundledDatasetName, loadBundled } from '../../src/data/bundled.ts';
import { featureCount, featureNames } from '../../src/data/schema.ts';

describe('bundled datasets', () => {
  it('resolves absolute paths that exist', () => {
    for (const b of Object.values(BUNDLED_DATASETS)) {
      for (const p of [b.csv, b.schema]) {
        expect(isAbsolute(p)).toBe(true);
        expect(existsSync(p)).toBe(true);
      }
    }
    expect(isBundledDatasetName('telco-churn')).toBe(true);
    expect(isBundledDatasetName('toString')).toBe(false);
  });

  it('loads bank-marketing fully: 45,211 rows, 11.70% positive, duration dropped', async () => {
    const t0 = performance.now();
    const { schema, dataset: ds } = await loadBundled('bank-marketing');
    const ms = performance.now() - t0;
    console.log(`bank-marketing: ${ds.n} rows × ${ds.d} features loaded in ${ms.toFixed(0)} ms`);
    expect(ds.stats).toMatchObject({ rowsRead: 45_211, rowsUsed: 45_211, badRowCount: 0, excludedNoConsent: 0 });
    expect(ds.d).toBe(featureCount(schema));
    expect(ds.featureNames).toEqual(featureNames(schema));
    expect(ds.featureNames).not.toContain('duration');
    const positives = ds.y.reduce((a, b) => a + b, 0);
    expect(positives).toBe(5289);
    expect(((100 * positives) / ds.n).toFixed(2)).toBe('11.70');
    // Encoded values stay inside the declared scaling range.
    expect(ds.X.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(ds.ids).toBeNull();
    expect(new Set(ds.sensitive.age)).toEqual(new Set(['<30', '30-44', '45-59', '60+']));
    // A handful of extreme values lie outside the declared bounds and are clipped, not fitted around.
    expect(ds.stats.clipped.balance).toBeGreaterThan(0);
    expect(ds.stats.clipped.age).toBe(0);
    // The "job" one-hot block sums to one on every row, and nothing fell into its other bucket.
    const job = ds.featureNames.flatMap((n, j) => (n.startsWith('job=') ? [j] : []));
    for (let i = 0; i < ds.n; i += 97) expect(job.reduce((a, j) => a + ds.X[i * ds.d + j], 0)).toBe(1);
    expect(ds.X[ds.featureNames.indexOf('job=<other>')]).toBe(0);
    expect(ms).toBeLessThan(10_000);
  });

  it('loads telco-churn fully: 7,043 rows, blank TotalCharges imputed as 0, ids and sensitive kept apart', async () => {
    const t0 = performance.now();
    const { schema, dataset: ds } = await loadBundled('telco-churn');
    const ms = performance.now() - t0;
    console.log(`telco-churn: ${ds.n} rows × ${ds.d} features loaded in ${ms.toFixed(0)} ms`);
    expect(ds.stats).toMatchObject({ rowsRead: 7043, rowsUsed: 7043, badRowCount: 0 });
    expect(ds.stats.imputed.TotalCharges).toBe(11);
    expect(ds.d).toBe(featureCount(schema));
    expect(ds.y.reduce((a, b) => a + b, 0)).toBe(1869);
    expect(ds.ids).toHaveLength(7043);
    expect(new Set(ds.ids).size).toBe(7043);
    expect(ds.featureNames).not.toContain('customerID');
    expect(Object.keys(ds.sensitive).sort()).toEqual(['SeniorCitizen', 'gender']);
    expect(ds.sensitive.gender.filter((g) => g === 'Female')).toHaveLength(3488);
    expect(ds.sensitive.SeniorCitizen.filter((g) => g === 'true')).toHaveLength(1142);
    const tenure = ds.featureNames.indexOf('tenure');
    const total = ds.featureNames.indexOf('TotalCharges');
    let blankRows = 0;
    for (let i = 0; i < ds.n; i++) {
      if (ds.X[i * ds.d + total] === 0) {
        blankRows++;
        expect(ds.X[i * ds.d + tenure]).toBe(0);
      }
    }
    expect(blankRows).toBe(11);
    expect(ms).toBeLessThan(5_000);
  });
});
