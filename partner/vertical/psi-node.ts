import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { keyId as keyIdOf, type Identity } from '../../src/crypto/identity.ts';
import { FedmarkError } from '../../src/errors.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { builtinWorkloads } from '../../src/federation/workloads/index.ts';
import { COORDINATOR, type WorkloadRegistry } from '../../src/federation/workload.ts';
import { psiSpecOf } from '../../src/vertical/jobs/psi-workload.ts';
import { NativeEngine, type PsiEngine } from '../../src/vertical/psi/engine.ts';
import { decodeFrame, encodeFrame } from '../../src/vertical/psi/messages.ts';
import { alignedRows, PsiParty, type PsiOutcome } from '../../src/vertical/psi/party.ts';
import { PartnerLedger } from '../ledger.ts';
import { joinJob } from '../steps/join.ts';
import { runRelayRounds, sentDigest, type RelayParty, type RelayNodeConnection, joinConnection } from './relay-loop.ts';

export interface PsiNodeOptions extends RelayNodeConnection {
  coordinatorUrl: string;
  identity: Identity;
  jobId: string;
  /** The id cell of every row, in the party's row order (row i of the result is ids[i]'s row). */
  ids: readonly string[];
  stateDir: string;
  /** Where the aligned order is written (default <stateDir>/<jobId>.alignment.csv). */
  outPath?: string;
  log: Logger;
  reviewJob?: (manifest: JobManifest) => string[];
  ledgerPath?: string;
  /** Curve engine (default: OpenSSL in two worker threads). */
  engine?: PsiEngine;
  workloads?: WorkloadRegistry;
}

export interface PsiNodeResult {
  state: string;
  reason: string | null;
  outcome: PsiOutcome | null;
  /** Rows of this party's input for each common customer, in the common order. */
  alignment: number[][] | null;
  outPath: string | null;
}

/**
 * A party of a PSI job over the federation: join (review and accept), then the ring rounds with
 * PsiParty doing the curve work. The result — which of its own rows are in the intersection, in the
 * common order — is written locally as `position,row,id` (its own rows and its own normalised ids,
 * never another party's), and its psi.party.* entries go to its own ledger.
 */
export async function runPsiNode(o: PsiNodeOptions): Promise<PsiNodeResult> {
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { signal: o.signal });
  const me = keyIdOf(o.identity.signPublicKey);
  const pollMs = o.pollMs ?? 150;
  const workloads = o.workloads ?? builtinWorkloads;
  mkdirSync(o.stateDir, { recursive: true });
  const ledger = PartnerLedger.open(o.ledgerPath ?? join(o.stateDir, 'partner.ledger.jsonl'), o.identity, o.stateDir);
  const log = o.log.child({ jobId: o.jobId, node: o.identity.name });
  const fail = (state: string, reason: string | null): PsiNodeResult => ({ state, reason, outcome: null, alignment: null, outPath: null });
  try {
    const joined = await joinJob(
      {
        ...joinConnection(o, pollMs),
        reviewJob: o.reviewJob ?? (() => []),
        schemaHash: (m) => m.dataset.schemaHash,
      },
      client,
      ledger,
      me,
      (m) => (m.workload.kind === 'psi' && workloads.has('psi') ? [] : [`job ${m.jobId} runs workload "${m.workload.kind}", not a PSI job`]),
      log,
    );
    if (!joined.joined) return fail(joined.state, joined.reason);
    const { manifest } = joined;
    const spec = psiSpecOf(manifest);
    const engine = o.engine ?? new NativeEngine({ threads: 2 });
    const party = new PsiParty({ spec, identity: o.identity, ids: o.ids, engine });
    const outbox = new Map<number, { to: string; body: Uint8Array }[]>();
    const relayParty: RelayParty = {
      send: async (round) => {
        if (round === 1)
          outbox.set(
            1,
            (await party.start()).map((x) => ({ to: x.header.to, body: encodeFrame(x) })),
          );
        const out = outbox.get(round) ?? [];
        return out.map((x) => ({ to: x.to === spec.coordinator.keyId ? COORDINATOR : x.to, body: x.body }));
      },
      receive: async (round, messages) => {
        const next: { to: string; body: Uint8Array }[] = [];
        for (const msg of messages) for (const x of await party.receive(decodeFrame(msg.body))) next.push({ to: x.header.to, body: encodeFrame(x) });
        if (next.length) outbox.set(round + 1, next);
      },
    };
    let run;
    try {
      run = await runRelayRounds({
        client,
        manifest,
        workload: workloads.resolve(manifest),
        me,
        coordinatorKeyId: spec.coordinator.keyId,
        party: relayParty,
        log,
        pollMs,
        longPollMs: o.longPollMs,
        signal: o.signal,
      });
    } catch (err) {
      // A refusal of what the ring sent (a malformed point, a forged result) ends this party's part with the reason on record.
      if (err instanceof FedmarkError && err.code.startsWith('PSI_')) {
        const statement = ledger.withdrawal(o.jobId, `${err.code}: ${err.message}`, 0);
        await client.withdraw(o.jobId, `${err.code}: ${err.message}`, statement).catch(() => undefined);
      }
      throw err;
    } finally {
      if (!o.engine) await engine.close();
    }
    for (const e of party.ledgerEntries()) ledger.record(e.type as 'psi.party.list', e.payload as never);
    if (run.state !== 'completed' || party.state !== 'done') return fail(run.state, run.reason ?? `this party's PSI ended in phase ${party.state}`);
    const outcome = party.outcome();
    const alignment = alignedRows(outcome);
    const outPath = o.outPath ?? join(o.stateDir, `${o.jobId}.alignment.csv`);
    writeAlignment(outPath, outcome, alignment);
    ledger.record('vertical.party.job', {
      jobId: o.jobId,
      party: me,
      role: 'psi',
      rounds: run.rounds,
      messagesSent: run.sent.length,
      bytesSent: run.sent.reduce((a, s) => a + s.bytes, 0),
      sentDigest: sentDigest(run.sent),
      alignedRows: alignment.reduce((a, r) => a + r.length, 0),
    });
    log.info({ intersection: outcome.intersectionSize, outPath }, 'PSI done');
    return { state: run.state, reason: null, outcome, alignment, outPath };
  } finally {
    ledger.close();
  }
}

/** `position,row,id`: the party's own rows (0-based, input order) and own normalised ids, in the common order. */
function writeAlignment(path: string, outcome: PsiOutcome, rows: number[][]): void {
  mkdirSync(dirname(path), { recursive: true });
  const lines = [`# fedmark-psi-alignment/1 job=${outcome.jobId} intersection=${outcome.intersectionSize} order=${outcome.orderDigest}`, 'position,row,id'];
  rows.forEach((list, i) => {
    const id = outcome.elements.values[outcome.order[i]];
    for (const r of list) lines.push(`${i},${r},${JSON.stringify(id)}`);
  });
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
}
