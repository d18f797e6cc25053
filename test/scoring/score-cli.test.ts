import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { PartnerLedger } from '../../partner/ledger.ts';
import { keyId } from '../../src/crypto/identity.ts';
import { LedgerWriter } from '../../src/privacy/ledger/writer.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { signerFromSecretKey, toBase64 } from '../../src/privacy/ledger/signing.ts';
import { canonicalJson } from '../../src/privacy/ledger/canonical.ts';
import { checkScoringEntries } from '../../src/privacy/ledger/audit/scoring-checks.ts';
import { verifyLedger } from '../../src/privacy/ledger/verify.ts';
import { subjectStatement } from '../../src/privacy/ledger/subject-rights.ts';
import { prepareScoring, readWithdrawn } from '../../cli/score-command.ts';
import { rejection } from '../helpers/errors.ts';
import { hashParameters } from '../../src/util/hash.ts';
import { deterministicIdentity } from '../helpers/identities.ts';
import { fedmark, fixtureSchema, makeCustomers, partnerFiles, PURPOSE, saveFixtureModel, SCHEMA_PATH, tempDir, toCsv, partnerArgs } from './helpers.ts';

const schema = await fixtureSchema();
const party = (id: ReturnType<typeof deterministicIdentity>) => ({ name: id.name, keyId: keyId(id.signPublicKey), signPublicKey: toBase64(id.signPublicKey) });

/**
 * A finished job the partner took part in: the coordinator's job ledger (manifest, the partner's
 * attested acceptance, the final model) and the partner's own ledger (acceptance, final model).
 */
function finishedJob(dir: string, p: ReturnType<typeof partnerFiles>, modelHash: string): string {
  const owner = deterministicIdentity('analytics');
  const coordinator = deterministicIdentity('coordinator');
  const jobLedger = join(dir, 'job.ledger.jsonl');
  const job = LedgerWriter.open(jobLedger, signerFromSecretKey(coordinator.signSecretKey), { sync: false });
  const manifest = LedgerWriter.buildNext(
    0,
    '0'.repeat(64),
    'job.manifest',
    {
      jobId: 'churn-2026q1',
      owner: party(owner),
      coordinator: party(coordinator),
      partners: [party(p.identity)],
      purpose: PURPOSE,
      columns: ['tenure', 'monthly'],
      rounds: 1,
      dp: null,
    },
    signerFromSecretKey(owner.signSecretKey),
  );
  job.appendSigned(manifest, owner.signPublicKey);
  const local = PartnerLedger.open(p.ledger, p.identity, p.stateDir);
  const policy = { maxEpsilon: 2, maxDelta: 1e-5, allowedPurposes: [PURPOSE] };
  job.append('partner.acceptance', local.acceptance('churn-2026q1', job.lastHash, policy));
  local.finalModel('churn-2026q1', modelHash, 0, null);
  job.append('model.final', { jobId: 'churn-2026q1', modelHash, rounds: 0, partners: [] });
  local.close();
  job.close();
  return jobLedger;
}

