import type { z } from 'zod';
import { signRequest } from '../../crypto/request-signing.ts';
import type { Identity, PublicIdentity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import type { SignedManifest } from '../manifest.ts';
import type { ModelSelection } from '../workload.ts';
import type { LedgerEntry } from '../../privacy/ledger/entries.ts';
import { assertCoordinatorUrl, coordinatorTransport, type ClientTlsOptions } from '../../transport/tls-client.ts';
import { identityChallenge, verifyIdentityAnswer } from './coordinator-proofs.ts';
import { backoffDelay } from '../../util/backoff.ts';
import { pathOf, routes, type RouteSpec } from './routes.ts';
import type { RoundContents } from '../submission-record.ts';
import type { AcceptanceBody, DeclineBody, JobStatus, LedgerHead, ManifestResponse } from './schemas.ts';

export interface CoordinatorClientOptions {
  recordBodies?: boolean;
  fetchImpl?: typeof fetch;
  tls?: ClientTlsOptions;
  /** How long a coordinator that cannot be reached is retried before COORDINATOR_UNREACHABLE (default 120 s). */
  unreachableRetryMs?: number;
  /** Longest single wait between those retries (default 15 s; capped exponential backoff with jitter). */
  maxBackoffMs?: number;
  /** Told before each wait while the coordinator cannot be reached (the nodes print what they wait for). */
  onUnreachable?: (info: { downForMs: number; retryInMs: number; giveUpInMs: number; error: string }) => void;
  signal?: AbortSignal;
}

type Params = Record<string, string | number>;
type ResponseOf<R extends RouteSpec> = R['response'] extends z.ZodType ? z.output<R['response']> : Uint8Array;

/**
 * The nodes' client of the coordinator protocol. Every request is signed by the node's identity for
 * one job and round; every path comes from the route table; every JSON response is parsed with its
 * schema, so a coordinator answering with something else is refused (RESPONSE_INVALID) instead of
 * being trusted by shape.
 */
export class CoordinatorClient {
  /** Every body this client sent, for tests that check no raw row ever leaves a partner. */
  readonly sentBodies: Uint8Array[] | null;
  private readonly fetchImpl: typeof fetch;
  private readonly unreachableRetryMs: number;
  private readonly maxBackoffMs: number;
  private readonly onUnreachable: CoordinatorClientOptions['onUnreachable'];
  /** Stops retries (and the node's loops) at once. */
  private readonly signal?: AbortSignal;

  constructor(
    readonly baseUrl: string,
    private readonly identity: Identity,
    opts: CoordinatorClientOptions = {},
  ) {
    this.sentBodies = opts.recordBodies ? [] : null;
    this.unreachableRetryMs = opts.unreachableRetryMs ?? 120_000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 15_000;
    this.onUnreachable = opts.onUnreachable;
    this.signal = opts.signal;
    // Both paths refuse plain http:// off loopback, whatever transport is used.
    if (opts.fetchImpl) assertCoordinatorUrl(baseUrl, opts.tls);
    this.fetchImpl = opts.fetchImpl ?? coordinatorTransport(baseUrl, opts.tls);
  }

  /**
   * Sends one signed request (raw: tests use it to send what the typed methods never would). A
   * coordinator that cannot be reached (restarting, network blip) is retried with backoff for
   * `unreachableRetryMs`, each attempt freshly signed (new nonce and timestamp). That is safe because
   * every protocol write is idempotent on the coordinator: the same submission, acceptance, decline
   * or model hash sent twice is acknowledged, never applied twice.
   */
  async request(method: string, path: string, jobId: string, round: number, body?: Uint8Array | object, signal?: AbortSignal): Promise<Response> {
    const bytes = body === undefined ? new Uint8Array(0) : body instanceof Uint8Array ? body : new TextEncoder().encode(JSON.stringify(body));
    this.sentBodies?.push(bytes);
    const startedAt = Date.now();
    const giveUpAt = startedAt + this.unreachableRetryMs;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = signRequest({ method, path, body: bytes, jobId, round, identity: this.identity });
      if (body !== undefined) headers['content-type'] = body instanceof Uint8Array ? 'application/octet-stream' : 'application/json';
      try {
        const res = await this.fetchImpl(this.baseUrl + path, { method, headers, body: body === undefined ? undefined : bytes, signal });
        // Rate limited, or the coordinator's storage is full or failing (nothing was kept): wait as long
        // as it says (bounded) and retry, freshly signed.
        if ((res.status === 429 || res.status === 503 || res.status === 507) && Date.now() < giveUpAt) {
          await res.arrayBuffer().catch(() => undefined);
          const after = Number(res.headers.get('retry-after'));
          await sleepFor(Math.min(10_000, Number.isFinite(after) && after > 0 ? after * 1000 : 1000), this.signal);
          continue;
        }
        return res;
      } catch (err) {
        // TLS failures arrive as FedmarkErrors with their own codes: they must not look retryable.
        if (err instanceof FedmarkError) throw err;
        this.signal?.throwIfAborted();
        signal?.throwIfAborted();
        const now = Date.now();
        if (now >= giveUpAt) {
          throw new FedmarkError(
            'COORDINATOR_UNREACHABLE',
            `cannot reach the coordinator at ${this.baseUrl} for ${Math.round((now - startedAt) / 1000)} s (the limit): ${(err as Error).message}`,
          );
        }
        const wait = Math.min(giveUpAt - now, backoffDelay(attempt, { baseMs: 100, capMs: this.maxBackoffMs }));
        this.onUnreachable?.({ downForMs: now - startedAt, retryInMs: wait, giveUpInMs: giveUpAt - now, error: (err as Error).message });
        await sleepFor(wait, this.signal);
      }
    }
  }

  /** Unsigned routes (health, identity): one attempt, no retries. */
  private unsigned(method: string, path: string): Promise<Response> {
    return this.fetchImpl(this.baseUrl + path, { method }).catch((err: Error) => {
      if (err instanceof FedmarkError) throw err;
      throw new FedmarkError('COORDINATOR_UNREACHABLE', `cannot reach the coordinator at ${this.baseUrl}: ${err.message}`);
    });
  }

  /**
   * Calls one route: builds its path, signs it for the job and round named by the params, and parses
   * the answer (JSON with the route's schema, bytes as they are). Refusals become CoordinatorErrors
   * carrying the coordinator's code.
   */
  async call<R extends RouteSpec>(
    spec: R,
    params: Params,
    o: { body?: Uint8Array | object; query?: Record<string, string>; jobId?: string; signal?: AbortSignal } = {},
  ): Promise<ResponseOf<R>> {
    const query = o.query ? `?${new URLSearchParams(o.query).toString()}` : '';
    const path = pathOf(spec, params) + query;
    const jobId = o.jobId ?? String(params.jobId ?? '');
    const round = typeof params.round === 'number' ? params.round : 0;
    const res = spec.auth === 'none' ? await this.unsigned(spec.method, path) : await this.request(spec.method, path, jobId, round, o.body, o.signal);
    if (!res.ok) throw responseError(res.status, await res.text(), spec.method, path);
    if (typeof spec.response === 'string') return new Uint8Array(await res.arrayBuffer()) as ResponseOf<R>;
    return parseResponse(spec.response, await res.text(), spec.method, path) as ResponseOf<R>;
  }

  createJob(signed: SignedManifest, ledgerGenesis: LedgerEntry) {
    return this.call(routes.createJob, {}, { body: { ...signed, ledgerGenesis }, jobId: signed.manifest.jobId });
  }
  /**
   * The coordinator's public identity: the key that authors job ledgers. The coordinator must sign
   * a fresh challenge with that key (a server that copies another's identity fails), and be the
   * pinned key when one is given (COORDINATOR_UNTRUSTED otherwise).
   */
  async coordinatorIdentity(o: { pinnedKeyId?: string } = {}): Promise<PublicIdentity> {
    const challenge = identityChallenge();
    return verifyIdentityAnswer(await this.call(routes.identity, {}, { query: { challenge } }), challenge, o.pinnedKeyId);
  }
  /** The job ledger's head as the coordinator signed it (check it with verifyCoordinatorHead). */
  ledgerHead(jobId: string): Promise<LedgerHead> {
    return this.call(routes.ledgerHead, { jobId });
  }
  status(jobId: string): Promise<JobStatus> {
    return this.call(routes.status, { jobId });
  }
  manifest(jobId: string): Promise<ManifestResponse> {
    return this.call(routes.manifest, { jobId });
  }
  accept(jobId: string, body: AcceptanceBody) {
    return this.call(routes.accept, { jobId }, { body });
  }
  putSealedKey(jobId: string, keyId: string, blob: Uint8Array) {
    return this.call(routes.putSealedKey, { jobId, keyId }, { body: blob });
  }
  sealedKey(jobId: string): Promise<Uint8Array> {
    return this.call(routes.sealedKey, { jobId });
  }
  submit(jobId: string, round: number, body: Uint8Array) {
    return this.call(routes.submit, { jobId, round }, { body });
  }
  decline(jobId: string, round: number, body: DeclineBody) {
    return this.call(routes.decline, { jobId, round }, { body });
  }
  aggregate(jobId: string, round: number, part: string): Promise<Uint8Array> {
    return this.call(routes.aggregate, { jobId, round }, { query: { part } });
  }
  /** What a closed round's sums hold (partner-signed records): checked by key holders before they decrypt. */
  contents(jobId: string, round: number): Promise<RoundContents> {
    return this.call(routes.contents, { jobId, round });
  }
  reportModelHash(jobId: string, round: number, hash: string, selection: ModelSelection | null = null) {
    return this.call(routes.reportModelHash, { jobId, round }, { body: { hash, ...(selection ? { selection } : {}) } });
  }
  leave(jobId: string, reason: string, statement: Record<string, unknown>) {
    return this.call(routes.leave, { jobId }, { body: { reason, statement } });
  }

  withdraw(jobId: string, reason: string, statement: Record<string, unknown>) {
    return this.call(routes.withdraw, { jobId }, { body: { reason, statement } });
  }
  halt(jobId: string, reason: string) {
    return this.call(routes.halt, { jobId }, { body: { reason } });
  }
  ledger(jobId: string): Promise<Uint8Array> {
    return this.call(routes.ledger, { jobId });
  }
}

function sleepFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

/** A refusal by the coordinator: its HTTP status and its code from the protocol's error table. */
export class CoordinatorError extends FedmarkError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
  ) {
    super(code, message);
  }
}

function parseResponse<S extends z.ZodType>(schema: S, text: string, method: string, path: string): z.output<S> {
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new FedmarkError('RESPONSE_INVALID', `coordinator answered ${method} ${path.split('?')[0]} with a body that is not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError(
      'RESPONSE_INVALID',
      `coordinator answered ${method} ${path.split('?')[0]} with an invalid body: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

function responseError(status: number, text: string, method: string, path: string): CoordinatorError {
  let code = `HTTP_${status}`;
  let message = text.slice(0, 500);
  try {
    const j = JSON.parse(text) as { code?: string; error?: string };
    code = j.code ?? code;
    message = j.error ?? message;
  } catch {
    /* not JSON: keep the text */
  }
  return new CoordinatorError(status, code, `coordinator refused ${method} ${path.split('?')[0]} (${status} ${code}): ${message}`);
}
