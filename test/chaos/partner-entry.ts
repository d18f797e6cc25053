/**
 * A partner node process for the chaos test's NON-DP jobs. It wires runPartnerNode exactly as
 * `fedmark partner` does (cli/node-commands.ts: same data loading, hold-out split, state files, ledger
 * path, output line and exit codes) with one difference: the CLI's policy review refuses every job
 * without differential privacy (client/policy-guard.ts policyReview), and a bit-for-bit model
 * comparison needs a job without DP noise. DP runs of the chaos test use the real CLI.
 *
 *   node --import tsx test/chaos/partner-entry.ts --coordinator URL --job ID --data CSV --schema JSON
 *        --identity FILE --state-dir DIR [--poll-ms N] [--holdout F] [--split-seed N]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { runPartnerNode } from '../../partner/node.ts';
import { readIdentityFile } from '../../src/crypto/identity.ts';
import { loadSchema } from '../../src/data/schema.ts';
import { FedmarkError } from '../../src/errors.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { loadPartnerData } from '../../cli/partner-data.ts';

async function main(): Promise<number> {
  const { values: o } = parseArgs({
    options: {
      coordinator: { type: 'string' },
      job: { type: 'string' },
      data: { type: 'string' },
      schema: { type: 'string' },
      identity: { type: 'string' },
      'state-dir': { type: 'string' },
      'poll-ms': { type: 'string', default: '200' },
      holdout: { type: 'string', default: '0.2' },
      'split-seed': { type: 'string', default: '7' },
    },
  });
  for (const k of ['coordinator', 'job', 'data', 'schema', 'identity', 'state-dir'] as const) {
    if (!o[k]) throw new FedmarkError('CHAOS_ARGS', `partner-entry: --${k} is required`);
  }
  const stateDir = o['state-dir']!;
  const logger = pino({ level: 'info' });
  const identity = readIdentityFile(o.identity!);
  const schema = await loadSchema(o.schema!);
  const data = await loadPartnerData(o.data!, schema, Number(o.holdout), Number(o['split-seed']));
  logger.info({ rows: data.all.n, train: data.train.n, test: data.test.n }, 'local data loaded');
  const result = await runPartnerNode({
    coordinatorUrl: o.coordinator!.replace(/\/$/, ''),
    identity,
    jobId: o.job!,
    train: data.train,
    test: data.test,
    schemaHash: schemaHash(schema),
    stateDir,
    reviewJob: () => [],
    budget: undefined,
    ledgerPath: join(stateDir, `${identity.name}.ledger.jsonl`),
    log: logger,
    pollMs: Number(o['poll-ms']),
  });
  process.stdout.write(`${JSON.stringify({ state: result.state, reason: result.reason, rounds: result.rounds, modelHash: result.modelHash })}\n`);
  return result.state === 'completed' ? 0 : 3;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Same exit codes as cli/main.ts, so the harness treats both kinds of node alike.
    if (err instanceof FedmarkError) {
      process.stderr.write(`fedmark: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`fedmark: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
