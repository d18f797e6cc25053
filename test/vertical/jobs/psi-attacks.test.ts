/**
 * PSI over the real coordinator and partner nodes, attacked: a party that sends a malformed curve point
 * (signed and sealed with its own keys, through a proxy that re-signs its request) is refused by the
 * next party with a clear error, on record in the job ledger; and the blinded values of two PSI jobs
 * over the same customers — everything the coordinator and the parties see — share nothing.
 */
import { join } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity, readIdentityFile, type Identity } from '../../../src/crypto/identity.ts';
import { signRequest } from '../../../src/crypto/request-signing.ts';
import { readLedger } from '../../../src/privacy/ledger/reader.ts';
import { JobView, listHash, openBody, sealAndSign } from '../../../src/vertical/psi/envelope.ts';
import { ELEMENT_BYTES, bigintTo32 } from '../../../src/vertical/psi/group.ts';
import { decodeFrame, encodeFrame, type FullHeader, type ListHeader, type PsiMessage } from '../../../src/vertical/psi/messages.ts';
import { specHash } from '../../../src/vertical/psi/spec.ts';
import { psiSpecOf } from '../../../src/vertical/jobs/psi-workload.ts';
import { RelayStore } from '../../../coordinator/relay-store.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';
import { LyingProxy } from '../../helpers/lying-proxy.ts';
import { runPsiJob, tempDir } from './helpers.ts';

let coord: TestCoordinator;
let proxy: LyingProxy;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  coord = await startTestCoordinator({ tickMs: 40 });
  proxy = await LyingProxy.start(coord.url);
  tmp = tempDir('fedmark-psi-attack-');
});
afterAll(async () => {
  await proxy?.close();
  await coord?.close();
  tmp?.cleanup();
});

function offCurveX(): Uint8Array {
  for (let x = 1n; ; x++) {
    try {
      p256.Point.fromBytes(Buffer.concat([Buffer.from([2]), bigintTo32(x)]));
    } catch {
      return bigintTo32(x);
    }
  }
}

const customers = Array.from({ length: 30 }, (_, i) => `customer${i}@example.com`);

describe('PSI over the nodes, attacked', () => {
  it("a malformed point in a party's list is refused by the next party with PSI_BAD_POINT, recorded as its withdrawal", async () => {
    const parties = ['bank', 'telco'].map((n) => generateIdentity(n));
    const jobId = 'psi-atk-point';
    const off = proxy.on(
      { method: 'PUT', path: /\/v1\/jobs\/psi-atk-point\/rounds\/1\/relay\//, keyId: publicIdentity(parties[0]).keyId },
      async (req, ctx) => {
        const msg = decodeFrame(req.body) as PsiMessage<ListHeader>;
        const spec = psiSpecOf(coord.engine.manifest(jobId));
        const view = new JobView(spec, specHash(spec));
        const list = openBody(view, msg, parties[1], msg.header.count * ELEMENT_BYTES);
        list.set(offCurveX(), 3 * ELEMENT_BYTES);
        const { sig: _s, seal: _seal, bodyHash: _b, ...draft } = msg.header;
        const forged = encodeFrame(
          sealAndSign<ListHeader>({ ...draft, listHash: listHash(list) }, list, view.identity(msg.header.to)!, spec.chunkBytes, parties[0]),
        );
        const headers = { ...req.headers, ...signRequest({ method: 'PUT', path: req.path, body: forged, jobId, round: 1, identity: parties[0] }) };
        return ctx.forward({ headers, body: Buffer.from(forged) });
      },
    );
    try {
      const run = runPsiJob({ url: proxy.url, jobId, parties, ids: [customers, customers.slice(5)], dir: tmp.dir, maxSetSize: 32 });
      await expect(run).rejects.toMatchObject({
        code: 'PSI_BAD_POINT',
        message: expect.stringMatching(/psi\.list from bank \(origin bank, 1 key applied\): element 3: x-coordinate is not on the P-256 curve/),
      });
      const deadline = Date.now() + 10_000;
      let reasons: string[] = [];
      while (Date.now() < deadline && reasons.length === 0) {
        reasons = readLedger(coord.engine.ledgerPath(jobId))
          .entries.filter((e) => e.type === 'partner.withdraw')
          .map((e) => (e.payload as { reason: string }).reason);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(reasons[0]).toMatch(/^PSI_BAD_POINT: psi\.list from bank .* element 3: x-coordinate is not on the P-256 curve/);
    } finally {
      off();
    }
  }, 60_000);

  it('two PSI jobs over the same customers: no blinded value of one appears in the other, at any hop', async () => {
    const parties = ['bank', 'telco'].map((n) => generateIdentity(n));
    const ids = [customers, customers.slice(10)];
    await runPsiJob({ url: coord.url, jobId: 'psi-link-a', parties, ids, dir: tmp.dir, maxSetSize: 32 });
    await runPsiJob({ url: coord.url, jobId: 'psi-link-b', parties, ids, dir: tmp.dir, maxSetSize: 32 });
    const coordinator: Identity = readIdentityFile(join(coord.dataDir, 'coordinator.key.json'));
    const relays = new RelayStore(coord.store.db);
    const values = (jobId: string) => {
      const spec = psiSpecOf(coord.engine.manifest(jobId));
      const view = new JobView(spec, specHash(spec));
      const out = new Set<string>();
      const n = spec.parties.length;
      for (let round = 1; round <= n; round++) {
        for (const row of relays.messages(jobId, round)) {
          const msg = decodeFrame(new Uint8Array(row.body));
          const me = msg.header.to === spec.coordinator.keyId ? coordinator : parties.find((p) => publicIdentity(p).keyId === msg.header.to)!;
          const h = msg.header as ListHeader | FullHeader;
          const plain = openBody(view, msg, me, h.count * ELEMENT_BYTES + (h.kind === 'psi.full' ? 32 : 0));
          for (let i = 0; i < h.count; i++) out.add(Buffer.from(plain.subarray(i * ELEMENT_BYTES, (i + 1) * ELEMENT_BYTES)).toString('hex'));
        }
      }
      return out;
    };
    const a = values('psi-link-a');
    const b = values('psi-link-b');
    // 2 ring lists and 2 full lists of 32; the 20 common customers have one fully blinded value in both full lists.
    expect(a.size).toBe(4 * 32 - 20);
    expect([...a].filter((v) => b.has(v))).toEqual([]);
  }, 90_000);
});
