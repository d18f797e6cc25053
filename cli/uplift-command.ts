import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { FedmarkError } from '../src/errors.ts';
import { campaignCounts } from '../src/scoring/campaign.ts';
import { upliftFromCounts, type UpliftEstimate } from '../src/scoring/uplift.ts';
import { writeCampaignReport } from '../src/report/campaign-report.ts';

const list = (v: string): string[] =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const pp = (x: number | null): string => (x === null ? 'n/a' : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)} pp`);
const rate = (x: number | null): string => (x === null ? 'n/a' : `${(x * 100).toFixed(2)} %`);

function line(label: string, x: UpliftEstimate): string {
  const ci = x.interval ? `[${pp(x.interval.lower)}, ${pp(x.interval.upper)}]` : 'n/a';
  return `${label.padEnd(8)} ${String(Math.round(x.treatment.n)).padStart(8)} ${rate(x.treatment.rate).padStart(9)} ${String(Math.round(x.control.n)).padStart(8)} ${rate(x.control.rate).padStart(9)} ${pp(x.uplift).padStart(10)}  ${ci}`;
}

export function registerUpliftCommand(program: Command): void {
  program
    .command('uplift')
    .description('measure a randomised campaign: response rate per arm, uplift with a confidence interval, per score decile and for the top deciles')
    .requiredOption('--scores <csv>', 'scores written by `fedmark score` (id column, probability, decile)')
    .requiredOption('--outcomes <csv>', 'one row per customer in the campaign: id, arm, outcome')
    .option('--id-column <col>', "customer id column (default: the scores file's id column)")
    .option('--arm-column <col>', 'arm column of the outcomes file', 'arm')
    .option('--treatment <values>', 'arm values meaning treated (comma-separated)', 'treatment')
    .option('--control <values>', 'arm values meaning control (comma-separated)', 'control')
    .option('--outcome-column <col>', 'outcome column of the outcomes file', 'outcome')
    .option('--positive <values>', 'outcome values meaning "responded" (comma-separated)', '1,yes,true')
    .option('--negative <values>', 'outcome values meaning "did not respond" (comma-separated)', '0,no,false')
    .option('--confidence <level>', 'confidence level of the intervals', '0.95')
    .option('--report <dir>', 'write an offline HTML report with the uplift chart (campaign.html)')
    .option('--summary <file>', 'also write the result as JSON')
    .option('--json', 'print the result as JSON instead of text', false)
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const confidence = Number(o.confidence);
      if (!(confidence > 0 && confidence < 1)) throw new FedmarkError('CLI_OPTION', `--confidence must be in (0, 1), got ${o.confidence}`);
      const joined = await campaignCounts(String(o.scores), String(o.outcomes), {
        idColumn: typeof o.idColumn === 'string' ? o.idColumn : undefined,
        armColumn: String(o.armColumn),
        outcomeColumn: String(o.outcomeColumn),
        treatment: list(String(o.treatment)),
        control: list(String(o.control)),
        positive: list(String(o.positive)),
        negative: list(String(o.negative)),
      });
      if (joined.matched === 0) throw new FedmarkError('UPLIFT_NO_MATCH', `no outcome row matches a scored customer (id column "${joined.idColumn}")`);
      const result = {
        ...upliftFromCounts(joined.counts, { confidence }),
        scores: String(o.scores),
        outcomes: String(o.outcomes),
        matched: joined.matched,
        unmatched: joined.unmatched,
        invalid: joined.invalid,
        invalidExamples: joined.invalidExamples,
      };
      if (typeof o.summary === 'string') writeFileSync(o.summary, JSON.stringify(result, null, 2));
      if (typeof o.report === 'string') process.stderr.write(`report: ${await writeCampaignReport(o.report, { uplift: result })}\n`);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      const out: string[] = [];
      out.push(
        `fedmark uplift: ${joined.matched} campaign customers matched to scores (${joined.unmatched} outcome rows without a score, ${joined.invalid} with an undeclared arm/outcome)`,
      );
      for (const ex of joined.invalidExamples.slice(0, 5)) out.push(`  ! ${ex}`);
      out.push(`${result.method}, ${Math.round(confidence * 100)} % intervals`);
      out.push(
        `${'deciles'.padEnd(8)} ${'treated'.padStart(8)} ${'rate'.padStart(9)} ${'control'.padStart(8)} ${'rate'.padStart(9)} ${'uplift'.padStart(10)}  interval`,
      );
      out.push(line('all', result.overall));
      for (const d of result.byDecile) out.push(line(String(d.decile), d));
      out.push('top deciles together:');
      for (const c of result.cumulative) out.push(line(`1–${c.topDeciles}`, c));
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
