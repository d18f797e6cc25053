/**
 * Issue 11 item 5 — a patched summand count. The summand count of a CKKS aggregate is an
 * unauthenticated header behind a plain checksum. A coordinator that holds one partner's lone
 * ciphertext rewrites it as a "sum of 2" (header patched, checksum recomputed) and publishes it: a key
 * holder that decrypts it reads that partner's individual update. Key holders must check what an
 * aggregate claims to contain against signed per-partner submission records — here the lone vector
 * is from a round in which only one partner submitted anything, so no honest record can back the
 * claim of two. (The protocol now publishes the signed records of what a sum holds; the lie is
 * told in that format too — A's genuine record, listed twice to match the patched count.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { CkksAggregator, CkksContext, inspectBlob } from '../../src/crypto/ckks/index.ts';
import type { HeParams } from '../../src/crypto/ckks/index.ts';
import { bytesResponse, jsonResponse, parseJson } from '../helpers/lying-proxy.ts';
import { defineJob, startOwner, startPartner, startWorld, uploadMeta, uploadParts, uploads, waitFor, writePolicy, type AttackWorld } from './harness.ts';

/** The coordinator's forgery: one partner's fresh ciphertext re-serialized as a sum, claiming `claimed` summands. */
async function forgeSum(params: HeParams, lone: Uint8Array, claimed: number): Promise<{ blob: Uint8Array; claims: number }> {
  const ctx = await CkksContext.create(params);
  try {
    const agg = new CkksAggregator(ctx);
    agg.add(lone);
    const blob = agg.toBytes();
    agg.dispose();
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    view.setUint32(40, claimed, true); // summands, little-endian (src/crypto/ckks/index.ts blob layout)
    blob.set(
      createHash('sha256')
        .update(blob.subarray(0, blob.length - 32))
        .digest(),
      blob.length - 32,
    );
    return { blob, claims: inspectBlob(ctx, blob).summands };
  } finally {
    ctx.dispose();
  }
}

describe('attack: a patched summand count', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'summands' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it("a key holder does not decrypt one partner's lone vector published as a sum of 2", async () => {
    const { manifest, signed } = defineJob(world, { jobId: 'summands-1', rounds: 1 });
    const [a, b] = [world.keyIdOf(0), world.keyIdOf(1)];
    const jobPath = new RegExp(`^/v1/jobs/${manifest.jobId}$`);
    const watchPath = new RegExp(`^/v1/jobs/${manifest.jobId}/watch$`);
    let forged: { blob: Uint8Array; claims: number } | null = null;

    // To B the coordinator says: round 1 is A's alone; once A has uploaded, round 1 is closed. It
    // tells the same lie on every channel that carries the job's status (the plain read and the long-poll).
    type Status = Record<string, unknown> & { round: number };
    const lie = (s: Status): Status => {
      if (s.round !== 1) return s;
      if (!forged) return { ...s, selected: [a], submitted: [] };
      return { ...s, round: 2, attempt: 0, roundState: 'open', roundKind: 'evaluate', selected: [a], submitted: [], closedRounds: [1] };
    };
    world.proxy.on({ method: 'GET', path: jobPath, keyId: b }, async (_req, ctx) => {
      const real = await ctx.forward();
      return real.status === 200 ? jsonResponse(200, lie(parseJson<Status>(real))) : real;
    });
    world.proxy.on({ method: 'GET', path: watchPath, keyId: b }, async (_req, ctx) => {
      const real = await ctx.forward();
      if (real.status !== 200) return real;
      const w = parseJson<{ status: Status }>(real);
      return jsonResponse(200, { ...w, status: lie(w.status) });
    });
    world.proxy.on({ method: 'GET', path: /\/rounds\/1\/aggregate$/, keyId: b }, async (_req, ctx) =>
      forged ? bytesResponse(200, forged.blob) : ctx.forward(),
    );
    // The same lie in the protocol's signed-contents format: the coordinator backs its "sum of 2" with
    // the best it holds — A's genuine signed record, listed twice (it cannot sign for anyone else).
    let recordOfA: unknown = null;
    world.proxy.on({ method: 'GET', path: /\/rounds\/1\/contents$/, keyId: b }, async (_req, ctx) =>
      forged && recordOfA ? jsonResponse(200, { round: 1, attempt: 0, records: [recordOfA, recordOfA] }) : ctx.forward(),
    );
    world.proxy.on({ method: 'POST', path: /\/rounds\/\d+\/model-hash$/, keyId: b }, () => jsonResponse(200, { ok: true }));

    startOwner(world, signed);
    const nodeA = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest) });
    const nodeB = await startPartner(world, 1, { jobId: manifest.jobId, policyFile: writePolicy(world, 1, manifest) });
    const fromA = await waitFor(() => uploads(world, a)[0], "A's round-1 upload", 45_000);
    recordOfA = (uploadMeta(fromA.body) as unknown as { record: unknown }).record;
    forged = await forgeSum(manifest.encryption as HeParams, uploadParts(fromA.body).update, 2);
    expect(forged.claims, 'the forged blob passes as a sum of 2').toBe(2);
    expect(uploads(world, b), 'B was told it is not selected and uploads nothing').toHaveLength(0);

    const reported = () => world.proxy.requests({ method: 'POST', path: /\/rounds\/1\/model-hash$/, keyId: b });
    const until = Date.now() + 10_000;
    await waitFor(() => reported().length > 0 || !nodeB.proc.running || Date.now() > until, 'B to apply round 1, stop, or 10 s');
    await Promise.all([nodeA.kill(), nodeB.kill()]);
    const hashes = reported().map((x) => (JSON.parse(x.request.body.toString('utf8')) as { hash: string }).hash);
    expect(
      hashes,
      `B decrypted a "sum" that held only A's update (the only submission of round 1) and reported the model it gives: ${hashes.join(', ')}`,
    ).toEqual([]);
  }, 240_000);
});
