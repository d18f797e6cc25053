import type { Logger } from 'pino';
import { FedmarkError } from '../../src/errors.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import type { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { hasCode } from '../../src/federation/protocol/errors.ts';
import { awaitRelay, postRelease, relayPut } from '../../src/federation/protocol/relay-client.ts';
import type { JobStatus } from '../../src/federation/protocol/schemas.ts';
import { MAX_ATTEMPTS } from '../../src/federation/round-machine.ts';
import { COORDINATOR, planOf, type AnyWorkload } from '../../src/federation/workload.ts';
import type { LabelledDpEvent } from '../../src/privacy/dp-event.ts';
import { sentDigestOf } from '../../src/privacy/ledger/audit/analyze-vertical.ts';
import { StatusWatcher } from '../../src/federation/protocol/status-watcher.ts';

/** One party of a relay job, as the loop drives it round by round. */
/** How a vertical party node reaches and trusts the coordinator: the options every one of them takes. */
export interface RelayNodeConnection {
  /** Interval polling: the pause between status reads while joining, and against a coordinator without the long-poll route. */
  pollMs?: number;
  /** How long one long-poll of the job status may be held (default 20 s, capped by the coordinator); 0: interval polling only. */
  longPollMs?: number;
  signal?: AbortSignal;
  joinTimeoutMs?: number;
  /** The owner this node works for in this job (`--owner-key-id`): a job signed by another owner is refused. */
  ownerKeyId?: string;
  /** The coordinator this node works with (`--coordinator-key-id`): any other, even one that copies its public identity, is refused. */
  coordinatorKeyId?: string;
  onWaiting?: (message: string) => void;
}

/** The join options a vertical party node passes on unchanged (see partner/steps/join.ts). */
export function joinConnection(o: RelayNodeConnection & { jobId: string; coordinatorUrl: string }, pollMs: number) {
  return {
    jobId: o.jobId,
    coordinatorUrl: o.coordinatorUrl,
    ownerKeyId: o.ownerKeyId,
    coordinatorKeyId: o.coordinatorKeyId,
    onWaiting: o.onWaiting,
    pollMs,
    joinTimeoutMs: o.joinTimeoutMs,
    signal: o.signal,
  };
}

export interface RelayParty {
  /** Its messages of `round` (recipient key id, or COORDINATOR), produced once. */
  send(round: number): Promise<{ to: string; body: Uint8Array }[]>;
  /** The messages addressed to it in `round`, by sender. */
  receive(round: number, messages: { from: string; body: Uint8Array }[]): Promise<void>;
  /** Before it sends in a round where it releases: charge the releases and return the attested statement to file. */
  release?(round: number, events: LabelledDpEvent[]): Promise<Record<string, unknown>>;
}

export interface RelayRunResult {
  state: string;
  reason: string | null;
  rounds: number;
  sent: { round: number; to: string; sha256: string; bytes: number }[];
}

/**
 * Step of a relay node: every round of the job's plan in order — file the release statement if the
 * round has one for this party, relay its messages once the round is open, then fetch what is
 * addressed to it. A round retried by the coordinator (deadline) gets the same bytes again, never a
 * new computation. Stops when the job ends.
 */
