/**
 * Attacks on vertical SecureBoost end to end against the real coordinator and partner nodes, through a
 * lying proxy in front of the coordinator (test/helpers/lying-proxy.ts): a relay that replays and
 * reorders messages or alters them in transit, a feature holder that returns altered sums (signed
 * with its own key), and a label holder that asks a feature holder for what the protocol never gives.
 * Each would go unnoticed — and the victim would go on computing — if the property it tests broke.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity, type Identity } from '../../../src/crypto/identity.ts';
import { signRequest } from '../../../src/crypto/request-signing.ts';
import { parseBlob, writeBlob } from '../../../src/crypto/seal-wire/blob.ts';
import { signManifest } from '../../../src/federation/manifest.ts';
import { FedmarkError } from '../../../src/errors.ts';
import { readLedger } from '../../../src/privacy/ledger/reader.ts';
import { openMessage, readEnvelope, sealMessage } from '../../../src/vertical/envelope.ts';
import { VerticalHeContext } from '../../../src/vertical/he/context.ts';
import { secureBoostManifest } from '../../../src/vertical/jobs/manifest.ts';
import { runSecureBoostNode } from '../../../partner/vertical/secureboost-node.ts';
import { runRelayJobOwner } from '../../../owner/relay-job.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';
import { LyingProxy, bytesResponse, type ProxyRequest, type RuleContext } from '../../helpers/lying-proxy.ts';
import { silentLog } from '../../helpers/partners.ts';
import { bankSplit, vparams, type BankSplit } from '../secureboost/helpers.ts';
import { POLL_MS, tempDir } from './helpers.ts';

let coord: TestCoordinator;
let proxy: LyingProxy;
let tmp: ReturnType<typeof tempDir>;
let s: BankSplit;
let he: VerticalHeContext;

beforeAll(async () => {
  coord = await startTestCoordinator({ tickMs: 40 });
  proxy = await LyingProxy.start(coord.url);
  tmp = tempDir('fedmark-vsb-attack-');
  s = await bankSplit(900, 5);
  he = await VerticalHeContext.create();
});
afterAll(async () => {
  he?.dispose();
  await proxy?.close();
  await coord?.close();
  tmp?.cleanup();
});

const keyOf = (k: string) => s.identities.map(publicIdentity).find((p) => p.keyId === k);
const me = (id: Identity) => ({ ...id, keyId: publicIdentity(id).keyId });

/** What a party can do with its own keys: open a message addressed to it, or re-seal and re-sign one it sends. */
function reseal(
  frame: Uint8Array,
  recipient: Identity,
  sender: Identity,
  change: (h: { kind: string; round: number }, sections: Map<string, Uint8Array>) => { kind?: string; sections: Map<string, Uint8Array> },
): Uint8Array {
  const { header } = readEnvelope(frame, keyOf);
  const sections = openMessage(
    frame,
    me(recipient),
    { jobId: header.jobId, specHash: header.specHash, round: header.round, kind: header.kind, from: header.from, to: header.to },
    keyOf,
  );
  const out = change(header, sections);
  return sealMessage(
    { jobId: header.jobId, specHash: header.specHash, round: header.round, kind: out.kind ?? header.kind, from: header.from, to: header.to },
    [...out.sections].map(([name, bytes]) => ({ name, bytes })),
    sender,
    keyOf(header.to)!,
  );
}

/** Forwards a PUT with a new body, signed again by `sender` (what a malicious sender's node would send). */
function resigned(req: ProxyRequest, ctx: RuleContext, sender: Identity, body: Uint8Array) {
  const round = Number(req.path.match(/rounds\/(\d+)/)![1]);
  const headers = {
    ...req.headers,
    ...signRequest({ method: req.method, path: req.path, body, jobId: req.headers['x-fedmark-job'], round, identity: sender }),
  };
  return ctx.forward({ headers, body: Buffer.from(body) });
}

interface Outcome {
  owner: { state: string; reason: string | null };
  errors: (FedmarkError | null)[];
  ledger: string;
}

