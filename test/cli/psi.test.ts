import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, keyIdOf, keysAndCoordinator, lastJson, runCliAsync, startParties, stopChildren, type CliProcess } from '../helpers/cli-process.ts';
import { idRulesSchema, normaliseId } from '../../src/vertical/psi/normalise.ts';

describe('fedmark psi from the command line: a coordinator, the owner and two parties, each its own process', () => {
  it('aligns two customer lists (duplicates, case and spacing variants) to the plaintext intersection in one common order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-psi-cli-'));
    const children: CliProcess[] = [];
    try {
      // The bank's and the telco's lists overlap in 40 customers; the telco writes e-mails in other forms and has a duplicate.
      const bank = Array.from({ length: 70 }, (_, i) => `customer${i}@example.com`);
      const telco = [
        ...Array.from({ length: 40 }, (_, i) => `  Customer${i + 30}@Example.COM `),
        'customer31@example.com',
        ...Array.from({ length: 25 }, (_, i) => `other${i}@telco.test`),
      ];
      writeFileSync(join(dir, 'bank.csv'), `email,balance\n${bank.map((e, i) => `${e},${i}`).join('\n')}\n`);
      writeFileSync(join(dir, 'telco.csv'), `plan,email\n${telco.map((e, i) => `p${i},"${e}"`).join('\n')}\n`);
      const url = await keysAndCoordinator(dir, ['bank', 'telco', 'owner'], children);
      const parties = startParties({
        command: ['psi', 'party'],
        url,
        job: 'align-q4',
        dir,
        names: ['bank', 'telco'],
        ownerKeyId: keyIdOf(dir, 'owner'),
        args: (name) => ['--ids', join(dir, `${name}.csv`), '--id-column', 'email'],
        children,
      });
      // Wait for the coordinator to listen, then the owner registers the job and follows it.
      const owner = await runCliAsync([
        'psi',
        'run',
        '--coordinator',
        url,
        '--identity',
        join(dir, 'owner.key.json'),
        '--job',
        'align-q4',
        '--party',
        join(dir, 'bank.pub.json'),
        join(dir, 'telco.pub.json'),
        '--id-column',
        'email',
        '--max-set-size',
        '128',
        '--poll-ms',
        '100',
      ]);
      expect(owner.code, owner.output).toBe(0);
      expect(lastJson(owner.stdout)).toMatchObject({ jobId: 'align-q4', state: 'completed' });
      const codes = await Promise.all(parties.map(exited));
      expect(codes, parties.map((p) => p.output()).join('\n---\n')).toEqual([0, 0]);
      const results = parties.map((p) => lastJson<{ intersection: number; orderDigest: string; out: string }>(p.stdout()));
      expect(results.map((r) => r.intersection)).toEqual([40, 40]);
      expect(results[0].orderDigest).toBe(results[1].orderDigest);

      // Each party's file: its own rows and ids, in the common order; the same customer at the same position.
      const read = (f: string) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .slice(1)
          .map((l) => l.split(','));
      const [b, t] = results.map((r) => read(r.out));
      const rules = idRulesSchema.parse({ kind: 'email' });
      const norm = (ids: string[]) =>
        ids.map((x) => {
          const n = normaliseId(x, rules);
          return n.ok ? n.value : null;
        });
      const bankIds = norm(bank);
      const telcoIds = norm(telco);
      const want = [...new Set(bankIds)].filter((x) => telcoIds.includes(x)).sort();
      expect(want).toHaveLength(40);
      expect([...new Set(b.map((r) => JSON.parse(r[2]) as string))].sort()).toEqual(want);
      for (const [, row, id] of b) expect(bankIds[Number(row)]).toBe(JSON.parse(id));
      for (const [, row, id] of t) expect(telcoIds[Number(row)]).toBe(JSON.parse(id));
      const at = (rows: string[][]) => new Map(rows.map(([pos, , id]) => [id, pos]));
      const tb = at(t);
      for (const [id, pos] of at(b)) expect(tb.get(id)).toBe(pos);
      // The duplicate (customer31 twice at the telco) keeps both its rows at one position.
      expect(t.filter((r) => JSON.parse(r[2]) === 'customer31@example.com').length).toBe(2);
    } finally {
      await stopChildren(children, dir);
    }
  }, 180_000);
});
