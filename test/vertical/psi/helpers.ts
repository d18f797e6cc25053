import { createHash } from 'node:crypto';
import { identityFromSeed, publicIdentity, type Identity } from '../../../src/crypto/identity.ts';
import { normaliseId, type IdRulesInput } from '../../../src/vertical/psi/normalise.ts';
import { parsePsiSpec, type PsiSpec, type PsiSpecInput } from '../../../src/vertical/psi/spec.ts';
import type { PsiOutcome } from '../../../src/vertical/psi/party.ts';

const seed = (name: string) => new Uint8Array(createHash('sha256').update(`psi-test|${name}`).digest());

export const PARTY_NAMES = ['bank', 'telco', 'retailer'];

export function identities(n: number): { parties: Identity[]; coordinator: Identity } {
  return { parties: PARTY_NAMES.slice(0, n).map((p) => identityFromSeed(p, seed(p))), coordinator: identityFromSeed('coordinator', seed('coordinator')) };
}

export function makeSpec(
  ids: { parties: Identity[]; coordinator: Identity },
  overrides: Partial<Omit<PsiSpecInput, 'parties' | 'coordinator'>> & { rules?: IdRulesInput } = {},
): PsiSpec {
  const { rules, ...rest } = overrides;
  return parsePsiSpec({
    format: 'fedmark-psi-1',
    jobId: 'psi-test-1',
    parties: ids.parties.map(publicIdentity),
    coordinator: publicIdentity(ids.coordinator),
    id: { column: 'customer_id', rules: rules ?? { kind: 'email' } },
    maxSetSize: 64,
    padToMax: false,
    chunkBytes: 1024,
    ...rest,
  });
}

/** The plaintext answer: normalised values common to every party (as a sorted array). */
export function plainIntersection(spec: PsiSpec, lists: readonly (readonly string[])[]): string[] {
  const sets = lists.map(
    (l) =>
      new Set(
        l
          .map((v) => normaliseId(v, spec.id.rules))
          .filter((n) => n.ok)
          .map((n) => (n as { value: string }).value),
      ),
  );
  return [...sets[0]].filter((v) => sets.every((s) => s.has(v))).sort();
}

/** The common ids in the order a party got them. */
export function orderedValues(o: PsiOutcome): string[] {
  return Array.from(o.order, (e) => o.elements.values[e]);
}
