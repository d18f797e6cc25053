/**
 * Python XGBoost for interop tests (Debian's python3-xgboost, installed by .ci/run). Tests that need it
 * `describe.skipIf(!python)` with the printed reason, so a machine without it says why it skipped.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function findPython(): { python: string | null; reason: string } {
  for (const python of ['/usr/bin/python3', 'python3']) {
    try {
      const v = execFileSync(python, ['-c', 'import xgboost; print(xgboost.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      return { python, reason: `xgboost ${v}` };
    } catch {
      /* try the next */
    }
  }
  return { python: null, reason: 'python3-xgboost is not installed (apt-get install -y python3-xgboost)' };
}

const PREDICT = `
import sys, numpy as np, xgboost as xgb
b = xgb.Booster(model_file=sys.argv[1])
X = np.fromfile(sys.argv[2], dtype='<f4').reshape(-1, int(sys.argv[3]))
b.predict(xgb.DMatrix(X)).astype('<f8').tofile(sys.argv[4])
`;

/** `xgboost.Booster(model_file=modelPath).predict(DMatrix(X))`: probabilities of n × d float32 rows (scratch files in `dir`). */
export function xgboostPredict(python: string, modelPath: string, X: Float32Array, d: number, dir: string): Float64Array {
  const xPath = join(dir, 'xgb-predict-x.f32');
  const pPath = join(dir, 'xgb-predict-p.f64');
  writeFileSync(xPath, Buffer.from(X.buffer, X.byteOffset, X.byteLength));
  execFileSync(python, ['-c', PREDICT, modelPath, xPath, String(d), pPath], { encoding: 'utf8' });
  const buf = readFileSync(pPath);
  return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
