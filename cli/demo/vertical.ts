/**
 * `fedmark demo --vertical`: the bundled bank-marketing columns split between a bank (the label and
 * its banking fields) and a telco-like party (contact and campaign fields) with overlapping but
 * different customer sets (made-up ids, written differently by each party), then PSI and vertical
 * SecureBoost with label DP, every party its own process over HTTP on 127.0.0.1 — the same commands a
 * deployment runs (`fedmark psi`, `fedmark vertical`). Prints the joint hold-out AUC against the bank
 * alone and a pooled non-private model on the same customers and hold-out.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { generateIdentity, publicIdentity, writeIdentityFile } from '../../src/crypto/identity.ts';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { FedmarkError } from '../../src/errors.ts';
import { createRng, permutation } from '../../src/util/rng.ts';
import { BANK_COLUMNS, TELCO_COLUMNS } from '../../src/vertical/bank-split.ts';
import { plainGbdtAuc } from '../../src/vertical/baselines.ts';
import { loadAlignedRows, loadVerticalPartySchema, readAlignment } from '../../src/vertical/party-data.ts';
import { concatColumns, concatLayouts } from '../../src/vertical/secureboost/layout.ts';
import { alignedSplit } from '../../src/vertical/secureboost/rows.ts';
import { DEFAULT_TEST_FRACTION } from '../../src/vertical/secureboost/params.ts';
import { spawnNode, startCoordinator, waitExit } from './processes.ts';

export interface VerticalDemoOptions {
  rows: number;
  trees: number;
  depth: number;
  epsilon: number | null;
  seed: number;
  out?: string;
}

export interface VerticalDemoSummary {
  customers: { bank: number; telco: number; aligned: number; expectedAligned: number };
  auc: { joint: number; bankAlone: number; pooledNonPrivate: number };
  labelDp: { epsilon: number; delta: number } | null;
  holdoutRows: number;
  out: string;
  wallSeconds: { psi: number; secureboost: number };
}

const PARTIES = ['bank', 'telco'] as const;

/** The last JSON line a node printed (its result), from its log. */
function resultOf<T>(logFile: string): T {
  const line = readFileSync(logFile, 'utf8')
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"jobId"'));
  if (!line) throw new FedmarkError('DEMO_NODE', `no result in ${logFile}`);
  return JSON.parse(line) as T;
}

async function runAll(children: ReturnType<typeof spawnNode>[], what: string, logs: string[], timeoutMs: number): Promise<void> {
  const codes = await Promise.all(children.map((c) => waitExit(c, timeoutMs)));
  codes.forEach((code, i) => {
    if (code !== 0) throw new FedmarkError('DEMO_NODE', `${what}: a process exited with code ${code}; see ${logs[i]}`);
  });
}

