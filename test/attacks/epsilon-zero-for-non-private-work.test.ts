/**
 * Issue 11 item 11 — ε = 0 for non-private work. A job without differential privacy releases its
 * updates exactly: its privacy loss is unbounded. Every place a reviewer or a customer reads it —
 * `fedmark audit`, the compliance report, the model card, `fedmark subject` — must say "not
 * differentially private (ε = ∞)", never ε = 0 (which reads as "perfectly private"), and the
 * partner's own ledger must record the rounds its data took part in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, jobLedgerPath, readLedgerLines, runCli, startOwner, startPartner, startWorld, writePolicy, type AttackWorld } from './harness.ts';

const NOT_DP = /not differentially private/i;

describe('attack: ε = 0 for non-private work', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'nondp' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('a job without differential privacy is reported as "not differentially private (ε = ∞)" by the audit, the report, the model card and the subject statement, and its rounds are in the partner ledger', async () => {
    const R = 2;
    const { manifest, signed } = defineJob(world, { jobId: 'nondp-1', rounds: R, epsilon: null });
    const owner = startOwner(world, signed);
    const nodes = await Promise.all(
      [0, 1].map((i) => startPartner(world, i, { jobId: manifest.jobId, policyFile: writePolicy(world, i, manifest, { allowNonPrivateJobs: true }) })),
    );
    const result = await owner.result;
    expect(result.state).toBe('completed');
    await Promise.all(nodes.map((n) => n.exit()));
    const ledger = jobLedgerPath(world, manifest.jobId);
    const partnerLedgers = nodes.map((n) => n.ledgerPath);

    const audit = await runCli(['audit', ledger, '--partner', ...partnerLedgers]);
    const table = audit.stdout.split('\n').filter((l) => l.startsWith('partner-'));
    const says = (text: string, what: string) => {
      expect.soft(NOT_DP.test(text), `${what} does not say "not differentially private"`).toBe(true);
      expect.soft(text.includes('∞'), `${what} does not show ε = ∞`).toBe(true);
    };
    says(audit.stdout, 'fedmark audit');
    const zero = table.filter((l) => /\s0\.0+\s/.test(l));
    expect.soft(zero, `fedmark audit shows ε = 0 for partners of a non-private job:\n${zero.join('\n')}`).toEqual([]);

    // The compliance report and model card, from the owner's evaluation as `fedmark job run` writes it.
    writeFileSync(join(world.dir, 'manifest.json'), JSON.stringify(manifest));
    const evaluation = {
      roundMetrics: result.roundMetrics.filter((r) => r.metrics).map((r) => ({ round: r.round - 1, auc: r.metrics!.auc, logLoss: r.metrics!.logLoss })),
      finalMetrics: result.finalMetrics,
    };
    writeFileSync(join(world.dir, 'evaluation.json'), JSON.stringify(evaluation));
    const out = join(world.dir, 'report');
    const report = await runCli([
      'report',
      '--manifest',
      join(world.dir, 'manifest.json'),
      '--ledger',
      ledger,
      '--partner',
      ...partnerLedgers,
      '--evaluation',
      join(world.dir, 'evaluation.json'),
      '--out',
      out,
    ]);
    expect(report.code, report.stderr).toBe(0);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const card = readFileSync(join(out, 'model-card.md'), 'utf8');
    const kpi = /id="max-epsilon">([^<]*)</.exec(html)?.[1];
    says(html, 'the report');
    expect.soft(/^0(\.0*)?$/.test(kpi ?? ''), `the report's "Max ε spent" reads ${kpi}`).toBe(false);
    says(card, 'the model card');
    expect.soft(/trained with DP-SGD/.test(card), 'the model card claims DP-SGD for a job without DP').toBe(false);

    // A customer whose row was used asks the partner what was done with it.
    const customer = (await world.partnerData(0)).train.ids![0];
    const subject = await runCli(['subject', '--ledger', nodes[0].ledgerPath, '--state-dir', nodes[0].stateDir, '--customer-id', customer]);
    const subjectJson = await runCli(['subject', '--ledger', nodes[0].ledgerPath, '--state-dir', nodes[0].stateDir, '--customer-id', customer, '--json']);
    const uses = (JSON.parse(subjectJson.stdout) as { uses: { jobId: string; rounds: number }[] }).uses.filter((u) => u.jobId === manifest.jobId);
    says(subject.stdout, `fedmark subject ("${subject.stdout.trim().split('\n').at(-1)}")`);
    expect.soft(/ε ≤ 0(\.0*)?\b/.test(subject.stdout), 'fedmark subject shows ε ≤ 0').toBe(false);
    expect.soft(uses[0]?.rounds ?? 0, 'fedmark subject counts the rounds the record took part in').toBeGreaterThanOrEqual(R);

    // The partner's own ledger records every round its data took part in.
    const rounds = new Set(
      readLedgerLines(nodes[0].ledgerPath)
        .filter((e) => e.payload.jobId === manifest.jobId && typeof e.payload.round === 'number')
        .map((e) => e.payload.round as number),
    );
    const types = readLedgerLines(nodes[0].ledgerPath).map((e) => e.type);
    expect
      .soft([...rounds].sort(), `rounds in the partner's own ledger (entries: ${types.join(', ')})`)
      .toEqual(expect.arrayContaining(Array.from({ length: R }, (_, i) => i + 1)));
  }, 240_000);
});
