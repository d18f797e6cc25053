import type { Identity } from '../../src/crypto/identity.ts';
import { openJobKey } from '../../src/crypto/key-ceremony.ts';
import { FedmarkError } from '../../src/errors.ts';
import { checkJobKey } from '../../src/federation/key-commitment.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { CoordinatorError, type CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { hasCode } from '../../src/federation/protocol/errors.ts';
import type { SecureSumScheme } from '../../src/federation/secure-sum.ts';
import { sleep } from './context.ts';

/**
 * Step 2: the job key. The owner seals it to this node's box key; the node polls until its sealed
 * copy is uploaded, opens it (bound to the job id) and checks it against the owner's commitment in
 * the job ledger's signed seq-0 entry (key-commitment.ts). Plaintext jobs have no key.
 */
export async function fetchJobKey(o: { client: CoordinatorClient; manifest: JobManifest; identity: Identity; scheme: SecureSumScheme; pollMs: number; signal?: AbortSignal }): Promise<Uint8Array | null> {
  if (o.scheme.scheme !== 'ckks') return null;
  const { jobId } = o.manifest;
  for (;;) {
    o.signal?.throwIfAborted();
    try {
      const key = openJobKey(jobId, await o.client.sealedKey(jobId), Buffer.from(o.manifest.owner.boxPublicKey, 'base64'), o.identity);
      // Before anything is encrypted under it: the key every other key holder got, by the owner's signed commitment.
      checkJobKey(o.manifest, await o.client.ledger(jobId), key);
      return key;
    } catch (err) {
      if (err instanceof CoordinatorError && !hasCode(err, 'NO_SEALED_KEY')) throw new FedmarkError('KEY_CEREMONY', `fetching the sealed job key failed: ${err.message}`);
      if (!hasCode(err, 'NO_SEALED_KEY')) throw err;
    }
    await sleep(o.pollMs);
  }
}
