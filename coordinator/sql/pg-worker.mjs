// The PostgreSQL side of coordinator/sql/pg-db.ts: runs in a worker thread so the coordinator's
// store can stay synchronous (the main thread blocks on Atomics.wait until this thread answers).
// Plain JavaScript: a worker started under tsx or vitest need not inherit a TypeScript loader.
import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';

const { port, flag } = workerData;
const signal = new Int32Array(flag);
/** handle → pg.Client; one process may hold several stores (tests reopen them). */
const clients = new Map();
let nextHandle = 1;

// int8 (COUNT(*), BIGINT columns: millisecond timestamps) as numbers, as SQLite returns them.
const types = { getTypeParser: (oid, format) => (oid === 20 ? (v) => Number(v) : pg.types.getTypeParser(oid, format)) };

/** A driver or server error as plain data (structured clone drops an Error's own properties). */
function failure(err) {
  return { ok: false, message: err?.message ?? String(err), code: err?.code ?? null, errno: err?.errno ?? null };
}

async function handle(msg) {
  if (msg.op === 'connect') {
    const client = new pg.Client({
      connectionString: msg.url,
      types,
      connectionTimeoutMillis: msg.connectTimeoutMs,
      query_timeout: msg.queryTimeoutMs,
      keepAlive: true,
      application_name: 'fedmark coordinator',
    });
    // A server-side disconnect between queries surfaces on the next query; do not crash the thread.
    client.on('error', () => {});
    await client.connect();
    const h = nextHandle++;
    clients.set(h, client);
    return { ok: true, handle: h };
  }
  const client = clients.get(msg.handle);
  if (!client) return { ok: false, message: 'the store connection is closed', code: 'CLOSED', errno: null };
  if (msg.op === 'close') {
    clients.delete(msg.handle);
    await client.end().catch(() => {});
    return { ok: true };
  }
  const params = msg.params.map((v) => (v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
  const res = await client.query({ text: msg.sql, values: params });
  return { ok: true, rows: res.rows ?? [], rowCount: res.rowCount ?? 0 };
}

// One request at a time: the main thread is blocked until the answer is posted.
parentPort.on('message', () => {});
port.on('message', (msg) => {
  handle(msg)
    .catch(failure)
    .then((reply) => {
      port.postMessage({ id: msg.id, ...reply });
      Atomics.store(signal, 0, 1);
      Atomics.notify(signal, 0);
    });
});
