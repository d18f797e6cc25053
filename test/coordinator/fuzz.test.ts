import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash, createPrivateKey, sign as edSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildCoordinator, REDACT_PATHS } from '../../coordinator/server.ts';
import { runJobOwner } from '../../owner/node.ts';
import { keyId as keyIdOf, type Identity } from '../../src/crypto/identity.ts';
import { canonicalRequestString } from '../../src/crypto/request-signing.ts';
import { canonicalBytes } from '../../src/privacy/ledger/canonical.ts';
import { decodeUpdate } from '../../src/federation/update-codec.ts';
import { checkSubmission } from '../../src/federation/submission-check.ts';
import { planOf } from '../../src/federation/workload.ts';
import { sgdWorkload } from '../../src/federation/workloads/sgd/index.ts';
import { sha256Hex } from '../../src/util/hash.ts';
import { ManualPartner, makeIdentities, makeJob, runFederation, silentLog, telcoPartners, waitForStatus } from '../helpers/partners.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';

/**
 * Hostile input against a live coordinator. A job is set up with an open round (one partner has
 * submitted, two have not), then ≥ 10,000 generated requests go through `app.inject` — the whole
 * Fastify pipeline (parsers, validation, signature checks, job engine, CKKS checks) without sockets —
 * and a few hundred more over a real TCP socket on 127.0.0.1, written byte by byte so that malformed
 * HTTP, truncated bodies and unnormalised paths reach the server as sent. Every answer must be < 500;
 * every app-level rejection a JSON `{ statusCode, code, error }`. Then an honest job runs on the same
 * server. Failures are collected (not stopped at the first) and reported with the coordinator's stack.
 */

const BULK = 10_000;
const SOCKET_GENERATED = 200;
const CONCURRENCY = 4;
const SEED = 20_261_125;
const JOB = 'fuzz-job';
const MAX_UPDATE_BYTES = 8 * 1024 * 1024;

interface Wire {
  method: string;
  url: string;
  headers: Record<string, string | string[]>;
  body?: Buffer;
  /** A short description for failure reports. */
  what: string;
}

interface Outcome {
  wire: Wire;
  status: number;
  contentType: string;
  body: string;
  via: 'inject' | 'socket';
}

const logLines: string[] = [];
let dir: string;
let app: FastifyInstance;
let base: string;
let ids: Identity[];
let owner: Identity;
let stranger: Identity;
const honestBodies: Uint8Array[] = [];
let ownerAbort: AbortController;
let ownerRun: Promise<unknown>;
let partners: ManualPartner[] = [];
/** Real requests seen by the server during set-up (method, url, headers, raw body), for replays and mutation. */
const captured: Wire[] = [];
let createJobBody: unknown;

// ---------------------------------------------------------------------------------------------
// Signing: same canonical string as src/crypto/request-signing.ts, with node's native Ed25519 so the
// test spends its time in the server, not in pure-JS signing.

const nodeKeys = new Map<Identity, KeyObject>();
function nodeKey(id: Identity): KeyObject {
  let k = nodeKeys.get(id);
  if (!k) {
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(id.signSecretKey.subarray(0, 32))]);
    k = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    nodeKeys.set(id, k);
  }
  return k;
}
let nonceCounter = 0;
function signed(id: Identity, o: { method: string; url: string; body: Uint8Array; jobId: string; round: number; now?: number }): Record<string, string> {
  const timestamp = Math.floor(o.now ?? Date.now());
  const nonce = `fuzz${(nonceCounter++).toString(36).padStart(12, '0')}`;
  const bodySha256 = sha256Hex(o.body);
  const canonical = canonicalRequestString({ method: o.method, path: o.url, bodySha256, jobId: o.jobId, round: o.round, timestamp, nonce });
  return {
    'x-fedmark-body-sha256': bodySha256,
    'x-fedmark-public-key': Buffer.from(id.signPublicKey).toString('base64'),
    'x-fedmark-key': keyIdOf(id.signPublicKey),
    'x-fedmark-job': o.jobId,
    'x-fedmark-round': String(o.round),
    'x-fedmark-timestamp': String(timestamp),
    'x-fedmark-nonce': nonce,
    'x-fedmark-signature': edSign(null, Buffer.from(canonical), nodeKey(id)).toString('base64'),
  };
}
const edSignBytes = (bytes: Uint8Array, id: Identity) => edSign(null, bytes, nodeKey(id)).toString('base64');

// ---------------------------------------------------------------------------------------------
// Update envelopes: "FMUP" | u8 version | u32 BE meta length | meta JSON | parts

function envelope(meta: string | Buffer, parts: Uint8Array[], o: { magic?: Buffer; version?: number; metaLength?: number } = {}): Buffer {
  const m = typeof meta === 'string' ? Buffer.from(meta) : meta;
  const head = Buffer.alloc(9);
  (o.magic ?? Buffer.from('FMUP')).copy(head, 0, 0, 4);
  head[4] = o.version ?? 1;
  head.writeUInt32BE(o.metaLength ?? m.length, 5);
  return Buffer.concat([head, m, ...parts.map((p) => Buffer.from(p))]);
}

/** Recomputes a CKKS blob's SHA-256 trailer so a corruption gets past the checksum into the deeper checks. */
function reseal(blob: Uint8Array): Buffer {
  const out = Buffer.from(blob);
  createHash('sha256')
    .update(out.subarray(0, out.length - 32))
    .digest()
    .copy(out, out.length - 32);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generators

const INJECTABLE = new Set(http.METHODS);
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const SIG_HEADERS = [
  'x-fedmark-key',
  'x-fedmark-job',
  'x-fedmark-round',
  'x-fedmark-timestamp',
  'x-fedmark-nonce',
  'x-fedmark-signature',
  'x-fedmark-body-sha256',
];
const CONTENT_TYPES = [
  'application/json',
  'application/octet-stream',
  'text/plain',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'APPLICATION/JSON',
  'application/json, application/octet-stream',
  'a/b/c',
  '',
  'application/octet-stream; foo=bar',
  ';;;',
  'x'.repeat(3000),
];
const HOSTILE_SEGMENTS = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E%2F',
  '..%2F..%2Fetc%2Fpasswd',
  '%2F',
  'a%2Fb',
  '%00',
  'a%00b',
  '%',
  '%zz',
  '%E0%A4%A',
  '%C0%AE%C0%AE',
  '~',
  '*',
  ';',
  'con',
  `${JOB}%2F..`,
  'FUZZ-JOB',
  `${JOB}%20`,
  `%20${JOB}`,
  'j%C3%B6b',
  '%F0%9F%92%A9',
  '%E2%80%AE',
  '-',
  '0',
  '-1',
  '1e3',
  '0x1',
  'NaN',
  'Infinity',
  '9'.repeat(40),
  '1.5',
  '01',
  'null',
  '__proto__',
  'constructor',
  '%24where',
  "'%20OR%201=1",
  '%3Cscript%3E',
  'unknown-job',
  'honest-job-not-yet',
  'mine',
  'a'.repeat(64),
  'a'.repeat(65),
  'ab',
  'f'.repeat(32),
  'F'.repeat(32),
  'g'.repeat(32),
];
const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...HOSTILE_SEGMENTS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 9000 }).map((n) => 'a'.repeat(n)) },
);
type Filler = { kind: 'good' } | { kind: 'bad'; value: string };
const filler: fc.Arbitrary<Filler> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Filler>({ kind: 'good' }) },
  { weight: 2, arbitrary: segment.map<Filler>((value) => ({ kind: 'bad', value })) },
);

