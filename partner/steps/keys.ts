import type { Identity } from '../../src/crypto/identity.ts';
import { openJobKey } from '../../src/crypto/key-ceremony.ts';
import { FedmarkError } from '../../src/errors.ts';
import { checkJobKey } from '../../src/federation/key-commitment.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { CoordinatorError, type CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { hasCode } from '../../src/federation/protocol/errors.ts';
import { usesJobKey, type SecureSumScheme } from '../../src/federation/secure-sum.ts';
import type { Logger } from 'pino';
import { NotYet, waitUntil } from './waiting.ts';

/**
 * Step 2: the job key. The owner seals it to this node's box key; the node polls until its sealed
 * copy is uploaded, opens it (bound to the job id) and checks it against the owner's commitment in
 * the job ledger's signed seq-0 entry (key-commitment.ts), saying what it waits for. If the job ends
 * before the key arrives (the ceremony failed, the owner halted it), the node stops with the job's
 * state and reason instead of polling forever. Plaintext jobs have no key.
 */
export async function fetchJobKey(o: {
  client: CoordinatorClient;
  manifest: JobManifest;
  identity: Identity;
  scheme: SecureSumScheme;
  pollMs: number;
  signal?: AbortSignal;
  log: Logger;
  onWaiting?: (message: string) => void;
  timeoutMs?: number;
}): Promise<Uint8Array | null> {
  if (!usesJobKey(o.scheme.scheme)) return null;
  const { jobId } = o.manifest;
  // A deadline: an owner that died during the ceremony leaves the job awaiting keys, and nothing else would end the wait.
  const wait = {
    what: `the job key of "${jobId}" from its owner ${o.manifest.owner.name}`,
    timeoutMs: o.timeoutMs ?? Number.POSITIVE_INFINITY,
    code: 'KEY_TIMEOUT',
    hint: "is the owner's `fedmark job run` still running? raise --key-timeout to wait longer",
  };
  return waitUntil({ ...wait, pollMs: o.pollMs, signal: o.signal, log: o.log, onWaiting: o.onWaiting, reportEveryMs: 60_000 }, async () => {
    try {
      const key = openJobKey(jobId, await o.client.sealedKey(jobId), Buffer.from(o.manifest.owner.boxPublicKey, 'base64'), o.identity);
      // Before anything is encrypted under it: the key every other key holder got, by the owner's signed commitment.
      checkJobKey(o.manifest, await o.client.ledger(jobId), key);
      return key;
    } catch (err) {
      if (err instanceof CoordinatorError && !hasCode(err, 'NO_SEALED_KEY'))
        throw new FedmarkError('KEY_CEREMONY', `fetching the sealed job key failed: ${err.message}`);
      if (!hasCode(err, 'NO_SEALED_KEY')) throw err;
    }
    const status = await o.client.status(jobId);
    if (status.state === 'failed' || status.state === 'halted' || status.state === 'completed') {
      throw new FedmarkError(
        'KEY_CEREMONY',
        `job ${jobId} is ${status.state}${status.reason ? ` (${status.reason})` : ''} and this node never received its job key: stopping`,
      );
    }
    return new NotYet('the owner has not uploaded it yet (the key ceremony runs once every partner answered)');
  });
}
