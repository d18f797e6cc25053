import { expect } from 'vitest';
import { concatDatasets, type Dataset } from '../../../../src/data/encode.ts';
import type { GbdtState } from '../../../../src/trees/index.ts';
import { trainPooled } from '../../../../src/trees/index.ts';
import { gbdtSettings } from '../../../../src/federation/workloads/gbdt/index.ts';
import type { JobManifest } from '../../../../src/federation/manifest.ts';
import { LEAF, SPLIT } from '../../../../src/trees/heap-tree.ts';

/** The in-project pooled histogram GBDT on every partner's training rows, with the job's parameters and bins. */
export function pooledState(manifest: JobManifest, trains: readonly Dataset[]): GbdtState {
  const s = gbdtSettings(manifest);
  return trainPooled(s.params, s.layout, concatDatasets([...trains])).state;
}

/** Same edges, same splits at every node, leaves (and cyclic terms) within `tol`. */
export function expectSameModel(fed: GbdtState, pooled: GbdtState, tol = 1e-6): void {
  expect(fed.edges).toEqual(pooled.edges);
  expect(fed.trees.length).toBe(pooled.trees.length);
  fed.trees.forEach((t, k) => {
    const u = pooled.trees[k];
    expect(t.kind, `tree ${k} shape`).toEqual(u.kind);
    t.kind.forEach((kind, i) => {
      if (kind === SPLIT) expect([t.group[i], t.cut[i]], `tree ${k} node ${i} split`).toEqual([u.group[i], u.cut[i]]);
      if (kind === LEAF) expect(Math.abs(t.value[i] - u.value[i]), `tree ${k} leaf ${i}`).toBeLessThanOrEqual(tol);
    });
  });
  expect(fed.terms.map((t) => t.groups)).toEqual(pooled.terms.map((t) => t.groups));
  fed.terms.forEach((t, k) => t.values.forEach((v, c) => expect(Math.abs(v - pooled.terms[k].values[c]), `term ${k} cell ${c}`).toBeLessThanOrEqual(tol)));
}
