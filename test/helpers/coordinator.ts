import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildCoordinator, REDACT_PATHS } from '../../coordinator/server.ts';
import type { JobEngine } from '../../coordinator/job-engine.ts';
import type { CoordinatorStore } from '../../coordinator/store.ts';
import type { WorkloadRegistry } from '../../src/federation/workload.ts';

export interface TestCoordinator {
  url: string;
  /** Temp directory holding dataDir and the log file. */
  dir: string;
  /** The coordinator's --data-dir (SQLite store and anything else it persists). */
  dataDir: string;
  /** Everything the coordinator logged, one pino JSON line per entry. */
  logPath: string;
  app: FastifyInstance;
  engine: JobEngine;
  store: CoordinatorStore;
  /** Stops the server and closes the store, keeping the files (for tests that inspect them afterwards). */
  stop(): Promise<void>;
  /** stop(), then removes the temp directory (kept when FEDMARK_KEEP_TEST_DIR is set). */
  close(): Promise<void>;
}

/**
 * An in-process coordinator on 127.0.0.1 with an OS-assigned port in a fresh temp directory. The log
 * goes to a file, written synchronously, so a test can read (or scan) everything logged up to now.
 */
export async function startTestCoordinator(
  opts: { logLevel?: pino.Level; tickMs?: number; maxSkewMs?: number; workloads?: WorkloadRegistry } = {},
): Promise<TestCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), 'fedmark-test-coord-'));
  const dataDir = join(dir, 'coordinator');
  const logPath = join(dir, 'coordinator.log');
  const logger = pino({ level: opts.logLevel ?? 'info', redact: REDACT_PATHS }, pino.destination({ dest: logPath, sync: true }));
  const built = await buildCoordinator({ dataDir, logger, tickMs: opts.tickMs ?? 50, maxSkewMs: opts.maxSkewMs, workloads: opts.workloads });
  let url: string;
  try {
    url = await built.app.listen({ host: '127.0.0.1', port: 0 });
  } catch (err) {
    await built.app.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped: Promise<void> | null = null;
  const stop = () => (stopped ??= built.app.close().then(() => undefined));
  return {
    url,
    dir,
    dataDir,
    logPath,
    app: built.app,
    engine: built.engine,
    store: built.store,
    stop,
    async close() {
      await stop();
      if (!process.env.FEDMARK_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
    },
  };
}
