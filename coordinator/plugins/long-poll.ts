import fp from 'fastify-plugin';
import { DomainError } from '../../src/federation/protocol/errors.ts';
import type { JobStatus } from '../../src/federation/protocol/schemas.ts';
import { watchRoutes, type WatchResponse } from '../../src/federation/protocol/watch-routes.ts';
import { sha256Canonical } from '../../src/privacy/ledger/canonical.ts';
import type { JobEngine } from '../job-engine.ts';
import { defineRoute, type CoordinatorApp } from '../routes/define.ts';

export interface LongPollLimits {
  /** Longest a request is held (ms); a longer `waitMs` is cut to this (default 25 s). */
  maxWaitMs: number;
  /** Held requests per signing key, across its jobs (default 4). */
  perKey: number;
  /** Held requests in all (default 1,024). */
  total: number;
}

export const DEFAULT_LONG_POLL_LIMITS: LongPollLimits = { maxWaitMs: 25_000, perKey: 4, total: 1024 };

/** A job's status and its version for one caller: the SHA-256 of the status and of how many relayed messages await the caller (see watch-routes.ts). */
export interface Versioned {
  etag: string;
  status: JobStatus;
}

export function versioned(status: JobStatus, inbox = 0): Versioned {
  return { etag: sha256Canonical({ status, inbox }), status };
}

interface Waiter {
  jobId: string;
  keyId: string;
  since: string;
  /** Ends the wait: with the version that differs, or null (timeout, client gone, shutdown) to be read afresh. */
  finish(v: Versioned | null): void;
}

/**
 * The requests held by the long-poll route, per job, with their bounds. A job change (the engine's
 * change event) recomputes the job's version once and releases every waiter whose `since` it no
 * longer matches; a waiter whose version did not change keeps waiting. Bounded per key and in all,
 * so a client cannot pin memory or sockets beyond `perKey` requests; all are released on shutdown.
 */
export class HeldRequests {
  private readonly byJob = new Map<string, Set<Waiter>>();
  private readonly perKey = new Map<string, number>();
  private held = 0;
  private closing = false;

  constructor(
    private readonly versionOf: (jobId: string, keyId: string) => Versioned,
    readonly limits: LongPollLimits,
  ) {}

  get size(): number {
    return this.held;
  }

  /**
   * Resolves with the job's version as soon as it differs from `since`, or with null once `waitMs`
   * (capped) passed, `gone` fired, or the coordinator closes. Refuses (LONG_POLL_LIMIT) past the bounds.
   */
  wait(jobId: string, keyId: string, since: string, waitMs: number, gone: AbortSignal): Promise<Versioned | null> {
    if (this.closing || gone.aborted) return Promise.resolve(null);
    const mine = this.perKey.get(keyId) ?? 0;
    if (mine >= this.limits.perKey)
      throw new DomainError('LONG_POLL_LIMIT', `this key already holds ${mine} long-poll requests (at most ${this.limits.perKey}): wait for one to return`, {
        retryAfterSeconds: 1,
      });
    if (this.held >= this.limits.total)
      throw new DomainError('LONG_POLL_LIMIT', `the coordinator holds ${this.held} long-poll requests, its limit: poll again later`, { retryAfterSeconds: 1 });
    return new Promise((resolve) => {
      let done = false;
      const w: Waiter = {
        jobId,
        keyId,
        since,
        finish: (v) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          gone.removeEventListener('abort', onGone);
          this.remove(w);
          resolve(v);
        },
      };
      const onGone = () => w.finish(null);
      const timer = setTimeout(() => w.finish(null), Math.min(waitMs, this.limits.maxWaitMs));
      gone.addEventListener('abort', onGone, { once: true });
      let set = this.byJob.get(jobId);
      if (!set) this.byJob.set(jobId, (set = new Set()));
      set.add(w);
      this.perKey.set(keyId, mine + 1);
      this.held++;
    });
  }

  /** The job may have changed: release the waiters whose version it no longer is (computed once per caller). */
  changed(jobId: string): void {
    const set = this.byJob.get(jobId);
    if (!set?.size) return;
    const versions = new Map<string, Versioned | null>();
    for (const w of [...set]) {
      if (!versions.has(w.keyId)) {
        try {
          versions.set(w.keyId, this.versionOf(jobId, w.keyId));
        } catch {
          // Let the request read (and answer) the failure itself.
          versions.set(w.keyId, null);
        }
      }
      const v = versions.get(w.keyId)!;
      if (v === null || w.since !== v.etag) w.finish(v);
    }
  }

  /** Shutdown: every held request answers now, and new ones are not held. */
  close(): void {
    this.closing = true;
    for (const set of [...this.byJob.values()]) for (const w of [...set]) w.finish(null);
  }

  private remove(w: Waiter): void {
    const set = this.byJob.get(w.jobId);
    set?.delete(w);
    if (set?.size === 0) this.byJob.delete(w.jobId);
    const n = (this.perKey.get(w.keyId) ?? 1) - 1;
    if (n > 0) this.perKey.set(w.keyId, n);
    else this.perKey.delete(w.keyId);
    this.held--;
  }
}

/**
 * `GET /v1/jobs/:jobId/watch`: the long-poll route (src/federation/protocol/watch-routes.ts). The
 * auth plugin verifies the signed request in `onRequest`, before the handler can hold anything, so
 * an unauthenticated caller is refused at once. Change events from the engine are coalesced per
 * job and handled after the step that raised them (never inside the engine's own call).
 */
export const longPollPlugin = fp<{ engine: JobEngine; limits?: Partial<LongPollLimits>; inbox?: (jobId: string, keyId: string) => number }>(
  async (app, { engine, limits, inbox }) => {
    const versionOf = (jobId: string, keyId: string) => versioned(engine.status(jobId), inbox?.(jobId, keyId) ?? 0);
    const held = new HeldRequests(versionOf, { ...DEFAULT_LONG_POLL_LIMITS, ...limits });
    const pending = new Set<string>();
    let scheduled: NodeJS.Immediate | null = null;
    const unsubscribe = engine.onChange((jobId) => {
      pending.add(jobId);
      scheduled ??= setImmediate(() => {
        scheduled = null;
        const jobs = [...pending];
        pending.clear();
        for (const j of jobs) held.changed(j);
      });
    });
    app.decorate('heldRequests', held);
    // Before the server stops taking connections: a held request would otherwise keep close() waiting.
    app.addHook('preClose', async () => {
      unsubscribe();
      if (scheduled) clearImmediate(scheduled);
      held.close();
    });

    defineRoute(app as unknown as CoordinatorApp, watchRoutes.watch, async (req, reply): Promise<WatchResponse> => {
      const { jobId } = req.params;
      const { since, waitMs } = req.query;
      const keyId = req.signer!.keyId;
      const now = versionOf(jobId, keyId);
      if (since === undefined || since !== now.etag || waitMs === 0) return { ...now, changed: since !== now.etag };
      const gone = new AbortController();
      // The client went away (or timed out): free its slot at once.
      reply.raw.once('close', () => gone.abort());
      const v = (await held.wait(jobId, keyId, since, waitMs, gone.signal)) ?? versionOf(jobId, keyId);
      return { ...v, changed: v.etag !== since };
    });
  },
  { name: 'fedmark-long-poll', dependencies: ['fedmark-auth'] },
);

declare module 'fastify' {
  interface FastifyInstance {
    /** The long-poll route's held requests (tests read their count). */
    heldRequests: HeldRequests;
  }
}
