import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildCoordinator } from '../../coordinator/server.ts';

/**
 * Request logging: by default an info-level coordinator log holds refusals, one line each, and no
 * line per successful poll (a long job wrote two info lines per request before); `full` restores
 * fastify's "incoming request" / "request completed" pair.
 */

let dir: string | undefined;
let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  app = dir = undefined;
});

async function logOf(level: string, requestLogging?: 'quiet' | 'full'): Promise<Array<Record<string, unknown>>> {
  const lines: string[] = [];
  dir = mkdtempSync(join(tmpdir(), 'fedmark-reqlog-'));
  const logger = pino({ level }, { write: (l: string) => void lines.push(l) });
  ({ app } = await buildCoordinator({ dataDir: dir, logger, ledgerSync: false, requestLogging }));
  for (let i = 0; i < 3; i++) expect((await app.inject({ method: 'GET', url: '/v1/identity' })).statusCode).toBe(200);
  // Unsigned: refused before any job is looked up.
  expect((await app.inject({ method: 'GET', url: '/v1/jobs/some-job' })).statusCode).toBe(401);
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => typeof l.msg === 'string' && /request/.test(l.msg));
}

describe('coordinator request logging', () => {
  it('by default logs no line per successful request at info, and one line per refusal', async () => {
    const lines = await logOf('info');
    expect(lines.map((l) => l.msg)).toEqual(['request refused']);
    expect(lines[0]).toMatchObject({ method: 'GET', url: '/v1/jobs/some-job', statusCode: 401, level: 30 });
  });

  it('at debug, logs every request on one line', async () => {
    const lines = await logOf('debug');
    expect(lines.map((l) => l.msg)).toEqual(['request', 'request', 'request', 'request refused']);
  });

  it("'full' logs fastify's two lines per request at info", async () => {
    const lines = await logOf('info', 'full');
    expect(lines.filter((l) => l.msg === 'incoming request')).toHaveLength(4);
    expect(lines.filter((l) => l.msg === 'request completed')).toHaveLength(4);
    expect(lines.some((l) => l.msg === 'request refused')).toBe(false);
  });
});
