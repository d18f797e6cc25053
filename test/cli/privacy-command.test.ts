import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const fedmark = (...args: string[]) => spawnSync(process.execPath, [tsx, main, ...args], { encoding: 'utf8', timeout: 60_000 });
const reference = JSON.parse(readFileSync(new URL('../fixtures/reference/rdp-vectors.json', import.meta.url), 'utf8')) as {
  cases: { q: number; noise_multiplier: number; steps: number; delta: number; epsilon: number; best_order: number }[];
};

describe('fedmark privacy (CLI)', () => {
  it('prints ε and the best order that match the Opacus reference, and calibrates σ back to the target', () => {
    const c = reference.cases[reference.cases.length >> 1];
    const eps = fedmark(
      'privacy',
      'epsilon',
      '--sampling-rate',
      String(c.q),
      '--noise-multiplier',
      String(c.noise_multiplier),
      '--steps',
      String(c.steps),
      '--delta',
      String(c.delta),
      '--json',
    );
    expect(eps.status, eps.stderr).toBe(0);
    const out = JSON.parse(eps.stdout) as { epsilon: number; bestOrder: number };
    expect(Math.abs(out.epsilon - c.epsilon) / c.epsilon).toBeLessThan(1e-6);
    expect(out.bestOrder).toBe(c.best_order);

    const cal = fedmark('privacy', 'calibrate', '--epsilon', '3', '--delta', '1e-5', '--sampling-rate', '0.02', '--steps', '1000', '--json');
    expect(cal.status, cal.stderr).toBe(0);
    const sigma = JSON.parse(cal.stdout) as { noiseMultiplier: number; epsilon: number };
    expect(sigma.epsilon).toBeLessThanOrEqual(3);
    expect(sigma.epsilon).toBeGreaterThan(2.95);
  }, 60_000);

  it('refuses bad arguments and unreachable targets with a clear message and a non-zero exit', () => {
    const bad = fedmark('privacy', 'epsilon', '--sampling-rate', 'abc', '--noise-multiplier', '1', '--steps', '10', '--delta', '1e-5');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--sampling-rate must be a number/);
    const unreachable = fedmark('privacy', 'calibrate', '--epsilon', '0', '--delta', '1e-5', '--sampling-rate', '0.02', '--steps', '1000');
    expect(unreachable.status).toBe(2);
    expect(unreachable.stderr).toMatch(/fedmark: /);
  }, 60_000);
});
