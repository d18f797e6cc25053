import { CoordinatorError, type CoordinatorClient } from './client.ts';
import type { JobStatus } from './schemas.ts';
import { DEFAULT_LONG_POLL_WAIT_MS, watchRoutes } from './watch-routes.ts';

export interface StatusWatcherOptions {
  /** Interval polling: the pause between status reads against a coordinator without the long-poll route (or with `waitMs` 0). */
  pollMs: number;
  /** How long one long-poll may be held (default 20 s; the coordinator caps it); 0 turns long-polling off. */
  waitMs?: number;
  signal?: AbortSignal;
  /** Told once when the coordinator has no long-poll route and the watcher falls back to interval polling. */
  onFallback?: (why: string) => void;
}

/**
 * How a node learns that its job moved on. The first `next()` reads the status at once; every later
 * one returns as soon as the status differs from the one returned before (long-poll, see
 * watch-routes.ts), or with the unchanged status once the wait runs out — so the caller re-evaluates
 * at least every `waitMs` and never misses a change that happened while it was working. Against a
 * coordinator that does not know the route (404 NOT_FOUND) it falls back for good to reading the
 * status every `pollMs`, which is what every node did before.
 */
export class StatusWatcher {
  private etag: string | undefined;
  private last: JobStatus | undefined;
  private longPoll: boolean;
  private started = false;

  constructor(
    private readonly client: CoordinatorClient,
    private readonly jobId: string,
    private readonly o: StatusWatcherOptions,
  ) {
    this.longPoll = (o.waitMs ?? DEFAULT_LONG_POLL_WAIT_MS) > 0;
  }

  /**
   * The status `next()` returned last. A caller that shares the watcher between loops must start
   * from it: `next()` waits for a change from this one, whoever saw it.
   */
  get latest(): JobStatus | undefined {
    return this.last;
  }

  /** Whether this watcher long-polls (false after falling back, or when turned off). */
  get longPolling(): boolean {
    return this.longPoll;
  }

  async next(): Promise<JobStatus> {
    this.last = await this.read();
    return this.last;
  }

  private async read(): Promise<JobStatus> {
    const first = !this.started;
    this.started = true;
    if (this.longPoll) {
      try {
        const waitMs = first ? 0 : (this.o.waitMs ?? DEFAULT_LONG_POLL_WAIT_MS);
        const query: Record<string, string> = { waitMs: String(waitMs) };
        if (this.etag && !first) query.since = this.etag;
        const r = await this.client.call(watchRoutes.watch, { jobId: this.jobId }, { query, signal: this.o.signal });
        this.etag = r.etag;
        return r.status;
      } catch (err) {
        if (!(err instanceof CoordinatorError && err.status === 404 && err.code === 'NOT_FOUND')) throw err;
        this.longPoll = false;
        this.o.onFallback?.(`the coordinator has no long-poll route (${err.message}): reading the job status every ${this.o.pollMs} ms`);
        return this.client.status(this.jobId);
      }
    }
    if (!first) await pause(this.o.pollMs, this.o.signal);
    this.o.signal?.throwIfAborted();
    return this.client.status(this.jobId);
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}