/** A small job through the proxy; the nodes' failures are returned, not thrown. */
async function attackedJob(jobId: string): Promise<Outcome> {
  const params = vparams(s, { trees: 2, depth: 2 });
  const owner = generateIdentity('owner');
  const manifest = secureBoostManifest({ jobId, owner: publicIdentity(owner), parties: s.identities.map(publicIdentity), params, roundDeadlineSeconds: 30 });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error('attack job timed out')), 60_000);
  const node = (i: number) =>
    runSecureBoostNode({
      coordinatorUrl: proxy.url,
      identity: s.identities[i],
      jobId,
      rows: i === 0 ? s.bank : s.telco,
      schemaHash: params.parties[i].schemaHash,
      alignment: { psiJobId: params.alignment.psiJobId, orderDigest: params.alignment.orderDigest },
      stateDir: join(tmp.dir, `${jobId}-${i}`),
      log: silentLog,
      pollMs: POLL_MS,
      signal: abort.signal,
      joinTimeoutMs: 30_000,
    }).then(
      () => null,
      (err: unknown) => (err instanceof FedmarkError ? err : new FedmarkError('UNEXPECTED', String(err))),
    );
  try {
    const ownerRun = runRelayJobOwner({
      coordinatorUrl: coord.url,
      identity: owner,
      signed: signManifest(manifest, owner),
      log: silentLog,
      pollMs: POLL_MS,
      signal: abort.signal,
    });
    const errors = await Promise.all([node(0), node(1)]);
    const result = await ownerRun;
    return { owner: result, errors, ledger: coord.engine.ledgerPath(jobId) };
  } finally {
    clearTimeout(timer);
  }
}

const withdrawals = (ledger: string) =>
  readLedger(ledger)
    .entries.filter((e) => e.type === 'partner.withdraw')
    .map((e) => (e.payload as { reason: string }).reason);

