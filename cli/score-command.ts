import type { Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import cliProgress from 'cli-progress';
import { readIdentityFile, type Identity } from '../src/crypto/identity.ts';
import { parseBadRowLimit } from '../src/data/bad-rows.ts';
import { loadSchema, type DatasetSchema, type NumericColumn } from '../src/data/schema.ts';
import { FedmarkError } from '../src/errors.ts';
import { schemaHash } from '../src/federation/job-presets.ts';
import { loadPolicy, type PartnerPolicy } from '../src/privacy/policy.ts';
import { PartnerLedger } from '../partner/ledger.ts';
import type { BaselineSpec } from '../src/scoring/baseline.ts';
import { scoreFile } from '../src/scoring/batch.ts';
import { checkPolicyColumns, checkPurpose, loadScoringModel, resolveModelPurpose, type LoadedScoringModel } from '../src/scoring/model.ts';
import { SidecarBuilder } from '../src/scoring/sidecar-builder.ts';
import { formatScoreSummary } from '../src/scoring/summary-text.ts';
import { writeCampaignReport } from '../src/report/campaign-report.ts';
import { readIdList } from './node-commands.ts';

/** What `score` and `serve` both need: the model checked against schema, purpose and policy; the partner's ledger. */
export interface ScoringSetup {
  schema: DatasetSchema;
  policy: PartnerPolicy;
  identity: Identity;
  model: LoadedScoringModel;
  purpose: string;
  ledgerPath: string;
}

export interface ScoringSetupOptions {
  model: string;
  schema: string;
  purpose: string;
  modelPurpose?: string;
  policy: string;
  identity: string;
  stateDir: string;
  baseline?: string;
  extraColumns?: (string | undefined)[];
}

function baselineSpec(value: string | undefined): BaselineSpec {
  if (value === undefined || value === 'midpoint') return { kind: 'midpoint' };
  if (value === 'zero') return { kind: 'zero' };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(value, 'utf8'));
  } catch (err) {
    throw new FedmarkError('BASELINE_INVALID', `--baseline: "midpoint", "zero" or a JSON file of one reference customer; ${value}: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new FedmarkError('BASELINE_INVALID', `--baseline ${value}: expected a JSON object (column → value)`);
  return { kind: 'record', record: Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, String(v)])), source: value };
}

export async function prepareScoring(o: ScoringSetupOptions): Promise<ScoringSetup> {
  const schema = await loadSchema(o.schema);
  const policy = loadPolicy(o.policy);
  const identity = readIdentityFile(o.identity);
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  const model = await loadScoringModel(o.model, schema, { baseline: baselineSpec(o.baseline) });
  model.provenance = resolveModelPurpose(model.provenance, o.modelPurpose);
  checkPurpose(o.purpose, model.provenance, policy.allowedPurposes);
  checkPolicyColumns(schema, o.extraColumns ?? [], policy.allowedColumns);
  return { schema, policy, identity, model, purpose: o.purpose, ledgerPath: join(o.stateDir, `${identity.name}.ledger.jsonl`) };
}

/** The options `score` and `serve` share, read from commander's parsed options. */
export function setupOptions(s: (key: string) => string | undefined, extraColumns: (string | undefined)[] = []): ScoringSetupOptions {
  return {
    model: s('model')!,
    schema: s('schema')!,
    purpose: s('purpose')!,
    modelPurpose: s('modelPurpose'),
    policy: s('policy')!,
    identity: s('identity')!,
    stateDir: s('stateDir')!,
    baseline: s('baseline'),
    extraColumns,
  };
}

export function runId(prefix: string, at: Date): string {
  return `${prefix}-${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

export function operatorName(explicit: string | undefined): string {
  if (explicit !== undefined) {
    if (!explicit.trim() || explicit.length > 200) throw new FedmarkError('CLI_OPTION', '--operator must be 1–200 characters');
    return explicit;
  }
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

const num = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new FedmarkError('CLI_NUMBER', `${flag} must be a number, got "${v}"`);
  return x;
};

/** Unlike a node's list (which may appear later), a named withdrawal file must exist: a typo must not score withdrawn customers. */
export function readWithdrawn(file: string): Set<string> {
  if (!existsSync(file)) throw new FedmarkError('WITHDRAWN_FILE_MISSING', `--withdrawn ${file} does not exist`);
  return readIdList(file);
}

export function registerScoreCommand(program: Command): void {
  program
    .command('score')
    .description(
      "score the partner's customers with a model: probability, decile and reason codes per customer; consent and withdrawals honoured; recorded in the partner's ledger",
    )
    .requiredOption('--model <dir>', 'model directory (from `fedmark job run --out`)')
    .requiredOption('--data <csv>', 'customers to score (the label column may be absent)')
    .requiredOption('--schema <json>', 'the dataset schema the model was trained for')
    .requiredOption('--out <csv>', 'where the scores go (written atomically, mode 0600)')
    .requiredOption('--purpose <text>', "what the scores are for; must be the model's purpose and allowed by the policy")
    .requiredOption('--policy <file>', "the partner's privacy policy")
    .requiredOption('--identity <file>', "the partner node's identity (signs the ledger entry)")
    .requiredOption('--state-dir <dir>', "the partner node's state directory (ledger, id salt, sidecars)")
    .option('--withdrawn <file>', 'customer ids whose consent was withdrawn (one per line): not scored')
    .option('--top-k <n>', 'write only the k highest-ranked customers (the early-warning list), best first')
    .option('--value-column <col>', 'rank by expected value at risk = probability × this column')
    .option('--reasons <n>', 'reason codes per customer', '3')
    .option('--baseline <spec>', 'what reasons are measured against: midpoint, zero, or a JSON file of a reference customer', 'midpoint')
    .option('--strict', 'stop at the first bad row; unknown categories and out-of-range numbers are errors', false)
    .option('--max-bad-rows <limit>', 'without --strict, fail above this many bad rows: a count (250), a share (0.5%) or "all"', '1%')
    .option('--model-purpose <text>', 'purpose the model was trained for, when the model directory does not record it')
    .option('--offer-column <col>', 'price/rate/discount offered: check whether long-tenure customers get worse terms')
    .option('--tenure-column <col>', 'tenure column for the offer check', 'tenure')
    .option('--tenure-new-max <x>', 'tenure at or below this is "new" (default: first third of the declared range)')
    .option('--tenure-long-min <x>', 'tenure at or above this is "long" (default: last third of the declared range)')
    .option('--offer-worse <dir>', 'which offers are worse for the customer: higher (prices) or lower (discounts)', 'higher')
    .option('--operator <name>', 'who runs the scoring (recorded in the ledger; default: the OS user)')
    .option('--summary <file>', 'also write the run summary as JSON')
    .option('--report <dir>', 'also write an offline HTML report of the run (campaign.html)')
    .option('--json', 'print the summary as JSON instead of text', false)
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const s = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
      const offerColumn = s('offerColumn');
      const setup = await prepareScoring(setupOptions(s, [s('valueColumn'), offerColumn, offerColumn ? s('tenureColumn') : undefined]));
      let loyalty;
      if (offerColumn) {
        const tenureName = s('tenureColumn')!;
        const tenure = setup.schema.columns.find((c) => c.name === tenureName);
        if (!tenure || !('type' in tenure) || tenure.type !== 'numeric') {
          throw new FedmarkError('SCORING_UNKNOWN_COLUMN', `--tenure-column "${tenureName}" must be a numeric column of schema "${setup.schema.name}"`);
        }
        const t = tenure as NumericColumn;
        const worse = s('offerWorse');
        if (worse !== 'higher' && worse !== 'lower') throw new FedmarkError('CLI_OPTION', '--offer-worse must be "higher" or "lower"');
        loyalty = {
          offerColumn,
          tenureColumn: tenureName,
          newMax: num('--tenure-new-max', s('tenureNewMax')) ?? t.min + (t.max - t.min) / 3,
          longMin: num('--tenure-long-min', s('tenureLongMin')) ?? t.min + (2 * (t.max - t.min)) / 3,
          worse: worse as 'higher' | 'lower',
        };
      }
      const operator = operatorName(s('operator'));
      const started = new Date();
      const id = runId('score', started);
      const ledger = PartnerLedger.open(setup.ledgerPath, setup.identity, s('stateDir')!);
      const bar = new cliProgress.SingleBar(
        { format: 'scoring [{bar}] {percentage}% | {rows} rows | {eta_formatted} left', stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      let barStarted = false;
      try {
        const sidecar = new SidecarBuilder(ledger.sidecarDirectory, id);
        const summary = await scoreFile({
          dataPath: s('data')!,
          outPath: s('out')!,
          schema: setup.schema,
          model: setup.model,
          reasons: num('--reasons', s('reasons')),
          topK: num('--top-k', s('topK')),
          valueColumn: s('valueColumn'),
          strict: o.strict === true ? true : undefined,
          maxBadRows: parseBadRowLimit(s('maxBadRows')!),
          withdrawn: s('withdrawn') ? readWithdrawn(s('withdrawn')!) : undefined,
          loyalty,
          hashId: (cid) => ledger.idHash(cid),
          sidecar,
          onProgress: (p) => {
            if (!barStarted) {
              bar.start(p.totalBytes, 0, { rows: 0 });
              barStarted = true;
            }
            bar.update(p.bytes, { rows: p.rowsRead.toLocaleString('en-US') });
          },
          beforePublish: (sum) => {
            const info = setup.schema.columns.some((c) => c.role === 'id') ? sidecar.finish() : (sidecar.abort(), undefined);
            ledger.modelScoring({
              runId: id,
              mode: 'batch',
              modelHash: sum.model.hash,
              modelKind: sum.model.kind,
              ...(setup.model.provenance.jobId ? { modelJobId: setup.model.provenance.jobId } : {}),
              schemaHash: schemaHash(setup.schema),
              purpose: setup.purpose,
              operator,
              startedAt: sum.startedAt,
              finishedAt: sum.finishedAt,
              rowsRead: sum.rows.read,
              rowsScored: sum.rows.scored,
              rowsExcludedNoConsent: sum.rows.excludedNoConsent,
              rowsExcludedWithdrawn: sum.rows.excludedWithdrawn,
              rowsRejected: sum.rows.rejected,
              ...(sum.input.sha256 ? { inputSha256: sum.input.sha256 } : {}),
              outputSha256: sum.output.sha256,
              ...(info ? { sidecar: info } : {}),
            });
          },
        });
        if (barStarted) bar.stop();
        barStarted = false;
        const full = { runId: id, purpose: setup.purpose, ledger: setup.ledgerPath, ...summary };
        if (s('summary')) writeFileSync(s('summary')!, JSON.stringify(full, null, 2), { mode: 0o600 });
        if (s('report')) {
          const written = await writeCampaignReport(s('report')!, { scoring: full });
          process.stderr.write(`report: ${written}\n`);
        }
        process.stdout.write(o.json ? `${JSON.stringify(full)}\n` : `${formatScoreSummary(full)}\n`);
      } finally {
        if (barStarted) bar.stop();
        ledger.close();
      }
    });
}