export async function runVerticalDemo(o: VerticalDemoOptions, say: (line: string) => void): Promise<VerticalDemoSummary> {
  if (!(Number.isInteger(o.rows) && o.rows >= 200)) throw new FedmarkError('DEMO_ROWS', '--vertical-rows must be an integer of at least 200');
  const out = resolve(o.out ?? join(tmpdir(), `fedmark-vertical-demo-${Date.now()}`));
  for (const sub of ['keys', 'logs', 'bank', 'telco']) mkdirSync(join(out, sub), { recursive: true });
  // Stage 1: two customer files. Of `rows` customers drawn from the bundled file, the bank has the
  // first 85% and the telco the last 85% (70% shared), each in its own order; the telco writes the
  // e-mail addresses in capitals with spaces around them, so the PSI has normalisation work too.
  const raw = readFileSync(BUNDLED_DATASETS['bank-marketing'].csv, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l !== '');
  const header = raw[0].split(';').map((h) => h.replace(/"/g, ''));
  const total = Math.min(o.rows, raw.length - 1);
  const pick = Array.from(permutation(raw.length - 1, createRng(o.seed)).subarray(0, total));
  const k = Math.round(total * 0.85);
  const rowsOf = { bank: pick.slice(0, k), telco: pick.slice(total - k).reverse() };
  const email = (r: number) => `customer${r}@example.test`;
  const fields = (r: number) => raw[r + 1].split(';');
  const full = JSON.parse(readFileSync(BUNDLED_DATASETS['bank-marketing'].schema, 'utf8')) as { columns: { name: string }[] };
  const cols = { bank: [...BANK_COLUMNS, 'y'], telco: TELCO_COLUMNS };
  for (const p of PARTIES) {
    const id = (r: number) => (p === 'telco' ? `" ${email(r).toUpperCase()} "` : email(r));
    writeFileSync(
      join(out, p, 'data.csv'),
      `email,${cols[p].join(',')}\n${rowsOf[p].map((r) => [id(r), ...cols[p].map((c) => fields(r)[header.indexOf(c)])].join(',')).join('\n')}\n`,
    );
    writeFileSync(
      join(out, p, 'schema.json'),
      JSON.stringify(
        { name: `${p}-side`, delimiter: ',', columns: [{ name: 'email', role: 'id' }, ...full.columns.filter((c) => cols[p].includes(c.name))] },
        null,
        2,
      ),
    );
    const identity = generateIdentity(p);
    await writeIdentityFile(join(out, 'keys', `${p}.json`), identity, { force: true });
    writeFileSync(join(out, 'keys', `${p}.pub.json`), JSON.stringify(publicIdentity(identity)));
  }
  const ownerIdentity = generateIdentity('data-scientist');
  await writeIdentityFile(join(out, 'keys', 'owner.json'), ownerIdentity, { force: true });
  // Every party works only for this owner (as fedmark partner requires a pinned or trusted owner).
  const ownerPin = ['--owner-key-id', publicIdentity(ownerIdentity).keyId];
  if (o.epsilon !== null) {
    writeFileSync(
      join(out, 'bank', 'policy.json'),
      JSON.stringify({
        partner: 'bank',
        datasetId: 'bank-customers',
        maxEpsilonPerJob: o.epsilon,
        lifetimeEpsilon: 10 * o.epsilon,
        maxDelta: 1e-5,
        allowedColumns: [],
        allowedPurposes: ['propensity-model'],
      }),
    );
  }
  const expectedAligned = 2 * k - total;

  const { url, child: coordinator } = await startCoordinator(join(out, 'coordinator'), join(out, 'logs', 'coordinator.log'));
  try {
    // Stage 2: PSI, every party and the owner its own process.
    const t0 = performance.now();
    const psiJob = `align-${Date.now().toString(36)}`;
    const psiLogs = [...PARTIES.map((p) => join(out, 'logs', `${p}.psi.log`)), join(out, 'logs', 'owner.psi.log')];
    say(`[fedmark] PSI ${psiJob}: bank ${rowsOf.bank.length} customers, telco ${rowsOf.telco.length}`);
    const psi = [
      ...PARTIES.map((p, i) =>
        spawnNode(
          [
            'psi',
            'party',
            '--coordinator',
            url,
            '--job',
            psiJob,
            '--identity',
            join(out, 'keys', `${p}.json`),
            '--ids',
            join(out, p, 'data.csv'),
            '--id-column',
            'email',
            '--state-dir',
            join(out, p, 'state'),
            '--out',
            join(out, p, 'alignment.csv'),
            '--poll-ms',
            '100',
            ...ownerPin,
          ],
          psiLogs[i],
        ),
      ),
      spawnNode(
        [
          'psi',
          'run',
          '--coordinator',
          url,
          '--identity',
          join(out, 'keys', 'owner.json'),
          '--job',
          psiJob,
          '--party',
          ...PARTIES.map((p) => join(out, 'keys', `${p}.pub.json`)),
          '--id-column',
          'email',
          '--max-set-size',
          String(total),
          '--poll-ms',
          '100',
        ],
        psiLogs[2],
      ),
    ];
    await runAll(psi, 'PSI', psiLogs, 30 * 60_000);
    const alignment = readAlignment(join(out, 'bank', 'alignment.csv'));
    const psiSeconds = (performance.now() - t0) / 1000;
    say(`[fedmark] PSI done in ${psiSeconds.toFixed(1)} s: ${alignment.size} customers in common (order ${alignment.orderDigest.slice(0, 12)}…)`);

    // Stage 3: vertical SecureBoost, label DP charged to the bank's budget.
    const t1 = performance.now();
    const job = `vsb-${Date.now().toString(36)}`;
    const vLogs = [...PARTIES.map((p) => join(out, 'logs', `${p}.vertical.log`)), join(out, 'logs', 'owner.vertical.log')];
    const settings = ['--trees', String(o.trees), '--depth', String(o.depth), '--bins', '16', '--learning-rate', '0.3', '--seed', String(o.seed)];
    const dp = o.epsilon === null ? [] : ['--epsilon', String(o.epsilon)];
    const vertical = [
      ...PARTIES.map((p, i) =>
        spawnNode(
          [
            'vertical',
            'party',
            '--coordinator',
            url,
            '--job',
            job,
            '--identity',
            join(out, 'keys', `${p}.json`),
            '--data',
            join(out, p, 'data.csv'),
            '--schema',
            join(out, p, 'schema.json'),
            '--alignment',
            join(out, p, 'alignment.csv'),
            '--state-dir',
            join(out, p, 'state'),
            '--poll-ms',
            '100',
            ...ownerPin,
            ...(p === 'bank' && o.epsilon !== null ? ['--policy', join(out, 'bank', 'policy.json')] : []),
          ],
          vLogs[i],
        ),
      ),
      spawnNode(
        [
          'vertical',
          'train',
          '--coordinator',
          url,
          '--identity',
          join(out, 'keys', 'owner.json'),
          '--job',
          job,
          '--label',
          join(out, 'keys', 'bank.pub.json'),
          '--label-schema',
          join(out, 'bank', 'schema.json'),
          '--features',
          join(out, 'keys', 'telco.pub.json'),
          '--features-schema',
          join(out, 'telco', 'schema.json'),
          '--psi-job',
          alignment.psiJobId,
          '--order-digest',
          alignment.orderDigest,
          '--aligned',
          String(alignment.size),
          ...settings,
          ...dp,
          '--poll-ms',
          '100',
        ],
        vLogs[2],
      ),
    ];
    await runAll(vertical, 'vertical SecureBoost', vLogs, 60 * 60_000);
    const sbSeconds = (performance.now() - t1) / 1000;
    const bank = resultOf<{ holdout: { rows: number; auc: number } }>(vLogs[0]);

    // Stage 4: the references, on the same aligned customers and hold-out (what no party may build: pooled).
    const rows = await Promise.all(
      PARTIES.map(async (p) =>
        loadAlignedRows(join(out, p, 'data.csv'), loadVerticalPartySchema(join(out, p, 'schema.json')), readAlignment(join(out, p, 'alignment.csv'))),
      ),
    );
    const y = rows[0].y!;
    // The owner's job leaves testFraction at its default: the same hold-out as every party's.
    const split = alignedSplit(alignment.size, DEFAULT_TEST_FRACTION, o.seed);
    const base = { y, split, trees: o.trees, depth: o.depth, learningRate: 0.3, bins: 16 };
    const bankAlone = plainGbdtAuc({ ...base, layout: rows[0].layout, X: rows[0].X });
    const pooledNonPrivate = plainGbdtAuc({
      ...base,
      layout: concatLayouts(rows.map((r) => r.layout)),
      X: concatColumns(
        rows.map((r) => ({ X: r.X, d: r.layout.d })),
        alignment.size,
      ),
    });
    return {
      customers: { bank: rowsOf.bank.length, telco: rowsOf.telco.length, aligned: alignment.size, expectedAligned },
      auc: { joint: bank.holdout.auc, bankAlone, pooledNonPrivate },
      labelDp: o.epsilon === null ? null : { epsilon: o.epsilon, delta: 1e-5 },
      holdoutRows: bank.holdout.rows,
      out,
      wallSeconds: { psi: psiSeconds, secureboost: sbSeconds },
    };
  } finally {
    if (coordinator.exitCode === null) coordinator.kill('SIGTERM');
    await waitExit(coordinator, 10_000);
  }
}

export function printVerticalTable(s: VerticalDemoSummary, say: (line: string) => void): void {
  say('');
  say(
    `customers: bank ${s.customers.bank}, telco ${s.customers.telco}, aligned by PSI ${s.customers.aligned} (plaintext intersection ${s.customers.expectedAligned})`,
  );
  say(`hold-out AUC on ${s.holdoutRows} shared customers:`);
  say(`  joint model (vertical SecureBoost${s.labelDp ? `, label DP ε=${s.labelDp.epsilon}` : ', no DP'})  ${s.auc.joint.toFixed(4)}`);
  say(`  bank alone (non-private)                     ${s.auc.bankAlone.toFixed(4)}`);
  say(`  pooled columns (non-private, not allowed)    ${s.auc.pooledNonPrivate.toFixed(4)}`);
  say(`wall time: PSI ${s.wallSeconds.psi.toFixed(1)} s, SecureBoost ${s.wallSeconds.secureboost.toFixed(1)} s; artifacts in ${s.out}`);
}
