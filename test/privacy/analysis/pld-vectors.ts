import { readFileSync } from 'node:fs';

/** Google dp_accounting PLD reference cases (test/fixtures/reference/pld-vectors.json). */
export interface PldCase {
  q: number;
  noise_multiplier: number;
  steps: number;
  delta: number;
  epsilon: number;
  rdp_epsilon: number;
}

export const pldVectors = JSON.parse(readFileSync(new URL('../../fixtures/reference/pld-vectors.json', import.meta.url), 'utf8')) as {
  tolerance: { relative: number };
  cases: PldCase[];
};
