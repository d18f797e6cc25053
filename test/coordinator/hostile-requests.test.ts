import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { runPartnerNode } from '../../partner/node.ts';
import { DEFAULT_HE_PARAMS, type HeParams } from '../../src/crypto/index.ts';
import { generateIdentity, type Identity } from '../../src/crypto/identity.ts';
import { signRequest } from '../../src/crypto/request-signing.ts';
import { openSecureSum } from '../../src/federation/secure-sum.ts';
import { decodeUpdate, encodeUpdate, type DecodedUpdate, type UpdateMeta } from '../../src/federation/update-codec.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { ManualPartner, makeIdentities, makeJob, runFederation, silentLog, TEST_POLL_MS, telcoPartners, waitForStatus } from '../helpers/partners.ts';

/**
 * Acceptance: forged, replayed, stale, unknown-key, malformed and mis-parameterised requests against a
 * live coordinator are each refused with a 4xx JSON error naming the problem, nothing is answered with
 * a 5xx, and the round still completes for the honest partners, who agree on the final model.
 *
 * The attacks use a real partner's key where the check under test comes after authentication
 * (ciphertext, envelope, round), and are made while round 1 is open and waiting only for that
 * partner, so a wrongly accepted attack would change the round.
 */

interface Outcome {
  attack: string;
  status: number;
  contentType: string;
  body: unknown;
}

type Part = 'update' | 'evaluation';

function reencode(decoded: DecodedUpdate, change: { meta?: Partial<UpdateMeta>; parts?: Partial<Record<Part, Uint8Array | null>> } = {}): Uint8Array {
  const meta = { ...decoded.meta, ...change.meta };
  const parts = (['update', 'evaluation'] as const)
    .map((name) => {
      const bytes = change.parts && name in change.parts ? change.parts[name] : decoded.parts[name];
      const declared = decoded.meta.parts.find((p) => p.name === name);
      return bytes && declared ? { name, length: declared.length, bytes } : null;
    })
    .filter((p): p is { name: Part; length: number; bytes: Uint8Array } => p !== null);
  return encodeUpdate(meta, parts);
}

/** The blob checksum is unkeyed sha256: an attacker can recompute it, so deeper checks must hold too. */
function withFreshChecksum(blobBody: Uint8Array): Uint8Array {
  return Buffer.concat([blobBody, createHash('sha256').update(blobBody).digest()]);
}

function flipBit(bytes: Uint8Array, at: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[at] ^= 0x10;
  return out;
}

