import type { Logger } from 'pino';
import { FedmarkError } from '../../src/errors.ts';
import { sleep } from './context.ts';

/** An attempt's answer "not yet", with what the node is waiting for. */
export class NotYet {
  constructor(readonly why: string) {}
}

export interface WaitOptions {
  /** What the node waits for, as a user reads it ("job "x" at http://…"). */
  what: string;
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
  log: Logger;
  /** Human-readable progress (the CLI prints it on the terminal); called at once and then every `reportEveryMs`. */
  onWaiting?: (message: string) => void;
  reportEveryMs?: number;
  /** Error code and advice when the wait times out (default JOIN_TIMEOUT, "raise --join-timeout"). */
  code?: string;
  hint?: string;
}

export const DEFAULT_JOIN_TIMEOUT_MS = 10 * 60_000;

/**
 * Polls `attempt` until it answers something other than `NotYet`, telling the user what it is
 * waiting for and for how long (at once, then every 30 s), and failing with JOIN_TIMEOUT — naming
 * what it waited for and the last reason — after the timeout. Never silent for minutes.
 */
export async function waitUntil<T>(o: WaitOptions, attempt: () => Promise<T | NotYet>): Promise<T> {
  const started = Date.now();
  const timeoutMs = o.timeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS;
  const every = o.reportEveryMs ?? 30_000;
  let lastReport = -Infinity;
  for (;;) {
    o.signal?.throwIfAborted();
    const r = await attempt();
    if (!(r instanceof NotYet)) return r;
    const elapsed = Date.now() - started;
    if (elapsed > timeoutMs) {
      throw new FedmarkError(
        o.code ?? 'JOIN_TIMEOUT',
        `gave up waiting for ${o.what} after ${Math.round(elapsed / 1000)} s: ${r.why} (${o.hint ?? 'raise --join-timeout to wait longer'})`,
      );
    }
    if (elapsed - lastReport >= every) {
      lastReport = elapsed;
      const limit = Number.isFinite(timeoutMs) ? `, giving up after ${Math.round(timeoutMs / 1000)} s` : '';
      const message = `waiting for ${o.what}: ${r.why} (${Math.round(elapsed / 1000)} s elapsed${limit})`;
      o.log.info({ waitingFor: o.what, elapsedMs: elapsed }, message);
      o.onWaiting?.(message);
    }
    await sleep(o.pollMs ?? 200);
  }
}