const ROUTES: { method: string; path: (j: string, r: string, k: string) => string; body: 'json' | 'bytes' | 'none' }[] = [
  { method: 'GET', path: () => '/health', body: 'none' },
  { method: 'GET', path: () => '/v1/identity', body: 'none' },
  { method: 'GET', path: () => '/docs/json', body: 'none' },
  { method: 'POST', path: () => '/v1/jobs', body: 'json' },
  { method: 'GET', path: (j) => `/v1/jobs/${j}`, body: 'none' },
  { method: 'GET', path: (j) => `/v1/jobs/${j}/manifest`, body: 'none' },
  { method: 'GET', path: (j) => `/v1/jobs/${j}/ledger`, body: 'none' },
  { method: 'GET', path: (j) => `/v1/jobs/${j}/ledger/head`, body: 'none' },
  { method: 'POST', path: (j) => `/v1/jobs/${j}/acceptance`, body: 'json' },
  { method: 'PUT', path: (j, _r, k) => `/v1/jobs/${j}/keys/${k}`, body: 'bytes' },
  { method: 'GET', path: (j) => `/v1/jobs/${j}/keys/mine`, body: 'none' },
  { method: 'PUT', path: (j, r) => `/v1/jobs/${j}/rounds/${r}/submission`, body: 'bytes' },
  { method: 'POST', path: (j, r) => `/v1/jobs/${j}/rounds/${r}/decline`, body: 'json' },
  { method: 'GET', path: (j, r) => `/v1/jobs/${j}/rounds/${r}/aggregate`, body: 'none' },
  { method: 'POST', path: (j, r) => `/v1/jobs/${j}/rounds/${r}/model-hash`, body: 'json' },
  { method: 'POST', path: (j) => `/v1/jobs/${j}/withdraw`, body: 'json' },
  { method: 'POST', path: (j) => `/v1/jobs/${j}/leave`, body: 'json' },
  { method: 'POST', path: (j) => `/v1/jobs/${j}/halt`, body: 'json' },
];
const QUERIES = [
  '',
  '',
  '',
  '?part=update',
  '?part=evaluation',
  '?part=evil',
  '?part=update&part=evaluation',
  '?__proto__[x]=1',
  '?part',
  `?${'q'.repeat(2000)}=1`,
  '?%zz',
  '#frag',
];

const anyJson = fc.jsonValue({ maxDepth: 3 });
const shapedJson = fc.oneof(
  fc.record({ accepted: fc.oneof(fc.constant(true), anyJson), reason: anyJson, statement: anyJson }, { requiredKeys: [] }),
  fc.record({ attempt: fc.oneof(fc.integer({ min: -2, max: 4 }), anyJson), reason: fc.oneof(fc.string({ maxLength: 3000 }), anyJson) }, { requiredKeys: [] }),
  fc.record({ hash: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.stringMatching(/^[0-9A-Fa-f]{0,70}$/), anyJson) }),
  fc.record({ reason: fc.oneof(fc.constant(''), fc.integer(), fc.constant(null), fc.string({ minLength: 2001, maxLength: 2100 })) }, { requiredKeys: [] }),
  fc.record({ manifest: anyJson, signature: anyJson, ledgerGenesis: anyJson }, { requiredKeys: [] }),
);

type BodySpec =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; value: string }
  | { kind: 'truncated'; value: unknown; cut: number }
  | { kind: 'deep'; depth: number; balanced: boolean }
  | { kind: 'bytes'; value: Uint8Array }
  | { kind: 'huge'; size: number; fill: number }
  | { kind: 'badUtf8' }
  | { kind: 'proto' };
const bodySpec: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<BodySpec>({ kind: 'none' }) },
  { weight: 6, arbitrary: fc.oneof(anyJson, shapedJson).map<BodySpec>((value) => ({ kind: 'json', value })) },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }).map<BodySpec>((value) => ({ kind: 'text', value })) },
  { weight: 3, arbitrary: fc.tuple(shapedJson, fc.nat()).map<BodySpec>(([value, cut]) => ({ kind: 'truncated', value, cut })) },
  { weight: 1, arbitrary: fc.record({ depth: fc.integer({ min: 500, max: 200_000 }), balanced: fc.boolean() }).map<BodySpec>((o) => ({ kind: 'deep', ...o })) },
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 4096 }).map<BodySpec>((value) => ({ kind: 'bytes', value })) },
  { weight: 1, arbitrary: fc.constant<BodySpec>({ kind: 'badUtf8' }) },
  { weight: 1, arbitrary: fc.constant<BodySpec>({ kind: 'proto' }) },
);
// Huge bodies are expensive to build: well under 1 % of requests.
const hugeBody = fc
  .record({ size: fc.constantFrom(1024 * 1024 + 1, 2 * 1024 * 1024, MAX_UPDATE_BYTES + 1), fill: fc.constantFrom(0x7b, 0x00, 0x46) })
  .map<BodySpec>((o) => ({ kind: 'huge', ...o }));
const rareHuge = fc.oneof({ weight: 150, arbitrary: bodySpec }, { weight: 1, arbitrary: hugeBody });

function materialize(b: BodySpec): Buffer | undefined {
  switch (b.kind) {
    case 'none':
      return undefined;
    case 'json':
      return Buffer.from(JSON.stringify(b.value) ?? 'null');
    case 'text':
      return Buffer.from(b.value);
    case 'truncated': {
      const s = JSON.stringify(b.value);
      return Buffer.from(s.slice(0, b.cut % Math.max(1, s.length)));
    }
    case 'deep':
      return Buffer.from('['.repeat(b.depth) + (b.balanced ? ']'.repeat(b.depth) : ''));
    case 'bytes':
      return Buffer.from(b.value);
    case 'huge':
      return Buffer.alloc(b.size, b.fill);
    case 'badUtf8':
      return Buffer.concat([Buffer.from('{"accepted":true,"reason":"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]), Buffer.from('"}')]);
    case 'proto':
      return Buffer.from('{"__proto__":{"accepted":true,"polluted":1},"constructor":{"prototype":{"polluted":1}},"accepted":true}');
  }
}

const printable = fc.stringMatching(/^[\x20-\x7e]{0,80}$/);

/** Family A: anything at all, unsigned or with garbage signature headers. */
const garbage = fc
  .record({
    method: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...METHODS) }, { weight: 1, arbitrary: fc.constantFrom('TRACE', 'PROPFIND', 'FOO', 'get') }),
    route: fc.nat(ROUTES.length - 1),
    j: filler,
    r: filler,
    k: filler,
    query: fc.constantFrom(...QUERIES),
    headers: fc.dictionary(fc.constantFrom(...SIG_HEADERS, 'content-length-x', 'transfer-encoding-x', 'authorization'), printable, { maxKeys: 6 }),
    ct: fc.option(fc.constantFrom(...CONTENT_TYPES), { nil: undefined }),
    body: rareHuge,
  })
  .map((g) => ({ family: 'garbage' as const, ...g }));

