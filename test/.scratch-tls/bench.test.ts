import { it } from 'vitest';
import pino from 'pino';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCoordinator } from '../../coordinator/server.ts';
it('bench', async () => {
  const { app } = await buildCoordinator({ dataDir: join(mkdtempSync(join(tmpdir(), 'b-')), 'c'), logger: pino({ level: 'warn' }) });
  await app.ready();
  const cases: [string, any][] = [
    ['health', { method: 'GET', url: '/health' }],
    ['404', { method: 'GET', url: '/nope' }],
    ['unknown job', { method: 'GET', url: '/v1/jobs/abc-def' }],
    ['bad body acceptance', { method: 'POST', url: '/v1/jobs/abc-def/acceptance', headers: { 'content-type': 'application/json' }, payload: '{"accepted":"x"}' }],
    ['bad json', { method: 'POST', url: '/v1/jobs/abc-def/acceptance', headers: { 'content-type': 'application/json' }, payload: '{"accepted":' }],
    ['bad param', { method: 'GET', url: '/v1/jobs/..' }],
    ['create bad', { method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' }, payload: '{"manifest":{}}' }],
  ];
  for (const [name, req] of cases) {
    for (let i = 0; i < 5; i++) await app.inject(req);
    const t = performance.now();
    let r;
    for (let i = 0; i < 50; i++) r = await app.inject(req);
    console.log(name, r.statusCode, ((performance.now() - t) / 50).toFixed(2), 'ms');
  }
  await app.close();
});
