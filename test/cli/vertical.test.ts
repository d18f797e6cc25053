import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, keyIdOf, keysAndCoordinator, lastJson, runCliAsync, startParties, stopChildren, type CliProcess } from '../helpers/cli-process.ts';
import { readIdentityFile } from '../../src/crypto/identity.ts';
import { BUNDLED_DATASETS, loadBundled } from '../../src/data/bundled.ts';
import { subsetDataset } from '../../src/data/encode.ts';
import { auc } from '../../src/metrics/classification.ts';
import { featureLayout } from '../../src/trees/layout.ts';
import { predictProba } from '../../src/trees/model.ts';
import { BANK_COLUMNS, TELCO_COLUMNS, columnSchema, columnsOf } from '../../src/vertical/bank-split.ts';
import { createRng, permutation } from '../../src/util/rng.ts';
import { pooled, vparams } from '../vertical/secureboost/helpers.ts';

describe('fedmark vertical from the command line: coordinator, owner, a bank and a telco, each its own process', () => {
  it("trains vertical SecureBoost from each party's own CSV, schema and alignment file: the pooled model's hold-out AUC", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-vertical-cli-'));
    const children: CliProcess[] = [];
    try {
      // 600 shared customers; the bank has 60 more, the telco 40 more, and each file is in its own order.
      const raw = readFileSync(BUNDLED_DATASETS['bank-marketing'].csv, 'utf8')
        .split('\n')
        .filter((l) => l !== '');
      const header = raw[0].split(';').map((h) => h.replace(/"/g, ''));
      const pick = Array.from(permutation(raw.length - 1, createRng(5)).subarray(0, 700));
      const shared = pick.slice(0, 600);
      const bankRows = [...shared, ...pick.slice(600, 660)].reverse();
      const telcoRows = [...pick.slice(660, 700), ...shared];
      const fields = (r: number) => raw[r + 1].split(';');
      const csv = (rows: number[], cols: string[]) =>
        `email,${cols.join(',')}\n${rows.map((r) => [`c${r}@example.test`, ...cols.map((c) => fields(r)[header.indexOf(c)])].join(',')).join('\n')}\n`;
      writeFileSync(join(dir, 'bank.csv'), csv(bankRows, [...BANK_COLUMNS, 'y']));
      writeFileSync(join(dir, 'telco.csv'), csv(telcoRows, TELCO_COLUMNS));
      const full = JSON.parse(readFileSync(BUNDLED_DATASETS['bank-marketing'].schema, 'utf8')) as { columns: { name: string }[] };
      const schemaOf = (name: string, keep: string[]) => ({
        name,
        delimiter: ',',
        columns: [{ name: 'email', role: 'id' }, ...full.columns.filter((c) => keep.includes(c.name))],
      });
      writeFileSync(join(dir, 'bank.schema.json'), JSON.stringify(schemaOf('bank', [...BANK_COLUMNS, 'y'])));
      writeFileSync(join(dir, 'telco.schema.json'), JSON.stringify(schemaOf('telco', TELCO_COLUMNS)));
      // The alignment files fedmark psi party writes (test/cli/psi.test.ts runs the PSI itself): common order = shared.
      const order = createHash('sha256').update('vertical-cli').digest('hex');
      const alignment = (rows: number[]) =>
        `# fedmark-psi-alignment/1 job=align-1 intersection=600 order=${order}\nposition,row,id\n${shared.map((r, i) => `${i},${rows.indexOf(r)},"c${r}@example.test"`).join('\n')}\n`;
      writeFileSync(join(dir, 'bank.alignment.csv'), alignment(bankRows));
      writeFileSync(join(dir, 'telco.alignment.csv'), alignment(telcoRows));
      const url = await keysAndCoordinator(dir, ['bank', 'telco', 'owner'], children);
      const ownerKeyId = keyIdOf(dir, 'owner');
      const files = (name: string) => [
        '--data',
        join(dir, `${name}.csv`),
        '--schema',
        join(dir, `${name}.schema.json`),
        '--alignment',
        join(dir, `${name}.alignment.csv`),
      ];
      const names = ['bank', 'telco'];
      const parties = startParties({ command: ['vertical', 'party'], url, job: 'vsb-1', dir, names, ownerKeyId, args: files, children });
      const owner = await runCliAsync([
        'vertical',
        'train',
        '--coordinator',
        url,
        '--identity',
        join(dir, 'owner.key.json'),
        '--job',
        'vsb-1',
        '--label',
        join(dir, 'bank.pub.json'),
        '--label-schema',
        join(dir, 'bank.schema.json'),
        '--features',
        join(dir, 'telco.pub.json'),
        '--features-schema',
        join(dir, 'telco.schema.json'),
        '--psi-job',
        'align-1',
        '--order-digest',
        order,
        '--aligned',
        '600',
        '--trees',
        '2',
        '--depth',
        '3',
        '--bins',
        '16',
        '--edges',
        'schema',
        '--seed',
        '42',
        '--poll-ms',
        '100',
      ]);
      expect(owner.code, owner.output).toBe(0);
      expect(lastJson(owner.stdout)).toMatchObject({ jobId: 'vsb-1', state: 'completed' });
      const codes = await Promise.all(parties.map(exited));
      expect(codes, parties.map((p) => p.output()).join('\n---\n')).toEqual([0, 0]);
      const [bank, telco] = parties.map((p) =>
        lastJson<{ role: string; holdout: { rows: number; auc: number } | null; model: string; modelHash: string }>(p.stdout()),
      );
      expect([bank.role, telco.role]).toEqual(['label', 'features']);
      expect(telco.holdout).toBeNull();
      expect(existsSync(telco.model) && existsSync(bank.model)).toBe(true);

      // The reference: the pooled histogram GBDT on the same customers, built from the bundled file directly.
      const { schema, dataset } = await loadBundled('bank-marketing');
      const ds = subsetDataset(dataset, shared);
      const fl = featureLayout(schema);
      const bs = columnSchema(schema, BANK_COLUMNS, 'bank-side');
      const ts = columnSchema(schema, TELCO_COLUMNS, 'telco-side');
      const s = {
        bank: { layout: featureLayout(bs), X: columnsOf(ds, fl, BANK_COLUMNS), n: ds.n, y: ds.y, schema: bs },
        telco: { layout: featureLayout(ts), X: columnsOf(ds, fl, TELCO_COLUMNS), n: ds.n, schema: ts },
        identities: [readIdentityFile(join(dir, 'bank.key.json')), readIdentityFile(join(dir, 'telco.key.json'))],
      };
      const ref = pooled(s, vparams(s, { trees: 2, depth: 3, bins: 16, edges: 'schema', seed: 42, learningRate: 0.3 }));
      const d = ref.layout.d;
      const Xt = new Float32Array(ref.split.test.length * d);
      ref.split.test.forEach((r, i) => Xt.set(ref.X.subarray(r * d, (r + 1) * d), i * d));
      const want = auc(
        predictProba(ref.run.model, Xt, ref.split.test.length),
        Float32Array.from(ref.split.test, (r) => ds.y[r]),
      );
      expect(bank.holdout!.rows).toBe(ref.split.test.length);
      expect(bank.holdout!.auc).toBeCloseTo(want, 6);

      // Campaign scoring of every aligned customer with the committed model parts: the pooled model's probabilities.
      const scorers = startParties({
        command: ['vertical', 'score-party'],
        url,
        job: 'score-1',
        dir,
        names,
        ownerKeyId,
        args: (name, i) => [...files(name), '--model', [bank, telco][i].model, '--out', join(dir, `${name}.scores.csv`)],
        children,
      });
      const scoring = await runCliAsync([
        'vertical',
        'score',
        '--coordinator',
        url,
        '--identity',
        join(dir, 'owner.key.json'),
        '--job',
        'score-1',
        '--model-job',
        'vsb-1',
        '--label',
        join(dir, 'bank.pub.json'),
        '--features',
        join(dir, 'telco.pub.json'),
        '--model-hash',
        bank.modelHash,
        telco.modelHash,
        '--psi-job',
        'align-1',
        '--order-digest',
        order,
        '--aligned',
        '600',
        '--poll-ms',
        '100',
      ]);
      expect(scoring.code, scoring.output).toBe(0);
      expect(await Promise.all(scorers.map(exited)), scorers.map((p) => p.output()).join('\n---\n')).toEqual([0, 0]);
      expect(lastJson<{ scored: number | null }>(scorers[1].stdout()).scored).toBeNull();
      const scores = readFileSync(join(dir, 'bank.scores.csv'), 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',').map(Number));
      const all = predictProba(ref.run.model, ref.X, 600);
      expect(scores.map(([pos]) => pos)).toEqual(Array.from({ length: 600 }, (_, i) => i));
      scores.forEach(([pos, p]) => expect(Math.abs(p - all[pos])).toBeLessThan(1e-6));
    } finally {
      await stopChildren(children, dir);
    }
  }, 300_000);
});