/** Family B: a well-formed request signed correctly, then one signature field broken. */
// Rejected before the Ed25519 verification (malformed, unknown, stale) …
const CHEAP_BREAKS = [
  'truncate-signature',
  'empty-signature',
  'non-base64-signature',
  'stale',
  'future',
  'ts-nonnumeric',
  'ts-negative',
  'ts-17-digits',
  'nonce-short',
  'nonce-bad-chars',
  'nonce-long',
  'key-unknown',
  'key-uppercase',
  'key-stranger',
  'key-31',
  'round-header-negative',
  'round-header-huge',
  'missing-header',
  'repeated-header',
] as const;
// … and only after it (a pure-JS verify costs milliseconds, so these are fewer).
const VERIFIED_BREAKS = [
  'flip-signature',
  'other-request-signature',
  'key-owner-signed-by-partner',
  'job-header-other',
  'round-header-mismatch',
  'body-altered',
  'path-altered',
  'method-altered',
] as const;
type AuthBreak = (typeof CHEAP_BREAKS)[number] | (typeof VERIFIED_BREAKS)[number];
const badAuth = fc
  .record({
    route: fc.integer({ min: 4, max: ROUTES.length - 1 }),
    signer: fc.nat(4),
    breakage: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom<AuthBreak>(...CHEAP_BREAKS) },
      { weight: 1, arbitrary: fc.constantFrom<AuthBreak>(...VERIFIED_BREAKS) },
    ),
    which: fc.constantFrom(...SIG_HEADERS),
    round: fc.constantFrom(1, 1, 2),
    body: fc.oneof(shapedJson, anyJson),
    partner: fc.nat(2),
  })
  .map((g) => ({ family: 'badAuth' as const, ...g }));

/** Family C: correctly signed by owner, a partner or a stranger; hostile content the signature covers. */
const ENVELOPE_MUTATIONS = [
  'exact',
  'flip',
  'truncate',
  'append',
  'meta',
  'meta-raw',
  'meta-length',
  'header',
  'blob-deep',
  'blob-header',
  'swap-parts',
  'parts-lie',
  'no-parts',
  'other-partner',
] as const;
const SUBMISSION_ROUTE = ROUTES.findIndex((r) => r.path('j', 'r', 'k').endsWith('/submission'));
const deep = fc
  .record({
    // Submissions carry the most parsing (envelope, CKKS blobs): give them 40 % of this family.
    route: fc.oneof({ weight: 2, arbitrary: fc.constant(SUBMISSION_ROUTE) }, { weight: 3, arbitrary: fc.integer({ min: 4, max: ROUTES.length - 1 }) }),
    signer: fc.nat(4),
    // Submissions: mostly the two partners that have not submitted yet (index 2, 3), whose updates get
    // past the duplicate check into the envelope and ciphertext checks.
    subSigner: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(2, 3) }, { weight: 2, arbitrary: fc.constantFrom(0, 1, 4) }),
    round: fc.constantFrom(1, 1, 1, 1, 1, 2, 0, 99),
    body: fc.oneof(shapedJson, anyJson),
    mutation: fc.constantFrom(...ENVELOPE_MUTATIONS),
    partner: fc.nat(2),
    positions: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
    metaField: fc.constantFrom('jobId', 'round', 'attempt', 'kind', 'scheme', 'paramsId', 'baseModelHash', 'parts', 'dp', 'extra', '__proto__'),
    metaValue: fc.oneof(
      anyJson,
      fc.constantFrom(JOB, 1, 2, 0, -1, 'train', 'evaluate', 'plain-insecure', 'ckks', [], [{ name: 'update', bytes: 1, length: 1 }]),
    ),
    rawMeta: fc.oneof(fc.string({ maxLength: 100 }), fc.constant('{"jobId":'), fc.constant('\u0000\u0000'), fc.constant('[]')),
    number: fc.oneof(fc.nat(), fc.constantFrom(0, 1, 0xffffffff, 0x7fffffff, 65536)),
    blobField: fc.constantFrom('kind', 'version', 'summands', 'count', 'seal', 'params', 'entry-length'),
    byte: fc.nat(255),
    ct: fc.oneof(
      { weight: 9, arbitrary: fc.constant('application/octet-stream') },
      { weight: 1, arbitrary: fc.constantFrom('application/json', 'text/plain') },
    ),
  })
  .map((g) => ({ family: 'deep' as const, ...g }));

/** Family D: an earlier request sent again byte for byte (set-up traffic or an earlier fuzz request). */
const replay = fc
  .record({ index: fc.nat(), tweak: fc.constantFrom('none', 'none', 'url-case', 'extra-slash', 'query') })
  .map((g) => ({ family: 'replay' as const, ...g }));

/** Family E: job creation with the captured real body mutated at one JSON path (optionally re-signed). */
const createJob = fc
  .record({
    path: fc.nat(),
    value: fc.oneof(anyJson, fc.constantFrom(0, -1, 1e9, '', 'x'.repeat(5000), [], {}, null)),
    resignManifest: fc.boolean(),
    newId: fc.constantFrom('fuzz-new-a', 'fuzz-new-b', JOB, 'fuzz-new-a'),
  })
  .map((g) => ({ family: 'createJob' as const, ...g }));

const spec = fc.oneof(
  { weight: 56, arbitrary: garbage },
  { weight: 22, arbitrary: badAuth },
  { weight: 14, arbitrary: deep },
  { weight: 4, arbitrary: replay },
  { weight: 4, arbitrary: createJob },
);
type Spec = typeof spec extends fc.Arbitrary<infer T> ? T : never;

// ---------------------------------------------------------------------------------------------
// From a spec to the bytes on the wire

const sent: Wire[] = [];
/** The signed ones among `sent`, the replay pool. */
const signedSent: Wire[] = [];
const decodedHonest: ReturnType<typeof decodeUpdate>[] = [];
/** Stacks of errors that reached the error handler as 5xx, by request URL (filled by an onError hook). */
const serverErrorStacks: { method: string; url: string; stack: string }[] = [];
const signers = () => [owner, ids[0], ids[1], ids[2], stranger];
const fill = (f: Filler, good: string) => (f.kind === 'good' ? good : f.value);

