import { signRequest } from '../../crypto/request-signing.ts';
import type { Identity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import type { SignedManifest } from '../manifest.ts';
import { parsePublicIdentity, type PublicIdentity } from '../../crypto/identity.ts';
import type { LedgerEntry } from '../../privacy/ledger/entries.ts';
import type { JobStatus } from '../../../coordinator/job-engine.ts';
import { assertCoordinatorUrl, coordinatorTransport, type ClientTlsOptions } from '../../transport/tls-client.ts';

/** Every request is signed by the node's identity for one job and round. */
export class CoordinatorClient {
  /** Every body this client sent, for tests that check no raw row ever leaves a partner. */
  readonly sentBodies: Uint8Array[] | null;

  constructor(
    readonly baseUrl: string,
    private readonly identity: Identity,
    opts: { recordBodies?: boolean; fetchImpl?: typeof fetch; tls?: ClientTlsOptions; unreachableRetryMs?: number; signal?: AbortSignal } = {},
  ) {
    this.sentBodies = opts.recordBodies ? [] : null;
    this.unreachableRetryMs = opts.unreachableRetryMs ?? 120_000;
    this.signal = opts.signal;
    // Both paths refuse plain http:// off loopback, whatever transport is used.
    if (opts.fetchImpl) assertCoordinatorUrl(baseUrl, opts.tls);
    this.fetchImpl = opts.fetchImpl ?? coordinatorTransport(baseUrl, opts.tls);
  }
  private readonly fetchImpl: typeof fetch;
  private readonly unreachableRetryMs: number;
  /** Stops retries (and the node's loops) at once. */
  private readonly signal?: AbortSignal;

  /**
   * Sends one signed request. A coordinator that cannot be reached (restarting, network blip) is
   * retried with backoff for `unreachableRetryMs`, each attempt freshly signed (new nonce and
   * timestamp). That is safe because every protocol write is idempotent on the coordinator: the same
   * submission, acceptance, decline or model hash sent twice is acknowledged, never applied twice.
   */
  async request(method: string, path: string, jobId: string, round: number, body?: Uint8Array | object): Promise<Response> {
    const bytes = body === undefined ? new Uint8Array(0) : body instanceof Uint8Array ? body : new TextEncoder().encode(JSON.stringify(body));
    this.sentBodies?.push(bytes);
    const giveUpAt = Date.now() + this.unreachableRetryMs;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = signRequest({ method, path, body: bytes, jobId, round, identity: this.identity });
      if (body !== undefined) headers['content-type'] = body instanceof Uint8Array ? 'application/octet-stream' : 'application/json';
      try {
        return await this.fetchImpl(this.baseUrl + path, { method, headers, body: body === undefined ? undefined : bytes });
      } catch (err) {
        // TLS failures arrive as FedmarkErrors with their own codes: they must not look retryable.
        if (err instanceof FedmarkError) throw err;
        this.signal?.throwIfAborted();
        if (Date.now() >= giveUpAt) {
          throw new FedmarkError('COORDINATOR_UNREACHABLE', `cannot reach the coordinator at ${this.baseUrl}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** Math.min(attempt, 5))));
      }
    }
  }

  /** Sends a request and returns the JSON body, or throws a FedmarkError carrying the server's code and message. */
  async json<T>(method: string, path: string, jobId: string, round: number, body?: Uint8Array | object): Promise<T> {
    const res = await this.request(method, path, jobId, round, body);
    const text = await res.text();
    if (!res.ok) throw responseError(res.status, text, method, path);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async bytes(method: string, path: string, jobId: string, round: number): Promise<Uint8Array> {
    const res = await this.request(method, path, jobId, round);
    if (!res.ok) throw responseError(res.status, await res.text(), method, path);
    return new Uint8Array(await res.arrayBuffer());
  }

  createJob(signed: SignedManifest, ledgerGenesis: LedgerEntry) {
    return this.json<{ jobId: string }>('POST', '/v1/jobs', signed.manifest.jobId, 0, { ...signed, ledgerGenesis });
  }
  /** The coordinator's public identity (unsigned route): the key that authors job ledgers. */
  async coordinatorIdentity(): Promise<PublicIdentity> {
    const res = await this.fetchImpl(`${this.baseUrl}/v1/identity`).catch((err: Error) => {
      throw new FedmarkError('COORDINATOR_UNREACHABLE', `cannot reach the coordinator at ${this.baseUrl}: ${err.message}`);
    });
    const text = await res.text();
    if (!res.ok) throw responseError(res.status, text, 'GET', '/v1/identity');
    return parsePublicIdentity(JSON.parse(text));
  }
  ledgerHead(jobId: string) {
    return this.json<{ seq: number; hash: string }>('GET', `/v1/jobs/${jobId}/ledger/head`, jobId, 0);
  }
  status(jobId: string) {
    return this.json<JobStatus>('GET', `/v1/jobs/${jobId}`, jobId, 0);
  }
  manifest(jobId: string) {
    return this.json<SignedManifest & { ledgerManifestHash: string }>('GET', `/v1/jobs/${jobId}/manifest`, jobId, 0);
  }
  accept(jobId: string, body: { accepted: boolean; reason?: string; statement?: unknown }) {
    return this.json('POST', `/v1/jobs/${jobId}/acceptance`, jobId, 0, body);
  }
  putSealedKey(jobId: string, keyId: string, blob: Uint8Array) {
    return this.json('PUT', `/v1/jobs/${jobId}/keys/${keyId}`, jobId, 0, blob);
  }
  sealedKey(jobId: string) {
    return this.bytes('GET', `/v1/jobs/${jobId}/keys/mine`, jobId, 0);
  }
  submit(jobId: string, round: number, body: Uint8Array) {
    return this.json<{ duplicate: boolean }>('PUT', `/v1/jobs/${jobId}/rounds/${round}/submission`, jobId, round, body);
  }
  decline(jobId: string, round: number, attempt: number, reason: string, requestedEpsilon?: number, remainingEpsilon?: number) {
    return this.json('POST', `/v1/jobs/${jobId}/rounds/${round}/decline`, jobId, round, { attempt, reason, requestedEpsilon, remainingEpsilon });
  }
  aggregate(jobId: string, round: number, part: 'update' | 'evaluation') {
    return this.bytes('GET', `/v1/jobs/${jobId}/rounds/${round}/aggregate?part=${part}`, jobId, round);
  }
  reportModelHash(jobId: string, round: number, hash: string) {
    return this.json('POST', `/v1/jobs/${jobId}/rounds/${round}/model-hash`, jobId, round, { hash });
  }
  withdraw(jobId: string, reason: string, statement: Record<string, unknown>) {
    return this.json('POST', `/v1/jobs/${jobId}/withdraw`, jobId, 0, { reason, statement });
  }
  halt(jobId: string, reason: string) {
    return this.json('POST', `/v1/jobs/${jobId}/halt`, jobId, 0, { reason });
  }
  ledger(jobId: string) {
    return this.bytes('GET', `/v1/jobs/${jobId}/ledger`, jobId, 0);
  }
}

export class CoordinatorError extends FedmarkError {
  constructor(readonly status: number, code: string, message: string) {
    super(code, message);
  }
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
