/**
 * The reference engine: the same operations as native-ops.ts written on @noble/curves (audited,
 * constant-time field arithmetic, RFC 9380 hash-to-curve), in the calling thread. About ten times
 * slower than OpenSSL, so it is used by tests to check the fast path's hashing, multiplications and
 * validation, and the whole protocol's results, not to run jobs.
 */
import { randomBytes } from 'node:crypto';
import { p256, p256_hasher } from '@noble/curves/nist.js';
import { ELEMENT_BYTES, P256_P, bytesToBigint, checkScalar, type Suite } from './group.ts';
import { rfc9380Dst, tiCandidate, tiExhausted, tiPrefix, TI_MAX_CANDIDATES } from './hash-to-curve.ts';
import { badPoint, type PsiEngine } from './engine.ts';

const Point = p256.Point;
type NoblePoint = InstanceType<typeof Point>;

/** Decodes an x-coordinate (either of the two points with that x; x-only results do not depend on it). */
function decodeX(x: Uint8Array): NoblePoint {
  const c = new Uint8Array(33);
  c[0] = 2;
  c.set(x, 1);
  return Point.fromBytes(c);
}

function xOf(point: NoblePoint): Uint8Array {
  return point.toBytes(true).subarray(1);
}

export function nobleHashPoint(suite: Suite, domain: string, id: string): NoblePoint {
  if (suite === 'p256-rfc9380-sswu') return p256_hasher.hashToCurve(new TextEncoder().encode(id), { DST: rfc9380Dst(domain) }) as NoblePoint;
  const prefix = tiPrefix(domain, id);
  for (let c = 0; c < TI_MAX_CANDIDATES; c++) {
    const x = tiCandidate(prefix, c);
    if (bytesToBigint(x) >= P256_P) continue;
    try {
      return decodeX(x);
    } catch {
      // not on the curve: next candidate
    }
  }
  throw tiExhausted(id);
}

export class NobleEngine implements PsiEngine {
  readonly name = 'noble (reference)';

  async hashAndBlind(ids: readonly string[], suite: Suite, domain: string, scalar: Uint8Array): Promise<Uint8Array> {
    const k = checkScalar(scalar);
    const out = new Uint8Array(ids.length * ELEMENT_BYTES);
    ids.forEach((id, i) => out.set(xOf(nobleHashPoint(suite, domain, id).multiply(k)), i * ELEMENT_BYTES));
    return out;
  }

  async blind(xs: Uint8Array, scalar: Uint8Array): Promise<Uint8Array> {
    const k = checkScalar(scalar);
    const n = xs.length / ELEMENT_BYTES;
    const out = new Uint8Array(xs.length);
    for (let i = 0; i < n; i++) {
      const x = xs.subarray(i * ELEMENT_BYTES, (i + 1) * ELEMENT_BYTES);
      if (bytesToBigint(x) >= P256_P) throw badPoint(i, 'x-coordinate is not reduced mod p (non-canonical encoding)');
      let point: NoblePoint;
      try {
        point = decodeX(x);
      } catch {
        throw badPoint(i, 'x-coordinate is not on the P-256 curve');
      }
      out.set(xOf(point.multiply(k)), i * ELEMENT_BYTES);
    }
    return out;
  }

  async randomElements(count: number): Promise<Uint8Array> {
    const out = new Uint8Array(count * ELEMENT_BYTES);
    for (let i = 0; i < count; i++) out.set(xOf(Point.BASE.multiply(checkScalarFromRandom())), i * ELEMENT_BYTES);
    return out;
  }

  async close(): Promise<void> {}
}

function checkScalarFromRandom(): bigint {
  for (;;) {
    const b = randomBytes(32);
    const k = bytesToBigint(b);
    if (k > 0n && k < p256.Point.Fn.ORDER) return k;
  }
}