function jsonPaths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (v && typeof v === 'object' && prefix.length < 6) for (const [k, x] of Object.entries(v)) jsonPaths(x, [...prefix, Array.isArray(v) ? Number(k) : k], out);
  return out;
}
function setAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let cur = copy;
  for (const p of path.slice(0, -1)) cur = cur[p] as Record<string | number, unknown>;
  cur[path[path.length - 1]] = value;
  return copy;
}

function submissionBody(s: Extract<Spec, { family: 'deep' }>, partner: number): Buffer {
  const honest = honestBodies[partner];
  const { meta, parts } = decodedHonest[partner];
  const partBytes = meta.parts.map((p) => parts[p.name]);
  const pos = (n: number, len: number) => n % Math.max(1, len);
  switch (s.mutation) {
    case 'exact':
      return Buffer.from(honest);
    case 'flip': {
      const b = Buffer.from(honest);
      for (const p of s.positions) b[pos(p, b.length)] ^= 1 << (p % 8);
      return b;
    }
    case 'truncate':
      return Buffer.from(honest.subarray(0, pos(s.number, honest.length)));
    case 'append':
      return Buffer.concat([Buffer.from(honest), Buffer.alloc(1 + (s.number % 64), s.byte)]);
    case 'meta': {
      const m = setAt(meta, [s.metaField], s.metaValue);
      return envelope(JSON.stringify(m), partBytes);
    }
    case 'meta-raw':
      return envelope(s.rawMeta, partBytes);
    case 'meta-length':
      return envelope(JSON.stringify(meta), partBytes, { metaLength: s.number });
    case 'header':
      return envelope(JSON.stringify(meta), partBytes, { version: s.byte, magic: s.positions[0] % 2 ? Buffer.from('FMUQ') : undefined });
    case 'blob-deep': {
      // Corrupt inside a ciphertext and fix its checksum: exercises the coefficient and SEAL checks.
      const i = s.positions[0] % partBytes.length;
      const blob = Buffer.from(partBytes[i]);
      if (s.byte % 2) {
        // Flipped bits: often still a valid ciphertext (caught by wouldBeAccepted, then sent as a duplicate).
        for (const p of s.positions.slice(1).length ? s.positions.slice(1) : s.positions) blob[48 + pos(p, blob.length - 80)] ^= 1 + (p % 255);
      } else {
        // Saturated words: coefficients at or above their prime, or entry lengths that do not add up.
        const at = 48 + pos(s.number, blob.length - 80 - 64);
        blob.fill(0xff, at, at + 8 + (s.byte % 56));
      }
      const ps = [...partBytes];
      ps[i] = reseal(blob);
      return envelope(JSON.stringify(meta), ps);
    }
    case 'blob-header': {
      const i = s.positions[0] % partBytes.length;
      const blob = Buffer.from(partBytes[i]);
      if (s.blobField === 'kind') blob[5] = s.byte % 4;
      if (s.blobField === 'version') blob[4] = s.byte;
      if (s.blobField === 'summands') blob.writeUInt32LE(s.number >>> 0, 40);
      if (s.blobField === 'count') blob.writeUInt32LE(s.number >>> 0, 44);
      if (s.blobField === 'seal') blob[6] = s.byte;
      if (s.blobField === 'params') blob[8 + (s.byte % 32)] ^= 0xff;
      if (s.blobField === 'entry-length') blob.writeUInt32LE(s.number >>> 0, 48);
      const ps = [...partBytes];
      ps[i] = reseal(blob);
      return envelope(JSON.stringify(meta), ps);
    }
    case 'swap-parts':
      return envelope(JSON.stringify(meta), [...partBytes].reverse());
    case 'parts-lie': {
      const lie = { ...meta, parts: meta.parts.map((p, i) => (i === 0 ? { ...p, bytes: s.number || 1 } : p)) };
      return envelope(JSON.stringify(lie), partBytes);
    }
    case 'no-parts':
      return envelope(JSON.stringify({ ...meta, parts: [] }), []);
    case 'other-partner': {
      // Parts of one partner under another's metadata: structurally valid ciphertexts, wrong sender.
      const other = decodedHonest[(partner + 1) % honestBodies.length];
      return envelope(
        JSON.stringify(meta),
        other.meta.parts.map((p) => other.parts[p.name]),
      );
    }
  }
}

/**
 * Whether the coordinator would accept this round-1 update (same checks as JobEngine.submit, on the
 * partners' own copy of the job's scheme). Random corruption sometimes yields a valid update — a
 * re-sealed ciphertext with flipped coefficient bits is still a ciphertext — and one accepted update
 * per partner would end the deep testing for that partner.
 */
function wouldBeAccepted(body: Uint8Array, partner: string): boolean {
  const { manifest, scheme } = partners[0];
  try {
    const decoded = decodeUpdate(body);
    checkSubmission(planOf(sgdWorkload, manifest, 1), scheme, { jobId: JOB, round: 1, attempt: 0, baseModelHash: null, manifest, partner }, decoded);
    for (const part of Object.values(decoded.parts)) {
      const sum = scheme.sum();
      try {
        sum.add(part);
      } finally {
        sum.dispose();
      }
    }
    return true;
  } catch {
    return false;
  }
}

