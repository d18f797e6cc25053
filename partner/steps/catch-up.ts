import { hasCode } from '../../src/federation/protocol/errors.ts';
import type { JobStatus } from '../../src/federation/protocol/schemas.ts';
import type { PartnerContext } from './context.ts';
import { witnessHead } from './witness.ts';

/**
 * Step 3 (every poll): apply every published round that changes the state and that this node has
 * not applied yet — after a restart that replays the job — report the resulting state hash, and
 * record each round this node took part in in its own ledger, witnessing the coordinator's head.
 * A round's sums are decrypted only if the partner-signed records published with them back what
 * they claim to hold (and list this node's own upload when it made one to that attempt).
 */
export async function catchUp(ctx: PartnerContext, status: JobStatus): Promise<void> {
  const { client, runtime, o } = ctx;
  const closed = new Set(status.closedRounds);
  for (const round of runtime.tracker.pending(Math.max(0, ...status.closedRounds))) {
    if (!closed.has(round)) break;
    const blobs: Record<string, Uint8Array> = {};
    for (const part of runtime.stateParts(round)) blobs[part] = await client.aggregate(o.jobId, round, part);
    const contents = await client.contents(o.jobId, round);
    const before = runtime.tracker.selection;
    const hash = await runtime.applyAggregate(round, blobs, contents);
    const selection = runtime.tracker.selection;
    const mine = runtime.tookPart(round, contents) ? runtime.released(round, contents.attempt) : null;
    // The selection goes on record before it is reported: the coordinator acts on it (an early stop skips rounds).
    if (selection && !before) ctx.ledger.selection(o.jobId, round, selection, hash);
    await client.reportModelHash(o.jobId, round, hash, selection).catch((err: unknown) => {
      if (!hasCode(err, 'JOB_CLOSED', 'HASH_CHANGED')) throw err;
    });
    if (mine || runtime.tookPart(round, contents)) {
      const head = await witnessHead(ctx);
      const record = { rowsUsed: ctx.data.train.n, globalModelHash: hash, coordinatorHead: { seq: head.seq, hash: head.hash } };
      if (mine) ctx.ledger.round(o.jobId, round, { ...record, releases: mine });
      else {
        // A round of a non-private job is recorded too: its release is unbounded, not absent.
        const own = runtime.ownRecord(round, contents.attempt)!;
        ctx.ledger.participation(o.jobId, round, { ...record, ciphertextHashes: own.parts.map((p) => p.sha256) });
      }
    }
    o.onRound?.({ round, modelHash: hash });
  }
}