describe('vertical SecureBoost under attack, against the real nodes', () => {
  it("a relay that replays an earlier round's message to the feature holder is caught: the feature holder leaves the job", async () => {
    const fh = publicIdentity(s.identities[1]).keyId;
    let first: Buffer | null = null;
    const offRec = proxy.on({ method: 'GET', path: /\/v1\/jobs\/vsb-atk-replay\/rounds\/1\/relay\//, keyId: fh }, async (_req, ctx) => {
      const r = await ctx.forward();
      if (r.status === 200) first = r.body;
      return r;
    });
    // Round 5 is level 1's histogram request; the relay answers with level 0's, a validly signed message.
    const off = proxy.on({ method: 'GET', path: /\/v1\/jobs\/vsb-atk-replay\/rounds\/5\/relay\//, keyId: fh }, async (_req, ctx) =>
      first ? bytesResponse(200, first) : ctx.forward(),
    );
    try {
      const out = await attackedJob('vsb-atk-replay');
      expect(out.errors[1]?.code).toBe('VERTICAL_UNEXPECTED_MESSAGE');
      expect(out.errors[1]?.message).toMatch(/expected hist-req of round 5 .* got a message with round 1/);
      expect(out.owner.state).toBe('failed');
      expect(withdrawals(out.ledger).some((r) => r.startsWith('VERTICAL_UNEXPECTED_MESSAGE'))).toBe(true);
    } finally {
      off();
      offRec();
    }
  }, 90_000);

  it("a relay that alters the feature holder's sums in transit is caught by the label holder (the signed body hash)", async () => {
    const lh = publicIdentity(s.identities[0]).keyId;
    const off = proxy.on({ method: 'GET', path: /\/v1\/jobs\/vsb-atk-transit\/rounds\/2\/relay\//, keyId: lh }, async (_req, ctx) => {
      const r = await ctx.forward();
      if (r.status !== 200) return r;
      const body = Buffer.from(r.body);
      body[body.length - 100] ^= 0x40;
      return bytesResponse(200, body);
    });
    try {
      const out = await attackedJob('vsb-atk-transit');
      expect(out.errors[0]?.code).toBe('VERTICAL_BAD_MESSAGE');
      expect(out.errors[0]?.message).toMatch(/does not match its signed hash/);
      expect(out.owner.state).toBe('failed');
    } finally {
      off();
    }
  }, 90_000);

  it('a feature holder that returns altered sums under its own signature is caught: each column must add up to the node totals the label holder knows', async () => {
    const fhId = s.identities[1];
    const off = proxy.on({ method: 'PUT', path: /\/v1\/jobs\/vsb-atk-sums\/rounds\/2\/relay\//, keyId: publicIdentity(fhId).keyId }, (req, ctx) => {
      const forged = reseal(req.body, s.identities[0], fhId, (_h, sections) => {
        const parsed = parseBlob(he.results, sections.get('results')!);
        // Column 1's per-bin sums (16 bins) in place of column 0's (4 bins): a consistent-looking, signed answer.
        const entries = [parsed.entries[1], parsed.entries[0], ...parsed.entries.slice(2)];
        return { sections: new Map([['results', writeBlob(he.results, 'sum', 1, entries)]]) };
      });
      return resigned(req, ctx, fhId, forged);
    });
    try {
      const out = await attackedJob('vsb-atk-sums');
      expect(out.errors[0]?.code).toBe('VERTICAL_SUMS_INCONSISTENT');
      expect(out.owner.state).toBe('failed');
      expect(withdrawals(out.ledger).some((r) => r.startsWith('VERTICAL_SUMS_INCONSISTENT'))).toBe(true);
    } finally {
      off();
    }
  }, 90_000);

  it('a label holder asking a feature holder for a threshold (a request the protocol does not have) or for a split it did not win is refused', async () => {
    const lhId = s.identities[0];
    const fh = publicIdentity(s.identities[1]).keyId;
    // The label holder, colluding with the relay, replaces its split request by a request of another kind.
    const off = proxy.on({ method: 'GET', path: /\/v1\/jobs\/vsb-atk-threshold\/rounds\/3\/relay\//, keyId: fh }, async (_req, ctx) => {
      const r = await ctx.forward();
      if (r.status !== 200) return r;
      return bytesResponse(
        200,
        reseal(r.body, s.identities[1], lhId, (_h, sections) => ({ kind: 'threshold-req', sections })),
      );
    });
    try {
      const out = await attackedJob('vsb-atk-threshold');
      expect(out.errors[1]?.code).toBe('VERTICAL_UNEXPECTED_MESSAGE');
      expect(out.owner.state).toBe('failed');
    } finally {
      off();
    }
    const off2 = proxy.on({ method: 'GET', path: /\/v1\/jobs\/vsb-atk-split\/rounds\/3\/relay\//, keyId: fh }, async (_req, ctx) => {
      const r = await ctx.forward();
      if (r.status !== 200) return r;
      return bytesResponse(
        200,
        reseal(r.body, s.identities[1], lhId, (_h, sections) => {
          const splits = new Int32Array(sections.get('splits')!.slice().buffer);
          splits.set([0, 99, 0], 0);
          return { sections: new Map([['splits', new Uint8Array(splits.buffer)]]) };
        }),
      );
    });
    try {
      const out = await attackedJob('vsb-atk-split');
      expect(out.errors[1]?.code).toBe('VERTICAL_BAD_SPLIT');
      expect(out.errors[1]?.message).toMatch(/column 99 is not one of this party's/);
    } finally {
      off2();
    }
  }, 150_000);

  it('the coordinator refuses a message signed for another round or kind, and a byte-for-byte replayed request', async () => {
    const lhId = s.identities[0];
    let refused: { status: number; body: string } | null = null;
    let replayed: { status: number; body: string } | null = null;
    const calls: string[] = [];
    const off = proxy.on({ method: 'PUT', path: /\/v1\/jobs\/vsb-atk-coord\/rounds\/3\/relay\//, keyId: publicIdentity(lhId).keyId }, async (req, ctx) => {
      const wrong = reseal(req.body, s.identities[1], lhId, (_h, sections) => ({ kind: 'hist-req', sections }));
      const r = await resigned(req, ctx, lhId, wrong);
      calls.push(`${r.status} ${r.body.toString('utf8').slice(0, 80)}`);
      refused ??= { status: r.status, body: r.body.toString('utf8') };
      const real = await ctx.forward();
      replayed = await proxy.replay(req).then((x) => ({ status: x.status, body: x.body.toString('utf8') }));
      return real;
    });
    try {
      const out = await attackedJob('vsb-atk-coord');
      expect(out.errors).toEqual([null, null]);
      expect(out.owner.state).toBe('completed');
      expect(calls).toHaveLength(1);
      expect(refused!.status).toBe(400);
      expect(refused!.body).toMatch(/VERTICAL_UNEXPECTED_MESSAGE.*kind hist-req/);
      expect(replayed!.status).toBe(409);
      expect(replayed!.body).toMatch(/AUTH_REPLAY/);
    } finally {
      off();
    }
  }, 90_000);
});