function toWire(s: Spec): Wire {
  const partnerKeys = ids.map((i) => keyIdOf(i.signPublicKey));
  switch (s.family) {
    case 'garbage': {
      const route = ROUTES[s.route];
      const url = route.path(fill(s.j, JOB), fill(s.r, '1'), fill(s.k, partnerKeys[1])) + s.query;
      const headers: Record<string, string> = { ...s.headers };
      if (s.ct !== undefined) headers['content-type'] = s.ct;
      return { method: s.method, url, headers, body: materialize(s.body), what: `garbage ${s.method} ${url.slice(0, 120)} body=${s.body.kind}` };
    }
    case 'badAuth': {
      const route = ROUTES[s.route];
      const url = route.path(JOB, String(s.round), partnerKeys[s.partner]);
      const body =
        route.body === 'none' ? Buffer.alloc(0) : route.body === 'bytes' ? Buffer.from(honestBodies[s.partner]) : Buffer.from(JSON.stringify(s.body) ?? 'null');
      const id = signers()[s.signer];
      let method = route.method;
      let signedUrl = url;
      let signedBody: Uint8Array = body;
      if (s.breakage === 'path-altered') signedUrl = `${url}x`;
      if (s.breakage === 'body-altered') signedBody = Buffer.concat([body, Buffer.from(' ')]);
      if (s.breakage === 'method-altered') method = method === 'GET' ? 'POST' : 'GET';
      const now = s.breakage === 'stale' ? Date.now() - 10 * 60_000 : s.breakage === 'future' ? Date.now() + 10 * 60_000 : undefined;
      const h: Record<string, string | string[]> = signed(id, { method, url: signedUrl, body: signedBody, jobId: JOB, round: s.round, now });
      const sig = h['x-fedmark-signature'] as string;
      switch (s.breakage) {
        case 'flip-signature':
          h['x-fedmark-signature'] = (sig[5] === 'A' ? 'B' : 'A') + sig.slice(1);
          break;
        case 'truncate-signature':
          h['x-fedmark-signature'] = sig.slice(0, 40);
          break;
        case 'empty-signature':
          h['x-fedmark-signature'] = '';
          break;
        case 'non-base64-signature':
          h['x-fedmark-signature'] = `!!${sig.slice(2)}`;
          break;
        case 'other-request-signature':
          h['x-fedmark-signature'] = signed(id, { method: 'GET', url: '/v1/jobs/other', body: new Uint8Array(), jobId: JOB, round: 0 })['x-fedmark-signature'];
          break;
        case 'ts-nonnumeric':
          h['x-fedmark-timestamp'] = 'yesterday';
          break;
        case 'ts-negative':
          h['x-fedmark-timestamp'] = '-5';
          break;
        case 'ts-17-digits':
          h['x-fedmark-timestamp'] = '9'.repeat(17);
          break;
        case 'nonce-short':
          h['x-fedmark-nonce'] = 'abc';
          break;
        case 'nonce-bad-chars':
          h['x-fedmark-nonce'] = 'nonce with spaces and /slashes/';
          break;
        case 'nonce-long':
          h['x-fedmark-nonce'] = 'n'.repeat(129);
          break;
        case 'key-unknown':
          h['x-fedmark-key'] = '0123456789abcdef0123456789abcdef';
          break;
        case 'key-uppercase':
          h['x-fedmark-key'] = (h['x-fedmark-key'] as string).toUpperCase();
          break;
        case 'key-stranger':
          h['x-fedmark-key'] = keyIdOf(stranger.signPublicKey);
          break;
        case 'key-31':
          h['x-fedmark-key'] = (h['x-fedmark-key'] as string).slice(1);
          break;
        case 'key-owner-signed-by-partner':
          h['x-fedmark-key'] = keyIdOf(owner.signPublicKey);
          break;
        case 'job-header-other':
          h['x-fedmark-job'] = 'another-job';
          break;
        case 'round-header-mismatch':
          h['x-fedmark-round'] = String(s.round + 1);
          break;
        case 'round-header-negative':
          h['x-fedmark-round'] = '-1';
          break;
        case 'round-header-huge':
          h['x-fedmark-round'] = '9'.repeat(20);
          break;
        case 'missing-header':
          delete h[s.which];
          break;
        case 'repeated-header':
          h[s.which] = [h[s.which] as string, h[s.which] as string];
          break;
      }
      if (route.body !== 'none') h['content-type'] = route.body === 'bytes' ? 'application/octet-stream' : 'application/json';
      return { method: route.method, url, headers: h, body: route.body === 'none' ? undefined : body, what: `badAuth:${s.breakage} ${route.method} ${url}` };
    }
    case 'deep': {
      const route = ROUTES[s.route];
      const url =
        route.path(JOB, String(s.round), partnerKeys[s.partner]) +
        (route.path(JOB, '1', '').includes('aggregate') ? (s.round % 2 ? '?part=update' : '?part=evaluation') : '');
      let body: Buffer | undefined;
      let ct: string | undefined;
      const isSubmission = url.includes('/submission');
      let signer = isSubmission ? s.subSigner : s.signer;
      if (isSubmission) {
        // Content that is valid as it stands goes out under partner 0 (already submitted: a duplicate or a
        // 409), so that partners 1 and 2 never get an update accepted and stay deep-testable all run long.
        if (s.mutation === 'exact' || s.mutation === 'other-partner') signer = 1;
        body = submissionBody(s, signer >= 1 && signer <= 3 ? signer - 1 : s.partner);
        if ((signer === 2 || signer === 3) && s.round === 1 && wouldBeAccepted(body, partnerKeys[signer - 1])) signer = 1;
        ct = s.ct;
      } else if (route.body === 'bytes') {
        body = Buffer.from(honestBodies[s.partner].subarray(0, 40 + (s.number % 5000)));
        ct = s.ct;
      } else if (route.body === 'json') {
        let value = s.body;
        // Keep the shared job alive for the rest of the run: an owner's valid halt, a partner's valid
        // withdrawal or refusal would close it and make every later request a shallow JOB_CLOSED.
        const v = value as Record<string, unknown> | null;
        if (/\/(halt|withdraw|leave)$/.test(url) && v && typeof v === 'object' && typeof v.reason === 'string' && v.reason.length > 0) value = { reason: 7 };
        if (url.endsWith('/acceptance') && v && typeof v === 'object' && v.accepted === false) value = { accepted: 'false' };
        // Two partners reporting different (random) model hashes stop the job by design.
        if (
          url.endsWith('/model-hash') &&
          v &&
          typeof v === 'object' &&
          typeof v.hash === 'string' &&
          /^[0-9a-f]{64}$/.test(v.hash) &&
          s.signer >= 1 &&
          s.signer <= 3
        )
          value = { hash: v.hash.toUpperCase() };
        body = Buffer.from(JSON.stringify(value) ?? 'null');
        ct = 'application/json';
      }
      const id = signers()[signer];
      const headers: Record<string, string> = signed(id, {
        method: route.method,
        url,
        body: body ?? new Uint8Array(),
        jobId: JOB,
        round: url.includes('/rounds/') ? s.round : 0,
      });
      if (ct) headers['content-type'] = ct;
      return { method: route.method, url, headers, body, what: `deep ${route.method} ${url} by ${id.name}${isSubmission ? ` envelope=${s.mutation}` : ''}` };
    }
    case 'replay': {
      const i = s.index % (captured.length + signedSent.length);
      const w = i < captured.length ? captured[i] : signedSent[i - captured.length];
      let url = w.url;
      if (s.tweak === 'url-case') url = url.replace('/v1/jobs/', '/V1/jobs/');
      if (s.tweak === 'extra-slash') url = url.replace('/v1/', '/v1//');
      if (s.tweak === 'query') url = `${url}${url.includes('?') ? '&' : '?'}x=1`;
      return { ...w, url, what: `replay(${s.tweak}) ${w.what}` };
    }
    case 'createJob': {
      const paths = jsonPaths(createJobBody);
      let body = setAt(createJobBody, ['manifest', 'jobId'], s.newId) as { manifest: Record<string, unknown>; signature: string };
      body = setAt(body, paths[s.path % paths.length], s.value) as typeof body;
      if (s.resignManifest && body && typeof body === 'object' && body.manifest && typeof body.manifest === 'object') {
        body = { ...body, signature: edSignBytes(canonicalBytes(body.manifest), owner) };
      }
      const bytes = Buffer.from(JSON.stringify(body) ?? 'null');
      const m = (body as { manifest?: { jobId?: unknown } })?.manifest;
      const jobId = typeof m?.jobId === 'string' && /^[\x21-\x7e]{1,512}$/.test(m.jobId) ? m.jobId : JOB;
      const headers = { ...signed(owner, { method: 'POST', url: '/v1/jobs', body: bytes, jobId, round: 0 }), 'content-type': 'application/json' };
      return {
        method: 'POST',
        url: '/v1/jobs',
        headers,
        body: bytes,
        what: `createJob set ${paths[s.path % paths.length].join('.') || '(root)'}=${JSON.stringify(s.value)?.slice(0, 60)} resign=${s.resignManifest}`,
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sending and checking

function isOurError(body: string): boolean {
  try {
    const j = JSON.parse(body) as Record<string, unknown>;
    return typeof j.statusCode === 'number' && typeof j.code === 'string' && j.code.length > 0 && typeof j.error === 'string' && j.error.length > 0;
  } catch {
    return false;
  }
}

async function viaInject(w: Wire): Promise<Outcome> {
  const res = await app.inject({ method: w.method as 'GET', url: w.url, headers: w.headers, payload: w.body });
  return { wire: w, status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), body: res.body, via: 'inject' };
}

/** One HTTP/1.1 request written raw to a fresh TCP connection; resolves with the parsed response (or status 0: no response). */
function rawExchange(
  bytes: Buffer,
  o: { halfClose?: boolean; timeoutMs?: number } = {},
): Promise<{ status: number; headers: Record<string, string>; body: string; raw: string }> {
  const { port } = new URL(base);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port: Number(port) }, () => {
      socket.write(bytes);
      if (o.halfClose) socket.end();
    });
    const finish = () => {
      let all = Buffer.concat(chunks);
      const raw = all.toString('latin1');
      // Interim 1xx responses (100 Continue) precede the real one.
      while (/^HTTP\/1\.[01] 1\d\d /.test(all.subarray(0, 16).toString('latin1')) && all.indexOf('\r\n\r\n') >= 0)
        all = all.subarray(all.indexOf('\r\n\r\n') + 4);
      const sep = all.indexOf('\r\n\r\n');
      if (sep < 0) return resolve({ status: 0, headers: {}, body: all.toString('latin1'), raw });
      const head = all.subarray(0, sep).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0])?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      let body = all.subarray(sep + 4);
      if (headers['transfer-encoding'] === 'chunked') {
        const out: Buffer[] = [];
        let p = 0;
        for (;;) {
          const eol = body.indexOf('\r\n', p);
          if (eol < 0) break;
          const n = parseInt(body.subarray(p, eol).toString('latin1'), 16);
          if (!n) break;
          out.push(body.subarray(eol + 2, eol + 2 + n));
          p = eol + 2 + n + 2;
        }
        body = Buffer.concat(out);
      } else if (headers['content-length']) body = body.subarray(0, Number(headers['content-length']));
      resolve({ status, headers, body: body.toString('utf8'), raw });
    };
    socket.setTimeout(o.timeoutMs ?? 5000, () => socket.destroy());
    socket.on('data', (c) => chunks.push(c));
    socket.on('close', finish);
    socket.on('error', () => undefined);
  });
}

