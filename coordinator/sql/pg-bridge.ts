import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

/**
 * Synchronous calls into `pg`, which is asynchronous only: one worker thread (pg-worker.mjs) runs
 * the queries and the calling thread blocks on Atomics.wait until it has answered. The coordinator
 * is single-writer and its SQLite store was synchronous already, so blocking the event loop for one
 * round trip to the database is the same trade it made for a local fsync.
 */
export type PgReply =
  | { ok: true; handle?: number; rows?: Record<string, unknown>[]; rowCount?: number }
  | { ok: false; message: string; code: string | null; errno: number | null };

export type PgRequest =
  | { op: 'connect'; url: string; connectTimeoutMs: number; queryTimeoutMs: number }
  | { op: 'query'; handle: number; sql: string; params: unknown[] }
  | { op: 'close'; handle: number };

interface Bridge {
  port: MessagePort;
  flag: Int32Array;
  nextId: number;
}

let bridge: Bridge | null = null;

function start(): Bridge {
  const { port1, port2 } = new MessageChannel();
  const flag = new SharedArrayBuffer(4);
  const worker = new Worker(new URL('./pg-worker.mjs', import.meta.url), { workerData: { port: port2, flag }, transferList: [port2] });
  // The thread must not keep a finished process alive; an open store is closed explicitly.
  worker.unref();
  worker.on('error', () => {
    bridge = null;
  });
  return { port: port1, flag: new Int32Array(flag), nextId: 1 };
}

/** Sends one request and waits at most `waitMs` for its answer; null when none came in time. */
export function pgCall(req: PgRequest, waitMs: number): PgReply | null {
  bridge ??= start();
  const b = bridge;
  const id = b.nextId++;
  Atomics.store(b.flag, 0, 0);
  b.port.postMessage({ id, ...req });
  const deadline = Date.now() + waitMs;
  for (;;) {
    const waited = Atomics.wait(b.flag, 0, 0, Math.max(0, deadline - Date.now()));
    Atomics.store(b.flag, 0, 0);
    // An answer to an earlier call that timed out may come first: drop it.
    for (let m = receiveMessageOnPort(b.port); m; m = receiveMessageOnPort(b.port)) {
      const reply = m.message as PgReply & { id: number };
      if (reply.id === id) return reply;
    }
    if (waited === 'timed-out' || Date.now() >= deadline) return null;
  }
}