describe('hostile requests against a live coordinator (CKKS job, 3 partners, 2 rounds)', () => {
  let coord: TestCoordinator | undefined;
  const disposables: { dispose(): void }[] = [];
  const stopNodes = new AbortController();

  afterAll(async () => {
    stopNodes.abort(new Error('test finished'));
    for (const d of disposables) d.dispose();
    await coord?.close();
  });

  it('refuses each with a clear 4xx JSON error, never a 5xx, and the honest partners still finish the job', async () => {
    coord = await startTestCoordinator();
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'retail-c']);
    const stranger = generateIdentity('stranger');
    const { manifest, signed } = makeJob({ jobId: 'hostile-ckks', schema, owner, partners: ids, rounds: 2, encryption: DEFAULT_HE_PARAMS, seed: 5 });
    const jobId = manifest.jobId;
    const url = coord.url;

    // telco-b and retail-c run as real nodes from the start; bank-a, whose key signs the attacks, is
    // driven by hand through round 1 and hands over to a real node afterwards.
    const honest = runFederation({
      url,
      owner,
      identities: ids,
      signed,
      parts,
      schemaHash,
      stateDir: coord.dir,
      nodes: [1, 2],
      timeoutMs: 45_000,
      signal: stopNodes.signal,
    });
    honest.catch(() => undefined);
    const a = await ManualPartner.join({ url, identity: ids[0], jobId, train: parts[0].train, test: parts[0].test });
    disposables.push(a);
    const watcher = new CoordinatorClient(url, owner);
    await waitForStatus(
      watcher,
      jobId,
      (s) => s.round === 1 && s.roundState === 'open' && s.submitted.length === 2,
      'the other two partners to submit round 1',
    );

    const honestBuild = await a.build(1);
    const body = honestBuild.body;
    const decoded = decodeUpdate(body);
    const update = decoded.parts.update;
    const path = (round: number) => `/v1/jobs/${jobId}/rounds/${round}/submission`;

    const outcomes: Outcome[] = [];
    async function send(
      attack: string,
      o: { headers: Record<string, string>; body: Uint8Array | string; round?: number; contentType?: string },
    ): Promise<Outcome> {
      const res = await fetch(url + path(o.round ?? 1), {
        method: 'PUT',
        headers: { ...o.headers, 'content-type': o.contentType ?? 'application/octet-stream' },
        body: o.body,
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* kept as text: the shape check below reports it */
      }
      const outcome = { attack, status: res.status, contentType: res.headers.get('content-type') ?? '', body: parsed };
      outcomes.push(outcome);
      return outcome;
    }
    const signed_ = (identity: Identity, bytes: Uint8Array, extra: { round?: number; jobId?: string; now?: number; nonce?: string } = {}) =>
      signRequest({
        method: 'PUT',
        path: path(1),
        body: bytes,
        jobId: extra.jobId ?? jobId,
        round: extra.round ?? 1,
        identity,
        now: extra.now,
        nonce: extra.nonce,
      });
    const asA = (attack: string, bytes: Uint8Array, round = 1) =>
      send(attack, { headers: signRequest({ method: 'PUT', path: path(round), body: bytes, jobId, round, identity: ids[0] }), body: bytes, round });
    async function expectRefused(o: Promise<Outcome>, status: number, code: string | RegExp) {
      const out = await o;
      expect(out.status, `${out.attack}: ${JSON.stringify(out.body)}`).toBe(status);
      expect((out.body as { code?: string }).code, out.attack).toMatch(code);
    }

    // --- authentication -------------------------------------------------------------------------
    const forged = signed_(ids[0], body);
    const sig = Buffer.from(forged['x-fedmark-signature'], 'base64');
    sig[10] ^= 0x01;
    // A bad signature and a key the job does not name get the one answer an unknown job gets (no job-existence oracle).
    await expectRefused(
      send('forged signature (one signature byte changed)', { headers: { ...forged, 'x-fedmark-signature': sig.toString('base64') }, body }),
      401,
      'AUTH_REJECTED',
    );
    await expectRefused(
      send('body changed after signing', { headers: signed_(ids[0], body), body: flipBit(body, body.length - 100) }),
      401,
      'AUTH_BAD_SIGNATURE',
    );
    await expectRefused(
      send('stale timestamp (10 minutes old)', { headers: signed_(ids[0], body, { now: Date.now() - 10 * 60_000 }), body }),
      401,
      'AUTH_STALE',
    );
    await expectRefused(
      send('timestamp 10 minutes in the future', { headers: signed_(ids[0], body, { now: Date.now() + 10 * 60_000 }), body }),
      401,
      'AUTH_STALE',
    );
    await expectRefused(send('signed by a key that is not a partner', { headers: signed_(stranger, body), body }), 401, 'AUTH_REJECTED');
    await expectRefused(send('signed by the job owner, who is not a partner', { headers: signed_(owner, body), body }), 403, 'PARTNER_ONLY');
    await expectRefused(send('signature scoped to another round', { headers: signed_(ids[0], body, { round: 2 }), body }), 401, 'SIGNATURE_SCOPE');
    const noSig: Record<string, string> = { ...signed_(ids[0], body) };
    delete noSig['x-fedmark-signature'];
    await expectRefused(send('unsigned (signature header missing)', { headers: noSig, body }), 401, 'AUTH_MISSING');

    // --- ciphertexts (validly signed by a partner) ---------------------------------------------
    await expectRefused(
      asA('truncated ciphertext', reencode(decoded, { parts: { update: update.subarray(0, update.length - 1000) } })),
      400,
      'HE_BAD_CIPHERTEXT',
    );
    await expectRefused(asA('bit-flipped ciphertext', reencode(decoded, { parts: { update: flipBit(update, update.length >> 1) } })), 400, 'HE_BAD_CIPHERTEXT');
    const updateBody = update.subarray(0, update.length - 32);
    await expectRefused(
      asA(
        'truncated ciphertext, checksum recomputed',
        reencode(decoded, { parts: { update: withFreshChecksum(updateBody.subarray(0, updateBody.length - 1000)) } }),
      ),
      400,
      'HE_BAD_CIPHERTEXT',
    );
    // 16 bytes of ones cover at least one whole 60-bit packed coefficient, which then exceeds the prime modulus.
    const outOfRange = Uint8Array.from(updateBody);
    outOfRange.fill(0xff, outOfRange.length >> 1, (outOfRange.length >> 1) + 16);
    await expectRefused(
      asA('ciphertext coefficient above the modulus, checksum recomputed', reencode(decoded, { parts: { update: withFreshChecksum(outOfRange) } })),
      400,
      'HE_BAD_CIPHERTEXT',
    );
    const evaluation = decoded.parts.evaluation;
    await expectRefused(
      asA('bit-flipped evaluation ciphertext', reencode(decoded, { parts: { evaluation: flipBit(evaluation, 100) } })),
      400,
      'HE_BAD_CIPHERTEXT',
    );
    await expectRefused(asA('update part missing from a training round', reencode(decoded, { parts: { update: null } })), 400, /PART_MISSING|PART_UNEXPECTED/);
    const foreignBodies: Uint8Array[] = [];
    for (const [label, params, claim] of [
      ['scaleBits 30, envelope claims the job parameters', { ...DEFAULT_HE_PARAMS, scaleBits: 30 }, 'job'],
      ['coeffModulusBits [50] and scaleBits 30, envelope declares its own parameters', { ...DEFAULT_HE_PARAMS, coeffModulusBits: [50], scaleBits: 30 }, 'own'],
    ] as [string, HeParams, 'job' | 'own'][]) {
      const other = await openSecureSum(params);
      const cipher = other.cipher(other.generateSecretKey());
      try {
        expect(other.paramsId).not.toBe(a.scheme.paramsId);
        const foreign = reencode(decoded, {
          meta: { paramsId: claim === 'job' ? a.scheme.paramsId : other.paramsId },
          parts: { update: cipher.encrypt(honestBuild.update!), evaluation: cipher.encrypt(honestBuild.evaluation) },
        });
        foreignBodies.push(foreign);
        await expectRefused(asA(`ciphertext under other HE parameters (${label})`, foreign), 400, 'HE_PARAMS_MISMATCH');
      } finally {
        cipher.dispose();
        other.dispose();
      }
    }
    const plainScheme = await openSecureSum({ scheme: 'plain-insecure' });
    const plainCipher = plainScheme.cipher(null);
    await expectRefused(
      asA(
        'plaintext update in a CKKS job',
        reencode(decoded, {
          meta: { scheme: 'plain-insecure', paramsId: 'plain-insecure' },
          parts: { update: plainCipher.encrypt(honestBuild.update!), evaluation: plainCipher.encrypt(honestBuild.evaluation) },
        }),
      ),
      400,
      'HE_PARAMS_MISMATCH',
    );

    // --- envelopes and rounds -------------------------------------------------------------------------
    await expectRefused(asA('truncated envelope', body.subarray(0, body.length - 1000)), 400, 'UPDATE_MALFORMED');
    await expectRefused(
      asA(
        'not an update envelope (random bytes)',
        Uint8Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff),
      ),
      400,
      'UPDATE_MALFORMED',
    );
    await expectRefused(asA('empty body', new Uint8Array(0)), 400, 'UPDATE_MALFORMED');
    const json = new TextEncoder().encode(JSON.stringify({ update: Array.from(honestBuild.update!.slice(0, 4)) }));
    await expectRefused(
      send('JSON instead of an update envelope', { headers: signed_(ids[0], json), body: json, contentType: 'application/json' }),
      415,
      'WRONG_CONTENT_TYPE',
    );
    await expectRefused(asA('update for round 2 sent to round 1', reencode(decoded, { meta: { round: 2 } })), 400, 'WRONG_ROUND');
    await expectRefused(asA('update for round 2 sent to round 2 (not open)', reencode(decoded, { meta: { round: 2 } }), 2), 409, 'ROUND_NOT_OPEN');
    await expectRefused(asA('update for an attempt that is not open', reencode(decoded, { meta: { attempt: 1 } })), 409, 'ROUND_NOT_OPEN');
    await expectRefused(
      asA('evaluation-only update in a training round', reencode(decoded, { meta: { kind: 'evaluate' }, parts: { update: null } })),
      400,
      'WRONG_KIND',
    );
    await expectRefused(asA('update for another job', reencode(decoded, { meta: { jobId: 'other-job' } })), 400, 'WRONG_JOB');

    // None of it counted: round 1 still waits for bank-a alone.
    const during = await watcher.status(jobId);
    expect(during.roundState).toBe('open');
    expect(during.submitted).toHaveLength(2);
    expect(during.submitted).not.toContain(a.keyId);

    // --- replay: the honest upload, then the identical request again ----------------------------------
    const honestHeaders = signed_(ids[0], body);
    const first = await send('honest submission', { headers: honestHeaders, body });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toEqual({ duplicate: false });
    await expectRefused(send('replayed request (same nonce)', { headers: honestHeaders, body }), 409, 'AUTH_REPLAY');
    await expectRefused(asA('a second, different update for the same round', foreignBodies[0]), 409, 'ALREADY_SUBMITTED');

    // --- every refusal is a well-formed 4xx JSON error --------------------------------------------------
    for (const o of outcomes) {
      expect(o.status, o.attack).toBeLessThan(500);
      if (o.attack === 'honest submission') continue;
      expect(o.status, o.attack).toBeGreaterThanOrEqual(400);
      expect(o.contentType, o.attack).toMatch(/^application\/json/);
      const err = o.body as { statusCode?: unknown; code?: unknown; error?: unknown };
      expect(err.statusCode, o.attack).toBe(o.status);
      expect(err.code, o.attack).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(typeof err.error === 'string' && err.error.length > 10, `${o.attack}: error message ${JSON.stringify(err.error)}`).toBe(true);
    }
    expect(outcomes.length).toBeGreaterThanOrEqual(29);

    // --- the honest partners finish the job -----------------------------------------------------------
    a.dispose();
    disposables.length = 0;
    const aNode = runPartnerNode({
      coordinatorUrl: url,
      identity: ids[0],
      jobId,
      train: parts[0].train,
      test: parts[0].test,
      schemaHash,
      stateDir: join(coord.dir, 'bank-a-node'),
      reviewJob: () => [],
      budget: undefined,
      log: silentLog,
      pollMs: TEST_POLL_MS,
      joinTimeoutMs: 10_000,
      signal: stopNodes.signal,
    });
    const [{ owner: ownerResult, nodes }, aResult] = await Promise.all([honest, aNode]);
    expect(ownerResult.state, ownerResult.reason ?? '').toBe('completed');
    for (const r of [aResult, ...nodes]) {
      expect(r.state, r.reason ?? '').toBe('completed');
      expect(r.rounds).toBe(2);
      expect(r.modelHash).toBe(ownerResult.modelHash);
    }
    expect(ownerResult.finalMetrics!.auc).toBeGreaterThan(0.6);
    // The published round-1 sum holds exactly the three honest updates (summand count at byte 40 of the blob).
    const agg = await watcher.aggregate(jobId, 1, 'update');
    expect(new DataView(agg.buffer, agg.byteOffset, agg.byteLength).getUint32(40, true)).toBe(3);
    // The server never hit an unexpected error (those are logged at level 50 before a 500).
    const errors = readFileSync(coord.logPath, 'utf8')
      .split('\n')
      .filter((line) => line.includes('"level":50'));
    expect(errors).toEqual([]);
    plainCipher.dispose();
    plainScheme.dispose();
  }, 60_000);
});