function rawRequest(w: Wire): Buffer {
  const lines = [`${w.method} ${w.url} HTTP/1.1`, `host: 127.0.0.1`, 'connection: close'];
  for (const [k, v] of Object.entries(w.headers)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${String(x).replace(/[\r\n]/g, ' ')}`);
  if (w.body) lines.push(`content-length: ${w.body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), w.body ?? Buffer.alloc(0)]);
}

async function viaSocket(w: Wire): Promise<Outcome> {
  const r = await rawExchange(rawRequest(w));
  return { wire: w, status: r.status, contentType: r.headers['content-type'] ?? '', body: r.body, via: 'socket' };
}

async function pool<T, R>(items: T[], n: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

function describeWire(w: Wire): string {
  const h = Object.entries(w.headers)
    .map(([k, v]) => `${k}: ${String(v).slice(0, 60)}`)
    .join('; ');
  const body = w.body ? `${w.body.length} bytes: ${JSON.stringify(w.body.subarray(0, 120).toString('latin1'))}` : 'no body';
  return `${w.what}\n    ${w.method} ${w.url.slice(0, 200)}\n    headers: ${h}\n    body: ${body}`;
}

function stackFor(o: Outcome): string {
  return serverErrorStacks.find((e) => e.method === o.wire.method && e.url === o.wire.url)?.stack ?? '(no server error recorded for this method and URL)';
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedmark-fuzz-'));
  const logger = pino({ level: 'warn', redact: REDACT_PATHS }, { write: (l: string) => void logLines.push(l) });
  // Rate limiting would turn most of the run into 429s after 6,000 requests; the point here is what lies behind it.
  const built = await buildCoordinator({
    dataDir: join(dir, 'coordinator'),
    logger,
    tickMs: 50,
    rateLimitPerMinute: 10_000_000,
    maxUpdateBytes: MAX_UPDATE_BYTES,
  });
  app = built.app;
  app.addHook('preHandler', async (req) => {
    if (!req.headers['x-fedmark-signature']) return;
    captured.push({
      method: req.method,
      url: req.url,
      headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('x-fedmark-') || k === 'content-type')) as Record<string, string>,
      body: req.rawBody,
      what: `set-up traffic ${req.method} ${req.url}`,
    });
    if (req.method === 'POST' && req.url === '/v1/jobs' && req.rawBody && !createJobBody) createJobBody = JSON.parse(req.rawBody.toString('utf8'));
  });
  app.addHook('onError', async (req, reply, err) => {
    if (reply.statusCode >= 500 || !(err as { statusCode?: number }).statusCode)
      serverErrorStacks.push({ method: req.method, url: req.url, stack: err.stack ?? String(err) });
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });

  // The shared job: round 1 open, partner 0 has submitted, partners 1 and 2 have not.
  const { schema, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 200 });
  [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'retail-c']);
  [stranger] = makeIdentities(['stranger']);
  const { signed: signedManifest } = makeJob({ jobId: JOB, schema, owner, partners: ids, rounds: 2 });
  ownerAbort = new AbortController();
  ownerRun = runJobOwner({ coordinatorUrl: base, identity: owner, signed: signedManifest, log: silentLog, pollMs: 100, signal: ownerAbort.signal }).catch(
    (e: unknown) => e,
  );
  partners = await Promise.all(ids.map((identity, i) => ManualPartner.join({ url: base, identity, jobId: JOB, train: parts[i].train, test: parts[i].test })));
  await waitForStatus(new CoordinatorClient(base, owner), JOB, (s) => s.round === 1 && s.roundState === 'open', 'round 1 to open');
  for (const p of partners) honestBodies.push((await p.build(1)).body);
  for (const b of honestBodies) decodedHonest.push(decodeUpdate(b));
  await partners[0].submit(1, honestBodies[0]);
  expect(createJobBody, 'the job creation request was captured').toBeTruthy();
  for (const b of honestBodies) expect(b.length).toBeLessThan(MAX_UPDATE_BYTES / 4);
}, 60_000);

