import { FedmarkError } from '../../errors.ts';
import type { CoordinatorClient } from './client.ts';
import { hasCode } from './errors.ts';
import { relayRoutes } from './relay-routes.ts';
import type { StatusWatcher } from './status-watcher.ts';

/** The nodes' side of the relay route family (./relay-routes.ts), over the signed client. */
export function relayPut(client: CoordinatorClient, jobId: string, round: number, to: string, body: Uint8Array) {
  return client.call(relayRoutes.relayPut, { jobId, round, to }, { body });
}

export function relayGet(client: CoordinatorClient, jobId: string, round: number, from: string): Promise<Uint8Array> {
  return client.call(relayRoutes.relayGet, { jobId, round, from });
}

export function postRelease(client: CoordinatorClient, jobId: string, round: number, statement: Record<string, unknown>) {
  return client.call(relayRoutes.release, { jobId, round }, { body: { statement } });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls for a relayed message until it arrives (or the job ends, or `timeoutMs` passes): between
 * tries it waits for the job to move (`watcher`, long-polling: a sender's last message of a round
 * changes the status) or `pollMs`.
 */
export async function awaitRelay(
  client: CoordinatorClient,
  jobId: string,
  round: number,
  from: string,
  o: { pollMs: number; timeoutMs: number; signal?: AbortSignal; jobEnded?: () => Promise<string | null>; watcher?: StatusWatcher },
): Promise<Uint8Array> {
  const end = Date.now() + o.timeoutMs;
  for (let k = 0; ; k++) {
    o.signal?.throwIfAborted();
    try {
      return await relayGet(client, jobId, round, from);
    } catch (err) {
      if (!hasCode(err, 'NO_RELAY_MESSAGE')) throw err;
    }
    if (o.watcher?.longPolling) {
      const s = await o.watcher.next();
      if (s.state === 'failed' || s.state === 'halted')
        throw new FedmarkError('JOB_ENDED', `round ${round}: the message from ${from} never came: job ${s.state}: ${s.reason}`);
    } else if (k % 10 === 9 && o.jobEnded) {
      const why = await o.jobEnded();
      if (why) throw new FedmarkError('JOB_ENDED', `round ${round}: the message from ${from} never came: ${why}`);
    }
    if (Date.now() > end) throw new FedmarkError('RELAY_TIMEOUT', `round ${round}: no message from ${from} within ${o.timeoutMs} ms`);
    if (!o.watcher?.longPolling) await sleep(o.pollMs);
  }
}
