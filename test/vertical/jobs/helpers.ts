/**
 * Relay jobs over the real coordinator and nodes: register with the owner node, run each party's node,
 * stop everything on the first failure or a timeout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../../../src/federation/protocol/client.ts';
import { generateIdentity, publicIdentity, type Identity, type PublicIdentity } from '../../../src/crypto/identity.ts';
import { signManifest, type JobManifest, type SignedManifest } from '../../../src/federation/manifest.ts';
import { psiManifest } from '../../../src/vertical/jobs/manifest.ts';
import type { IdRulesInput } from '../../../src/vertical/psi/normalise.ts';
import { runPsiNode, type PsiNodeResult } from '../../../partner/vertical/psi-node.ts';
import { runRelayJobOwner } from '../../../owner/relay-job.ts';
import { silentLog } from '../../helpers/partners.ts';

export const POLL_MS = 60;

export async function coordinatorIdentity(url: string): Promise<PublicIdentity> {
  return new CoordinatorClient(url, generateIdentity('probe')).coordinatorIdentity();
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `tasks` with one abort signal: the first failure (or the timeout) stops the others. */
export async function together<T extends unknown[]>(timeoutMs: number, tasks: { [K in keyof T]: (signal: AbortSignal) => Promise<T[K]> }): Promise<T> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`did not finish within ${timeoutMs} ms`)), timeoutMs);
  try {
    return (await Promise.all(
      tasks.map((t) =>
        t(abort.signal).catch((err: unknown) => {
          abort.abort(err);
          throw err;
        }),
      ),
    )) as T;
  } finally {
    clearTimeout(timer);
  }
}

export interface PsiRun {
  manifest: JobManifest;
  signed: SignedManifest;
  owner: { state: string; reason: string | null };
  nodes: PsiNodeResult[];
}

/** A PSI job between `parties` over the coordinator at `url`, each party bringing its id cells. */
export async function runPsiJob(o: {
  url: string;
  jobId: string;
  parties: Identity[];
  ids: string[][];
  dir: string;
  rules?: IdRulesInput;
  maxSetSize?: number;
  padToMax?: boolean;
  /** Parties whose node the test runs itself (not started here). */
  skip?: number[];
  timeoutMs?: number;
  extra?: ((signal: AbortSignal) => Promise<unknown>)[];
  /** The owner each party's node pins (`--owner-key-id`; `job`: the job's real owner), by party index. */
  ownerPin?: (i: number) => string | undefined;
  /** The coordinator key id every node pins (`--coordinator-key-id`). */
  coordinatorKeyId?: string;
}): Promise<PsiRun> {
  const owner = generateIdentity('owner');
  const manifest = psiManifest({
    jobId: o.jobId,
    owner: publicIdentity(owner),
    coordinator: await coordinatorIdentity(o.url),
    parties: o.parties.map(publicIdentity),
    id: { column: 'email', rules: o.rules ?? { kind: 'email' } },
    maxSetSize: o.maxSetSize ?? 64,
    padToMax: o.padToMax ?? true,
    roundDeadlineSeconds: 60,
  });
  const signed = signManifest(manifest, owner);
  const nodes = o.parties.map(
    (p, i) => (signal: AbortSignal) =>
      o.skip?.includes(i)
        ? Promise.resolve(null as unknown as PsiNodeResult)
        : runPsiNode({
            coordinatorUrl: o.url,
            identity: p,
            jobId: o.jobId,
            ids: o.ids[i],
            stateDir: join(o.dir, `${o.jobId}-${p.name}`),
            log: silentLog,
            pollMs: POLL_MS,
            signal,
            joinTimeoutMs: 30_000,
            ownerKeyId: o.ownerPin?.(i) === 'job' ? publicIdentity(owner).keyId : o.ownerPin?.(i),
            coordinatorKeyId: o.coordinatorKeyId,
          }),
  );
  const [ownerResult, ...rest] = await together<unknown[]>(o.timeoutMs ?? 60_000, [
    (signal) => runRelayJobOwner({ coordinatorUrl: o.url, identity: owner, signed, log: silentLog, pollMs: POLL_MS, signal }),
    ...nodes,
    ...(o.extra ?? []),
  ]);
  return { manifest, signed, owner: ownerResult as PsiRun['owner'], nodes: rest.slice(0, o.parties.length) as PsiNodeResult[] };
}