afterAll(async () => {
  ownerAbort?.abort();
  await ownerRun;
  for (const p of partners) p.dispose();
  await app?.close();
  if (dir && !process.env.FEDMARK_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
});

describe('the coordinator under hostile input', () => {
  const outcomes: Outcome[] = [];
  const timings: Record<string, number> = {};
  const started = performance.now();

  it(`answers ${BULK + SOCKET_GENERATED} generated requests (app.inject; on the socket: methods inject cannot send, and ${SOCKET_GENERATED} more) without a single 5xx`, async () => {
    const specs = fc.sample(spec, { numRuns: BULK + SOCKET_GENERATED, seed: SEED });
    const byFamily = new Map<string, number>();
    for (const x of specs.slice(0, BULK)) byFamily.set(x.family, (byFamily.get(x.family) ?? 0) + 1);
    timings.families = JSON.stringify(Object.fromEntries(byFamily)) as never;
    let t = performance.now();
    outcomes.push(
      ...(await pool(specs.slice(0, BULK), CONCURRENCY, async (s) => {
        const w = toWire(s);
        sent.push(w);
        if (w.headers['x-fedmark-signature']) signedSent.push(w);
        // light-my-request only takes methods node knows; the rest are only possible on a socket.
        return INJECTABLE.has(w.method) ? viaInject(w) : viaSocket(w);
      })),
    );
    timings.injectMs = performance.now() - t;
    t = performance.now();
    outcomes.push(
      ...(await pool(specs.slice(BULK), 4, async (s) => {
        const w = toWire(s);
        sent.push(w);
        return viaSocket(w);
      })),
    );
    timings.socketMs = performance.now() - t;
    checkOutcomes(outcomes);
  }, 120_000);

  it('answers malformed HTTP, truncated bodies and unnormalised paths on the socket with 4xx or a closed connection', async () => {
    const jobUrl = `/v1/jobs/${JOB}`;
    const sig = (url: string, body = new Uint8Array()) => signed(ids[1], { method: 'GET', url, body, jobId: JOB, round: 0 });
    const headerLines = (h: Record<string, string>) =>
      Object.entries(h)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
    const cases: { name: string; bytes: Buffer }[] = [
      { name: 'garbage request line', bytes: Buffer.from('GARBAGE\r\n\r\n') },
      { name: 'no version', bytes: Buffer.from(`GET ${jobUrl}\r\n\r\n`) },
      { name: 'HTTP/2 preface', bytes: Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') },
      { name: 'header without colon', bytes: Buffer.from(`GET /health HTTP/1.1\r\nhost: x\r\nnocolon\r\n\r\n`) },
      { name: 'NUL in header', bytes: Buffer.from(`GET /health HTTP/1.1\r\nhost: x\r\nx-a: a\u0000b\r\n\r\n`) },
      { name: '20 KB header', bytes: Buffer.from(`GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`) },
      { name: '70 KB URL', bytes: Buffer.from(`GET /v1/jobs/${'a'.repeat(70_000)} HTTP/1.1\r\nhost: x\r\n\r\n`) },
      {
        name: 'CL and TE both (smuggling)',
        bytes: Buffer.from(
          `POST ${jobUrl}/acceptance HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n`,
        ),
      },
      {
        name: 'two content-lengths',
        bytes: Buffer.from(
          `POST ${jobUrl}/acceptance HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncontent-length: 5\r\n\r\n{}`,
        ),
      },
      {
        name: 'bad chunk size',
        bytes: Buffer.from(
          `POST ${jobUrl}/acceptance HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
        ),
      },
      {
        name: 'negative content-length',
        bytes: Buffer.from(`POST ${jobUrl}/acceptance HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: -1\r\n\r\n`),
      },
      {
        name: 'truncated JSON body (content-length 1000, 10 sent, half-closed)',
        bytes: Buffer.from(`POST ${jobUrl}/acceptance HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"accepted"`),
      },
      {
        name: 'truncated octet body (half-closed)',
        bytes: Buffer.from(
          `PUT ${jobUrl}/rounds/1/submission HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\nFMUP\u0001`,
        ),
      },
      {
        name: 'raw .. in path',
        bytes: Buffer.from(`GET /v1/jobs/../../etc/passwd HTTP/1.1\r\nhost: x\r\n${headerLines(sig('/v1/jobs/../../etc/passwd'))}\r\n`),
      },
      {
        name: 'raw ../ to a real route',
        bytes: Buffer.from(`GET /v1/jobs/x/../${JOB} HTTP/1.1\r\nhost: x\r\n${headerLines(sig(`/v1/jobs/x/../${JOB}`))}\r\n`),
      },
      {
        name: 'encoded slash in job id',
        bytes: Buffer.from(`GET /v1/jobs/${JOB}%2Fmanifest HTTP/1.1\r\nhost: x\r\n${headerLines(sig(`/v1/jobs/${JOB}%2Fmanifest`))}\r\n`),
      },
      { name: 'absolute-form URL', bytes: Buffer.from(`GET http://127.0.0.1${jobUrl} HTTP/1.1\r\nhost: x\r\n\r\n`) },
      { name: 'asterisk-form', bytes: Buffer.from('OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n') },
      { name: 'HTTP/1.0 without host', bytes: Buffer.from(`GET ${jobUrl} HTTP/1.0\r\n\r\n`) },
      { name: 'backslashes', bytes: Buffer.from(`GET \\v1\\jobs\\${JOB} HTTP/1.1\r\nhost: x\r\n\r\n`) },
      { name: 'bad percent-encoding', bytes: Buffer.from(`GET /v1/jobs/%E0%A4%A HTTP/1.1\r\nhost: x\r\n\r\n`) },
      {
        name: 'pipelined: signed replay twice on one connection',
        bytes: (() => {
          const h = headerLines(sig(jobUrl));
          return Buffer.from(`GET ${jobUrl} HTTP/1.1\r\nhost: x\r\n${h}\r\nGET ${jobUrl} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${h}\r\n`);
        })(),
      },
      {
        name: 'expect: 100-continue then nothing',
        bytes: Buffer.from(
          `PUT ${jobUrl}/rounds/1/submission HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 10\r\nexpect: 100-continue\r\n\r\n`,
        ),
      },
      { name: 'slowloris-style partial headers', bytes: Buffer.from(`GET /health HTTP/1.1\r\nhost: x\r\nx-a: `) },
    ];
    // Every case half-closes after writing, so the server's answer (or its decision to close) ends the exchange.
    const results = await pool(cases, 4, async (c) => ({ c, r: await rawExchange(c.bytes, { halfClose: true, timeoutMs: 4000 }) }));
    const statuses = results.map(({ c, r }) => `${c.name}: ${r.status || 'closed'}`);
    const bad = results.filter(({ r }) => r.status >= 500 || (r.status !== 0 && r.status < 200));
    expect(
      bad.map(({ c, r }) => `${c.name} → ${r.status} ${r.body.slice(0, 200)}`),
      statuses.join('\n'),
    ).toEqual([]);
    // Rejected by the route or by the HTTP parser (src/transport/http-server.ts clientErrorHandler): the same JSON shape.
    for (const { c, r } of results) if (r.status >= 400) expect(isOurError(r.body), `${c.name}: ${r.status} ${r.body}`).toBe(true);
    const get = (name: string) => results.find(({ c }) => c.name === name)!.r;
    // Oversized headers and URLs are refused by the parser; smuggling framing is refused and the smuggled request never runs.
    expect(get('20 KB header').status).toBe(431);
    expect(get('70 KB URL').status).toBe(431);
    expect(get('CL and TE both (smuggling)').status).toBe(400);
    expect(get('CL and TE both (smuggling)').raw).not.toMatch(/HTTP\/1\.1 200/);
    // Paths are not normalised: a signed request for /v1/jobs/x/../<job> does not reach the job's route.
    expect(get('raw ../ to a real route').status).toBe(404);
    // Only the first of two identical signed requests on one connection is served; the second is a replay.
    expect(get('pipelined: signed replay twice on one connection').status).toBe(200);
    expect(get('pipelined: signed replay twice on one connection').raw).toMatch(/HTTP\/1\.1 409[\s\S]*"code":"AUTH_REPLAY"/);
    timings.rawCases = cases.length;
  });

  it('stayed up, logged no server error, and was not polluted', async () => {
    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    // Error-level lines that are not protocol events: unexpected errors in routes or in the deadline sweep.
    const errors = logLines.filter((l) => /"level":(50|60)/.test(l) && !/"msg":"model hashes disagree: job stopped"/.test(l));
    expect(
      errors.map((l) => l.slice(0, 600)),
      'error-level lines in the coordinator log',
    ).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).accepted).toBeUndefined();
  });

  it('then runs an honest job (3 partners, 2 rounds, telco sample) to completion on the same server', async () => {
    const t = performance.now();
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300, seed: 9 });
    const [o, ...ps] = makeIdentities(['honest-owner', 'honest-a', 'honest-b', 'honest-c']);
    const { signed: s } = makeJob({ jobId: 'honest-job', schema, owner: o, partners: ps, rounds: 2 });
    const result = await runFederation({ url: base, owner: o, identities: ps, signed: s, parts, schemaHash, stateDir: join(dir, 'honest'), timeoutMs: 45_000 });
    expect(result.owner.state).toBe('completed');
    for (const n of result.nodes) {
      expect(n.state).toBe('completed');
      expect(n.rounds).toBe(2);
      expect(n.modelHash).toBe(result.owner.modelHash);
    }
    expect(result.owner.finalMetrics!.auc).toBeGreaterThan(0.6);
    timings.honestMs = performance.now() - t;
    timings.totalMs = performance.now() - started;
    const byStatus = new Map<number, number>();
    for (const oc of outcomes) byStatus.set(oc.status, (byStatus.get(oc.status) ?? 0) + 1);
    // The numbers the report quotes.
    console.info(
      `fuzz: ${outcomes.filter((x) => x.via === 'inject').length} inject + ${outcomes.filter((x) => x.via === 'socket').length} socket generated + ${timings.rawCases} raw HTTP cases; ` +
        `families ${timings.families}; inject ${(timings.injectMs / 1000).toFixed(1)} s, socket ${(timings.socketMs / 1000).toFixed(1)} s, honest job ${(timings.honestMs / 1000).toFixed(1)} s, all ${(timings.totalMs / 1000).toFixed(1)} s; ` +
        `statuses ${JSON.stringify(Object.fromEntries([...byStatus].sort((a, b) => a[0] - b[0])))}`,
    );
  }, 60_000);
});

