import http from 'node:http';
import { readFileSync } from 'node:fs';
import { loadSchema } from './src/data/schema.ts';
import { loadScoringModel } from './src/scoring/model.ts';
import { buildScoringService } from './src/scoring/serve/app.ts';
import { createServeAuth } from './src/scoring/serve/auth.ts';
import { ScoringSpool } from './src/scoring/serve/spool.ts';
const schema = await loadSchema('data/telco-churn.schema.json');
const model = await loadScoringModel('/tmp/sc/model', schema);
const lines = readFileSync('data/telco-churn.csv', 'utf8').split(/\r?\n/).filter(Boolean);
const head = lines[0].split(',');
const customers = lines.slice(1, 501).map((l) => Object.fromEntries(l.split(',').map((v, i) => [head[i], v]).filter(([k]) => k !== 'Churn')));
for (const mode of (process.argv[2] ?? 'none,spool').split(',')) {
  const spool = ScoringSpool.open('/tmp/sc/spool-' + Date.now(), { windowId: 'w' + Date.now(), modelHash: 'a'.repeat(64), modelKind: 'logistic', modelJobId: null, schemaHash: 'b'.repeat(64), purpose: 'p', operator: 'o' });
  const app = await buildScoringService({ model, schema, purpose: 'churn-model', auth: createServeAuth({ token: 'x'.repeat(20) }), record: mode === 'spool' ? (r) => spool.append(r) : async () => {}, hashId: (id) => id.slice(0, 32).padEnd(32, '0'), withdrawn: () => new Set() });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
  const request = (body: string) => new Promise<number>((resolve, reject) => { const t = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/score', method: 'POST', agent, headers: { authorization: 'Bearer ' + 'x'.repeat(20), 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', () => resolve(Number(process.hrtime.bigint() - t) / 1e6)); });
    req.on('error', reject); req.end(body); });
  const phase = async (n: number) => { const lat: number[] = []; const t0 = performance.now(); await Promise.all(Array.from({ length: 20 }, async (_, c) => { for (let i = 0; i < n; i++) lat.push(await request(JSON.stringify({ customers: [customers[(c * n + i) % 500]] }))); })); return { lat, s: (performance.now() - t0) / 1000 }; };
  await phase(20);
  const { lat, s } = await phase(150);
  lat.sort((a, b) => a - b);
  console.log(mode, 'p50', lat[lat.length >> 1].toFixed(2), 'p99', lat[Math.floor(lat.length * 0.99)].toFixed(2), 'rps', (lat.length / s).toFixed(0));
  await app.close(); agent.destroy();
}
