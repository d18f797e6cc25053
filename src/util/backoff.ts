/**
 * Capped exponential backoff with jitter for retrying a coordinator that is down. Without jitter,
 * every partner that lost the coordinator at the same moment retries at the same moments and the
 * restarted coordinator meets them all at once; "equal jitter" (half fixed, half random, as in the
 * AWS architecture note on backoff) keeps a floor under each wait while spreading the herd.
 */
export interface BackoffOptions {
  /** First wait (default 200 ms). */
  baseMs?: number;
  /** No wait is longer than this (default 15 s). */
  capMs?: number;
  /** Uniform [0, 1) source (tests pass a fixed one). */
  random?: () => number;
}

/** The wait before retry number `attempt` (0-based): min(cap, base·2^attempt), half of it random. */
export function backoffDelay(attempt: number, o: BackoffOptions = {}): number {
  const base = o.baseMs ?? 200;
  const cap = o.capMs ?? 15_000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (o.random ?? Math.random)() * (ceiling / 2);
}