function checkOutcomes(all: Outcome[]): void {
  const serverErrors = all.filter((o) => o.status >= 500);
  const noAnswer = all.filter((o) => o.status === 0);
  const badShape = all.filter((o) => o.status >= 400 && o.status < 500 && o.wire.method !== 'HEAD' && !isOurError(o.body));
  const badHead = all.filter((o) => o.wire.method === 'HEAD' && o.status >= 400 && !o.contentType.includes('application/json'));
  const mismatched = all.filter(
    (o) => o.status >= 400 && o.wire.method !== 'HEAD' && isOurError(o.body) && (JSON.parse(o.body) as { statusCode: number }).statusCode !== o.status,
  );
  const report = (xs: Outcome[], n = 5) =>
    xs
      .slice(0, n)
      .map(
        (o) => `[${o.via} → ${o.status}] ${describeWire(o.wire)}\n    response: ${o.body.slice(0, 300)}${o.status >= 500 ? `\n    stack: ${stackFor(o)}` : ''}`,
      )
      .join('\n');
  expect(serverErrors.length, `5xx answers (${serverErrors.length}):\n${report(serverErrors, 10)}`).toBe(0);
  expect(noAnswer.length, `requests without an answer:\n${report(noAnswer)}`).toBe(0);
  expect(badShape.length, `4xx answers without { statusCode, code, error } (${badShape.length}):\n${report(badShape)}`).toBe(0);
  expect(badHead.length, `HEAD rejections that are not JSON:\n${report(badHead)}`).toBe(0);
  expect(mismatched.length, `body statusCode differs from the HTTP status:\n${report(mismatched)}`).toBe(0);
  // The run must have gone deep, not just bounced off the router: signatures verified and
  // submissions inspected (these codes only come from the signature check and the job engine).
  const codes = new Set(all.filter((o) => isOurError(o.body)).map((o) => (JSON.parse(o.body) as { code: string }).code));
  // AUTH_REJECTED is the one answer for an unknown job, a key the job does not name and a bad signature.
  for (const code of [
    'AUTH_REJECTED',
    'AUTH_BAD_SIGNATURE',
    'AUTH_REPLAY',
    'AUTH_STALE',
    'INVALID_REQUEST',
    'BAD_JSON',
    'NOT_FOUND',
    'UPDATE_MALFORMED',
    'HE_BAD_CIPHERTEXT',
    'PARTNER_ONLY',
  ]) {
    expect(codes, `no request was rejected with ${code}; seen: ${[...codes].sort().join(', ')}`).toContain(code);
  }
}
