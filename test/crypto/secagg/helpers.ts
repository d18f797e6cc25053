/** Shared set-up for the secure-aggregation tests: BFV context, seeded identities, a step-by-step round. */
import { createHash } from 'node:crypto';
import { BfvAggregator, BfvCipher, BfvContext, DEFAULT_BFV_PARAMS, generateBfvSecretKey } from '../../../src/crypto/bfv/index.ts';
import { publicIdentity, type Identity, type PublicIdentity } from '../../../src/crypto/identity.ts';
import { deterministicIdentity } from '../../helpers/identities.ts';
import {
  SecaggCoordinator,
  SecaggHistory,
  SecaggPartner,
  makeSecaggConfig,
  planEncoding,
  type PartBound,
  type SecaggConfig,
} from '../../../src/crypto/secagg/index.ts';
import { createRng } from '../../../src/util/rng.ts';

export interface Bfv {
  ctx: BfvContext;
  secretKey: Uint8Array;
  cipher: BfvCipher;
  dispose(): void;
}

export async function openBfv(): Promise<Bfv> {
  const ctx = await BfvContext.create(DEFAULT_BFV_PARAMS);
  const secretKey = generateBfvSecretKey(ctx);
  const cipher = new BfvCipher(ctx, secretKey);
  return { ctx, secretKey, cipher, dispose: () => (cipher.dispose(), ctx.dispose()) };
}

/** Deterministic identities (so key-id order, and with it partner indices, are stable). */
export function identities(n: number, tag = 'p'): Identity[] {
  return Array.from({ length: n }, (_, i) => deterministicIdentity(`${tag}${i}`));
}

export const COORDINATOR = deterministicIdentity('secagg-coordinator');
export const COORD_KEY = Buffer.from(COORDINATOR.signPublicKey).toString('base64');

/** A deterministic byte source (tests only): a seeded stream of SHA-256 blocks. */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let pos = 0; pos < n; pos += 32) {
      const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - pos)), pos);
    }
    return out;
  };
}

export function realInputs(n: number, length: number, seed: number, magnitude = 1): Record<string, Float64Array>[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => ({ update: Float64Array.from({ length }, () => (rng.next() * 2 - 1) * magnitude) }));
}

export { expectCode, expectCodeAsync } from '../helpers.ts';

/** Σ of encoded vectors mod t. */
export function sumMod(vs: Float64Array[], t: number): Float64Array {
  const out = new Float64Array(vs[0].length);
  for (const v of vs) for (let i = 0; i < v.length; i++) out[i] = (out[i] + v[i]) % t;
  return out;
}

/** One attempt played step by step, every party in reach, for the attack tests. */
export class Round {
  readonly config: SecaggConfig;
  readonly publics: PublicIdentity[];
  readonly partners: SecaggPartner[];
  readonly byId = new Map<string, SecaggPartner>();
  readonly coordinator: SecaggCoordinator;
  readonly ids: string[];
  readonly agg: BfvAggregator;

  constructor(
    readonly bfv: Bfv,
    readonly identities: Identity[],
    parts: PartBound[],
    opts: {
      round?: number;
      attempt?: number;
      threshold?: number;
      degree?: number;
      histories?: Map<string, SecaggHistory>;
      random?: (id: string) => ((n: number) => Uint8Array) | undefined;
    } = {},
  ) {
    this.publics = identities.map((i) => publicIdentity(i));
    this.ids = this.publics.map((p) => p.keyId).sort();
    this.config = makeSecaggConfig({
      jobId: 'job-test',
      round: opts.round ?? 1,
      attempt: opts.attempt ?? 0,
      selected: this.ids,
      he: { paramsId: bfv.ctx.paramsId, plainModulus: bfv.ctx.plainModulus, maxSummands: bfv.ctx.maxSummands },
      encoding: planEncoding(parts, bfv.ctx.plainModulus, identities.length),
      threshold: opts.threshold,
      degree: opts.degree,
    });
    this.partners = identities.map((identity, i) =>
      SecaggPartner.create({
        config: this.config,
        identity,
        partners: this.publics,
        coordinatorSignPublicKey: COORD_KEY,
        history: opts.histories?.get(this.publics[i].keyId),
        random: opts.random?.(this.publics[i].keyId),
      }),
    );
    for (const p of this.partners) this.byId.set(p.id, p);
    this.coordinator = new SecaggCoordinator({ config: this.config, identity: COORDINATOR, partners: this.publics });
    this.agg = new BfvAggregator(bfv.ctx);
  }

  /** Partner by position in key-id order (index 0 = lowest). */
  at(i: number): SecaggPartner {
    return this.byId.get(this.ids[i])!;
  }
}
