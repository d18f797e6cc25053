import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import type { Identity } from '../../src/crypto/identity.ts';

/**
 * An identity derived from a label instead of drawn at random: two calls with the same label give
 * the same keys (and key id). Test use only — its secret keys are guessable. This module imports
 * nothing of ours at run time, so a vi.mock factory of src/crypto/identity.ts can load it.
 */
export function deterministicIdentity(name: string, label = name): Identity {
  const seed = (what: string) => new Uint8Array(createHash('sha256').update(`fedmark-test-identity|${label}|${what}`).digest());
  const sign = nacl.sign.keyPair.fromSeed(seed('sign'));
  const box = nacl.box.keyPair.fromSecretKey(seed('box'));
  return { name, signPublicKey: sign.publicKey, signSecretKey: sign.secretKey, boxPublicKey: box.publicKey, boxSecretKey: box.secretKey };
}