describe('fedmark score from the command line: ledger, audit, data-subject statement', () => {
  it('records the run in the partner ledger, passes the audit, and answers data-subject requests', async () => {
    const dir = tempDir();
    const customers = makeCustomers(400, 21);
    writeFileSync(join(dir, 'customers.csv'), toCsv(customers, { label: false }));
    const params = await saveFixtureModel(join(dir, 'model'), schema);
    const p = partnerFiles(dir);
    const jobLedger = finishedJob(dir, p, hashParameters(params));
    const consenting = customers.filter((c) => c.consent === 'yes');
    const withdrawnIds = [consenting[0].customer, consenting[5].customer];
    writeFileSync(join(dir, 'withdrawn.txt'), withdrawnIds.join('\n') + '\n');
    // Withdrawals are recorded (salted) in the partner's ledger before the run, as the node does.
    const l = PartnerLedger.open(p.ledger, p.identity, p.stateDir);
    l.consentWithdrawal(withdrawnIds, withdrawnIds.length);
    l.close();

    const r = fedmark(
      'score',
      '--model',
      join(dir, 'model'),
      '--data',
      join(dir, 'customers.csv'),
      '--schema',
      SCHEMA_PATH,
      '--out',
      join(dir, 'scores.csv'),
      ...partnerArgs(p),
      '--withdrawn',
      join(dir, 'withdrawn.txt'),
      '--json',
      '--report',
      join(dir, 'report'),
    );
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.rows).toMatchObject({ read: 400, scored: consenting.length - 2, excludedNoConsent: 400 - consenting.length, excludedWithdrawn: 2 });
    const scoredIds = readFileSync(join(dir, 'scores.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',')[0]);
    expect(scoredIds).not.toContain(withdrawnIds[0]);
    expect(scoredIds.length).toBe(consenting.length - 2);
    expect(existsSync(join(dir, 'report', 'campaign.html'))).toBe(true);

    // The ledger entry: counts, model, purpose, who, output hash; its sidecar pins the ids scored.
    const entries = readLedger(p.ledger).entries;
    const run = entries.find((e) => e.type === 'model.scoring')! as { author: string; payload: { runId: string } };
    expect(run.author).toBe(keyId(p.identity.signPublicKey));
    expect(run.payload).toMatchObject({
      mode: 'batch',
      modelHash: hashParameters(params),
      modelJobId: 'churn-2026q1',
      purpose: PURPOSE,
      rowsRead: 400,
      rowsScored: consenting.length - 2,
      rowsExcludedNoConsent: 400 - consenting.length,
      rowsExcludedWithdrawn: 2,
      outputSha256: summary.output.sha256,
      sidecar: { count: consenting.length - 2 },
    });

    // With the sidecars the audit also checks that the withdrawn customers' salted ids are not in the run's sidecar.
    const audit = fedmark('audit', jobLedger, '--partner', p.ledger, '--sidecars', join(p.stateDir, 'subject-ids'), '--json');
    const result = JSON.parse(audit.stdout);
    expect(
      result.findings.filter((f: { severity: string }) => f.severity === 'error'),
      audit.stdout,
    ).toEqual([]);
    expect(audit.status).toBe(0);
    const v = verifyLedger(readLedger(p.ledger));
    expect(checkScoringEntries(p.ledger, v.entries, v.validPayloadSeqs, { sidecarDir: join(p.stateDir, 'subject-ids') })).toEqual([]);

    const cli = JSON.parse(fedmark('subject', '--ledger', p.ledger, '--state-dir', p.stateDir, '--customer-id', scoredIds[3], '--json').stdout);
    expect(cli.scorings).toHaveLength(1);
    expect(cli.scorings[0]).toMatchObject({ modelHash: hashParameters(params), purpose: PURPOSE, mode: 'batch', sidecarVerified: true });
    const salt = readFileSync(join(p.stateDir, 'subject-salt'));
    const statement = (id: string) => subjectStatement(p.ledger, join(p.stateDir, 'subject-ids'), id, salt);
    expect(statement(withdrawnIds[0]).scorings).toEqual([]);
    expect(statement(withdrawnIds[0]).consentWithdrawn).not.toBeNull();
    expect(statement(customers.find((c) => c.consent !== 'yes')!.customer).scorings).toEqual([]);
    for (const id of scoredIds.slice(0, 20)) expect(statement(id).scorings.map((x) => x.runId)).toEqual([run.payload.runId]);

    // Tampering with the recorded counts breaks the signature: the audit fails.
    const lines = readFileSync(p.ledger, 'utf8').trim().split('\n');
    const at = lines.findIndex((x) => x.includes('"model.scoring"'));
    const e = JSON.parse(lines[at]);
    e.payload.rowsScored -= 1;
    e.payload.rowsExcludedNoConsent += 1;
    lines[at] = canonicalJson(e);
    writeFileSync(p.ledger, lines.join('\n') + '\n');
    const bad = fedmark('audit', jobLedger, '--partner', p.ledger, '--json');
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout).findings.map((f: { code: string }) => f.code)).toContain('BAD_SIGNATURE');
  });

  it('refuses a purpose the model was not trained for, one the policy does not allow, and a missing withdrawal file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'c.csv'), toCsv(makeCustomers(20, 2)));
    await saveFixtureModel(join(dir, 'model'), schema);
    const p = partnerFiles(dir, 'telco-south', { purposes: [PURPOSE, 'upsell'] });
    const args = (purpose: string, ...more: string[]) => [
      'score',
      '--model',
      join(dir, 'model'),
      '--data',
      join(dir, 'c.csv'),
      '--schema',
      SCHEMA_PATH,
      '--out',
      join(dir, 'o.csv'),
      ...partnerArgs(p, purpose),
      ...more,
    ];
    const r = fedmark(...args('upsell'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/trained for purpose "churn-retention"; scoring it for "upsell"/);
    await saveFixtureModel(join(dir, 'model-x'), schema, { kind: 'logistic' }, { metadata: { purpose: 'credit-risk' } });
    const setup = (model: string, purpose: string, extraColumns: string[] = []) =>
      prepareScoring({ model, schema: SCHEMA_PATH, purpose, policy: p.policyFile, identity: p.identityFile, stateDir: p.stateDir, extraColumns });
    let err = await rejection(setup(join(dir, 'model-x'), 'credit-risk'));
    expect(err.code).toBe('SCORING_PURPOSE_NOT_ALLOWED');
    expect(err.message).toMatch(/policy does not allow purpose "credit-risk"/);
    err = await rejection(setup(join(dir, 'model'), PURPOSE, ['age']));
    expect(err.code).toBe('SCORING_COLUMNS_NOT_ALLOWED');
    err = await rejection(Promise.resolve().then(() => readWithdrawn(join(dir, 'nope.txt'))));
    expect(err.code).toBe('WITHDRAWN_FILE_MISSING');
    await saveFixtureModel(join(dir, 'model-y'), schema, { kind: 'logistic' }, { metadata: { purpose: undefined } });
    err = await rejection(setup(join(dir, 'model-y'), PURPOSE));
    expect(err.code).toBe('MODEL_PURPOSE_UNKNOWN');
    expect(existsSync(join(dir, 'o.csv'))).toBe(false);
  });

  it("the audit flags scoring for a purpose the partner's acceptance did not allow, and scoring a withdrawn customer", async () => {
    const dir = tempDir();
    const params = await saveFixtureModel(join(dir, 'model'), schema);
    const p = partnerFiles(dir, 'telco-east');
    const jobLedger = finishedJob(dir, p, hashParameters(params));
    const l = PartnerLedger.open(p.ledger, p.identity, p.stateDir);
    l.consentWithdrawal(['C-000001'], 1);
    const { SidecarBuilder } = await import('../../src/scoring/sidecar-builder.ts');
    const sc = new SidecarBuilder(l.sidecarDirectory, 'score-manual-1');
    for (const id of ['C-000001', 'C-000002']) sc.add(l.idHash(id));
    const later = new Date(Date.now() + 1000).toISOString();
    l.modelScoring({
      runId: 'score-manual-1',
      mode: 'batch',
      modelHash: hashParameters(params),
      modelKind: 'logistic',
      schemaHash: 'a'.repeat(64),
      purpose: 'upsell',
      operator: 'test',
      startedAt: later,
      finishedAt: later,
      rowsRead: 2,
      rowsScored: 2,
      rowsExcludedNoConsent: 0,
      rowsExcludedWithdrawn: 0,
      rowsRejected: 0,
      outputSha256: 'b'.repeat(64),
      sidecar: sc.finish(),
    });
    l.close();
    const v = verifyLedger(readLedger(p.ledger));
    const codes = checkScoringEntries(p.ledger, v.entries, v.validPayloadSeqs, { sidecarDir: l.sidecarDirectory }).map((f) => f.code);
    expect(codes).toContain('SCORING_POLICY_PURPOSE');
    expect(codes).toContain('SCORED_AFTER_WITHDRAWAL');
    expect(codes).toContain('SCORING_RECORDED_BEFORE_FINISH');

    // From the command line: --sidecars gives the audit the partner's sidecar directory.
    const sidecarDir = join(p.stateDir, 'subject-ids');
    const withSidecars = fedmark('audit', jobLedger, '--partner', p.ledger, '--sidecars', sidecarDir, '--json');
    expect(withSidecars.status, withSidecars.stderr).toBe(1);
    const found = JSON.parse(withSidecars.stdout).findings as { code: string; severity: string; message: string }[];
    expect(found.find((f) => f.code === 'SCORED_AFTER_WITHDRAWAL')).toMatchObject({
      severity: 'error',
      message: expect.stringMatching(/score-manual-1 .*scored 1 customer\(s\) whose consent withdrawal had already taken effect/),
    });
    // Without it the audit cannot look into the sidecar, so that finding is absent (the others stay).
    const without = JSON.parse(fedmark('audit', jobLedger, '--partner', p.ledger, '--json').stdout).findings as { code: string }[];
    expect(without.map((f) => f.code)).not.toContain('SCORED_AFTER_WITHDRAWAL');
    expect(without.map((f) => f.code)).toContain('SCORING_POLICY_PURPOSE');
    // A sidecar file altered after the run is caught, not trusted.
    const file = join(
      sidecarDir,
      readdirSync(sidecarDir).find((f) => f.includes('score-manual-1'))!,
    );
    writeFileSync(file, Buffer.alloc(statSync(file).size));
    const tampered = JSON.parse(fedmark('audit', jobLedger, '--partner', p.ledger, '--sidecars', sidecarDir, '--json').stdout).findings as { code: string }[];
    expect(tampered.map((f) => f.code)).toContain('SIDECAR_TAMPERED');
    // One directory per partner ledger, and it must exist.
    const bad = fedmark('audit', jobLedger, '--partner', p.ledger, '--sidecars', sidecarDir, join(dir, 'nope'));
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--sidecars names 2 directories for 1 --partner ledger/);
    expect(fedmark('audit', jobLedger, '--partner', p.ledger, '--sidecars', join(dir, 'nope')).stderr).toMatch(/--sidecars .*nope: not a directory/);
  });
});