export async function runRelayRounds(o: {
  client: CoordinatorClient;
  manifest: JobManifest;
  workload: AnyWorkload;
  me: string;
  coordinatorKeyId: string;
  party: RelayParty;
  log: Logger;
  pollMs: number;
  longPollMs?: number;
  signal?: AbortSignal;
}): Promise<RelayRunResult> {
  const { client, manifest: m, me } = o;
  const jobId = m.jobId;
  const total = o.workload.totalRounds(m);
  const timeoutMs = m.roundDeadlineSeconds * 1000 * MAX_ATTEMPTS + 60_000;
  const sent: RelayRunResult['sent'] = [];
  const outbox = new Map<number, { to: string; body: Uint8Array }[]>();
  const url = (k: string) => (k === COORDINATOR ? o.coordinatorKeyId : k);
  // One watcher for the whole run: each wait returns as soon as the job moved past what this loop last saw.
  const watcher = new StatusWatcher(client, jobId, { pollMs: o.pollMs, waitMs: o.longPollMs, signal: o.signal, onFallback: (why) => o.log.info(why) });
  let status: JobStatus = await watcher.next();
  const ended = (s: JobStatus) => s.state === 'completed' || s.state === 'failed' || s.state === 'halted';
  const jobEnded = async () => {
    const s = await client.status(jobId);
    return s.state === 'failed' || s.state === 'halted' ? `job ${s.state}: ${s.reason}` : null;
  };
  /** A retried attempt of a round we already relayed: the same bytes again. */
  const resend = async (s: JobStatus) => {
    const mine = outbox.get(s.round);
    if (!mine || s.roundState !== 'open' || s.submitted.includes(me)) return;
    for (const msg of mine) await relayPut(client, jobId, s.round, url(msg.to), msg.body);
  };
  for (let round = 1; round <= total; round++) {
    const relay = planOf(o.workload, m, round).relay;
    if (!relay) throw new FedmarkError('RELAY_WORKLOAD', `round ${round} of job ${jobId} is not a relay round`);
    const mine = relay.messages.filter((x) => x.from === me);
    const inbound = relay.messages.filter((x) => x.to === me);
    // The wait for a relayed message reads the status too: go on from the newest one seen.
    status = watcher.latest ?? status;
    if (mine.length) {
      const end = Date.now() + timeoutMs;
      while (!(status.round === round && status.roundState === 'open')) {
        o.signal?.throwIfAborted();
        if (ended(status)) return { state: status.state, reason: status.reason, rounds: round - 1, sent };
        if (status.round > round) throw new FedmarkError('RELAY_SKIPPED', `round ${round} closed without this party's messages`);
        if (Date.now() > end) throw new FedmarkError('RELAY_TIMEOUT', `round ${round} did not open within ${timeoutMs} ms`);
        status = await watcher.next();
        await resend(status);
      }
      const release = relay.releases.find((r) => r.keyId === me);
      if (release) {
        if (!o.party.release) throw new FedmarkError('RELAY_WORKLOAD', `round ${round} plans a release by this party, which cannot make one`);
        await postRelease(client, jobId, round, await o.party.release(round, release.events));
      }
      const messages = await o.party.send(round);
      outbox.set(round, messages);
      for (const msg of messages) {
        const res = await relayPut(client, jobId, round, url(msg.to), msg.body).catch((err: unknown) => {
          if (hasCode(err, 'JOB_CLOSED')) return null;
          throw err;
        });
        if (res) sent.push({ round, to: msg.to, sha256: res.hash, bytes: msg.body.length });
      }
      o.log.debug({ round, messages: messages.length }, 'relayed');
    }
    if (inbound.length) {
      const got: { from: string; body: Uint8Array }[] = [];
      for (const x of inbound)
        got.push({
          from: x.from,
          body: await awaitRelay(client, jobId, round, url(x.from), { pollMs: o.pollMs, timeoutMs, signal: o.signal, jobEnded, watcher }),
        });
      await o.party.receive(round, got);
    }
    outbox.delete(round - 2);
  }
  for (status = watcher.latest ?? status; ;) {
    if (ended(status)) return { state: status.state, reason: status.reason, rounds: total, sent };
    await resend(status);
    status = await watcher.next();
  }
}

/** SHA-256 over the hashes of every message sent, by round then recipient (what the audit recomputes from relay.round entries). */
export function sentDigest(sent: RelayRunResult['sent']): string {
  return sentDigestOf([...sent].sort((a, b) => a.round - b.round || (a.to < b.to ? -1 : a.to > b.to ? 1 : 0)));
}
