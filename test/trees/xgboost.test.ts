/**
 * Interop with Python XGBoost (Debian's python3-xgboost, installed by .ci/run): a fedmark model saved as
 * XGBoost JSON loads with `xgboost.Booster(model_file=...)` and predicts the same; an XGBoost-trained
 * model loads into fedmark and predicts the same natively. Without python3-xgboost these tests skip and
 * say why; the format round trip and the refusals run everywhere.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import {
  PathExplainer,
  featureLayout,
  fromXgboostJson,
  loadXgboostModel,
  parseGbdtParams,
  predictMargin,
  predictProba,
  saveXgboostModel,
  toXgboostJson,
  trainFederated,
} from '../../src/trees/index.ts';
import { findPython } from '../helpers/python-xgboost.ts';
import { SYNTH_SCHEMA, splitRows, syntheticDataset } from './helpers.ts';

const { python, reason } = findPython();
if (!python) console.warn(`[trees/xgboost] skipping the Python XGBoost interop tests: ${reason}`);

const dir = mkdtempSync(join(tmpdir(), 'fedmark-xgb-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const layout = featureLayout(SYNTH_SCHEMA);
const data = syntheticDataset(3000, 31);
const test = syntheticDataset(1500, 32);

function writeMatrix(name: string, X: Float32Array): string {
  const p = join(dir, name);
  writeFileSync(p, Buffer.from(X.buffer, X.byteOffset, X.byteLength));
  return p;
}

function py(script: string, ...args: string[]): string {
  return execFileSync(python!, ['-c', script, ...args], { encoding: 'utf8' });
}

const PREDICT = `
import sys, numpy as np, xgboost as xgb
b = xgb.Booster(model_file=sys.argv[1])
X = np.fromfile(sys.argv[2], dtype='<f4').reshape(-1, int(sys.argv[3]))
d = xgb.DMatrix(X)
b.predict(d).astype('<f8').tofile(sys.argv[4])
b.predict(d, output_margin=True).astype('<f8').tofile(sys.argv[5])
`;

const readF64 = (p: string) => {
  const buf = readFileSync(p);
  return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('XGBoost JSON format (no Python needed)', () => {
  it('round-trips through the file with identical predictions, feature names and importance', async () => {
    const { model } = trainFederated(parseGbdtParams({ trees: 10, depth: 4, baseScore: 0.2 }), layout, splitRows(data, [1500, 1500]));
    const path = join(dir, 'roundtrip.json');
    await saveXgboostModel(path, model);
    const back = await loadXgboostModel(path);
    expect(back.featureNames).toEqual(model.featureNames);
    expect(back.importance).toEqual(model.importance);
    expect(maxDiff(predictMargin(back, test.X, test.n), predictMargin(model, test.X, test.n))).toBe(0);
  });

  it('refuses models it cannot score, naming the problem', async () => {
    const { model } = trainFederated(parseGbdtParams({ trees: 2, depth: 2 }), layout, [data]);
    const json = () => JSON.parse(toXgboostJson(model));
    const code = (j: unknown) => {
      try {
        fromXgboostJson(j);
      } catch (e) {
        expect(e).toBeInstanceOf(FedmarkError);
        return `${(e as FedmarkError).code}: ${(e as Error).message}`;
      }
      return 'accepted';
    };
    const softmax = json();
    softmax.learner.objective.name = 'multi:softprob';
    expect(code(softmax)).toMatch(/GBDT_XGB_UNSUPPORTED.*multi:softprob/);
    const cat = json();
    cat.learner.gradient_booster.model.trees[0].split_type[0] = 1;
    expect(code(cat)).toMatch(/categorical splits/);
    const cycle = json();
    cycle.learner.gradient_booster.model.trees[0].left_children[1] = 0;
    expect(code(cycle)).toMatch(/GBDT_XGB_INVALID.*bad children/);
    const wide = json();
    wide.learner.gradient_booster.model.trees[0].split_indices[0] = 999;
    expect(code(wide)).toMatch(/feature 999/);
    expect(code({ learner: {} })).toMatch(/GBDT_XGB_INVALID/);
    const file = join(dir, 'not-json.json');
    writeFileSync(file, 'UBJ\u0000binary');
    await expect(loadXgboostModel(file)).rejects.toMatchObject({ code: 'GBDT_XGB_INVALID' });
  });
});

describe.skipIf(!python)(`Python XGBoost interop (${reason})`, () => {
  it('xgboost.Booster(model_file=...) loads a fedmark model and predicts the same (1e-6)', async () => {
    for (const input of [
      { trees: 30, depth: 5, baseScore: 0.12 },
      { trees: 8, depth: 3, splitMode: 'hybrid' as const, dp: { epsilon: 3 } },
    ]) {
      const { model } = trainFederated(parseGbdtParams(input), layout, splitRows(data, [1000, 1000, 1000]));
      const path = join(dir, 'fedmark-model.json');
      await saveXgboostModel(path, model);
      py(PREDICT, path, writeMatrix('test.f32', test.X), String(layout.d), join(dir, 'p.f64'), join(dir, 'm.f64'));
      expect(maxDiff(readF64(join(dir, 'p.f64')), predictProba(model, test.X, test.n))).toBeLessThan(1e-6);
      expect(maxDiff(readF64(join(dir, 'm.f64')), predictMargin(model, test.X, test.n))).toBeLessThan(1e-5);
    }
  });

  it('an XGBoost-trained model loads into fedmark: same predictions, and cover-weighted path contributions equal xgboost’s approx_contribs', async () => {
    const train = `
import sys, numpy as np, xgboost as xgb
X = np.fromfile(sys.argv[1], dtype='<f4').reshape(-1, int(sys.argv[2]))
y = np.fromfile(sys.argv[3], dtype='<f4')
b = xgb.train({'objective': 'binary:logistic', 'tree_method': 'hist', 'max_depth': 4, 'eta': 0.3, 'nthread': 1}, xgb.DMatrix(X, label=y), 20)
b.save_model(sys.argv[4])
T = np.fromfile(sys.argv[5], dtype='<f4').reshape(-1, int(sys.argv[2]))
b.predict(xgb.DMatrix(T)).astype('<f8').tofile(sys.argv[6])
b.predict(xgb.DMatrix(T[:50]), pred_contribs=True, approx_contribs=True).astype('<f8').tofile(sys.argv[7])
`;
    const yPath = join(dir, 'y.f32');
    writeFileSync(yPath, Buffer.from(data.y.buffer, data.y.byteOffset, data.y.byteLength));
    const modelPath = join(dir, 'xgb-trained.json');
    py(train, writeMatrix('train.f32', data.X), String(layout.d), yPath, modelPath, writeMatrix('test2.f32', test.X), join(dir, 'xp.f64'), join(dir, 'xc.f64'));
    const model = await loadXgboostModel(modelPath);
    expect(maxDiff(predictProba(model, test.X, test.n), readF64(join(dir, 'xp.f64')))).toBeLessThan(1e-6);
    const contribs = readF64(join(dir, 'xc.f64'));
    const explainer = new PathExplainer(model, 'model');
    const width = layout.d + 1;
    for (let r = 0; r < 50; r++) {
      const ours = explainer.explain(test.X, r * layout.d);
      expect(maxDiff(ours, contribs.subarray(r * width, (r + 1) * width))).toBeLessThan(1e-5);
    }
  });
});
