/**
 * Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for everything the ledger hashes or
 * signs. Hashing canonical bytes rather than "whatever JSON.stringify produced" means an entry's
 * hash and signature do not depend on key order or on which program wrote the line.
 */
import canonicalizeModule from 'canonicalize';
import { FedmarkError } from '../../errors.ts';
import { sha256Hex } from '../../util/hash.ts';

// The package is CommonJS (`module.exports = fn`) but ships an ESM-style `export default` typing,
// so TypeScript (NodeNext) and some loaders disagree on whether the default import is the function
// itself or a namespace holding it. Resolve it once, at load time.
type Canonicalize = (value: unknown) => string | undefined;
const canonicalizeFn: Canonicalize = (() => {
  const m = canonicalizeModule as unknown as Canonicalize | { default: Canonicalize };
  if (typeof m === 'function') return m;
  if (m && typeof m.default === 'function') return m.default;
  throw new Error('canonicalize: unexpected module shape');
})();

/** RFC 8785 canonical JSON text. Rejects values JSON cannot represent (undefined, NaN, ±Infinity). */
export function canonicalJson(value: unknown): string {
  let out: string | undefined;
  try {
    out = canonicalizeFn(value);
  } catch (err) {
    throw new FedmarkError('LEDGER_NOT_CANONICALIZABLE', `value cannot be canonicalized: ${(err as Error).message}`);
  }
  if (out === undefined) {
    throw new FedmarkError('LEDGER_NOT_CANONICALIZABLE', 'value cannot be canonicalized (undefined, function or symbol)');
  }
  return out;
}

/** UTF-8 bytes of the canonical JSON text. */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}

/** Lower-case hex SHA-256 of the canonical JSON bytes. */
export function sha256Canonical(value: unknown): string {
  return sha256Hex(canonicalBytes(value));
}
