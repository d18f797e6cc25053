/**
 * Runs benchmarks/gbdt/xgb_reference.py with Debian's python3-xgboost: writes the matrices as raw
 * float32, reads the predictions back. Finds an interpreter that can import xgboost (the system one
 * first: a pyenv or venv python on PATH usually cannot see Debian's dist-packages).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GbdtParams } from '../../src/trees/index.ts';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'xgb_reference.py');

/** XGBoost parameters equivalent to fedmark's. */
export function xgbParams(
  p: Pick<GbdtParams, 'depth' | 'learningRate' | 'lambda' | 'minChildWeight' | 'minSplitGain' | 'bins' | 'baseScore'>,
  maxBin = p.bins,
): Record<string, unknown> {
  return {
    objective: 'binary:logistic',
    tree_method: 'hist',
    max_depth: p.depth,
    eta: p.learningRate,
    lambda: p.lambda,
    min_child_weight: p.minChildWeight,
    gamma: p.minSplitGain,
    max_bin: maxBin,
    base_score: p.baseScore,
    nthread: 1,
  };
}

export interface Matrix {
  n: number;
  X: Float32Array;
  y?: Float32Array;
}

let found: string | null | undefined;

/** A python that imports xgboost, with its version, or null (with the reason) when there is none. */
export function findXgboostPython(): { python: string; version: string } | { python: null; reason: string } {
  const tried: string[] = [];
  for (const python of ['/usr/bin/python3', 'python3']) {
    try {
      const version = execFileSync(python, ['-c', 'import xgboost; print(xgboost.__version__)'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      found = python;
      return { python, version };
    } catch {
      tried.push(python);
    }
  }
  found = null;
  return { python: null, reason: `no python with xgboost (tried ${tried.join(', ')}); install Debian's python3-xgboost` };
}

function python(): string {
  if (found === undefined) findXgboostPython();
  if (!found) throw new Error('python3-xgboost is not available');
  return found;
}

export interface XgboostRun {
  predictions: Record<string, Float64Array>;
  fitSeconds: number;
  version: string;
}

/** Trains with `params` on sets[train] (or loads `model`) and predicts probabilities for the `predict` sets. */
export function runXgboost(job: {
  d: number;
  sets: Record<string, Matrix>;
  predict: string[];
  train?: string;
  params?: Record<string, unknown>;
  rounds?: number;
  model?: string;
  saveModel?: string;
}): XgboostRun {
  const dir = mkdtempSync(join(tmpdir(), 'fedmark-xgb-'));
  try {
    const sets: Record<string, { X: string; y: string | null; n: number }> = {};
    for (const [name, m] of Object.entries(job.sets)) {
      const X = join(dir, `${name}.X.f32`);
      writeFileSync(X, Buffer.from(m.X.buffer, m.X.byteOffset, m.n * job.d * 4));
      let y: string | null = null;
      if (m.y) {
        y = join(dir, `${name}.y.f32`);
        writeFileSync(y, Buffer.from(m.y.buffer, m.y.byteOffset, m.n * 4));
      }
      sets[name] = { X, y, n: m.n };
    }
    const spec = join(dir, 'job.json');
    writeFileSync(spec, JSON.stringify({ ...job, sets, out: dir }));
    const out = JSON.parse(
      execFileSync(python(), [SCRIPT, spec], { encoding: 'utf8', maxBuffer: 1 << 24 })
        .trim()
        .split('\n')
        .pop()!,
    );
    const predictions: Record<string, Float64Array> = {};
    for (const name of job.predict) {
      const buf = readFileSync(join(dir, `${name}.pred.f64`));
      predictions[name] = new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    }
    return { predictions, fitSeconds: out.fitSeconds, version: out.xgboost };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
