import { join } from 'node:path';
import cliProgress from 'cli-progress';
import pino from 'pino';
import { FedmarkError } from '../../src/errors.ts';
import { signManifest } from '../../src/federation/manifest.ts';
import { runJobOwner, type OwnerResult, type RoundProgress } from '../../owner/node.ts';
import type { DemoSetup } from './setup.ts';

/** Stage 3: the data scientist's node registers the job, runs the key ceremony and follows the rounds, with a progress bar. */
export async function followJob(s: DemoSetup, url: string, out: string, say: (line: string) => void): Promise<{ result: OwnerResult; perRoundAuc: number[] }> {
  const bar = new cliProgress.SingleBar(
    { format: 'rounds [{bar}] {value}/{total} | global AUC {auc} | {eta_formatted} left', hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  bar.start(s.manifest.rounds + 1, 0, { auc: '—' });
  const perRoundAuc: number[] = [];
  const logger = pino({ level: 'warn' }, pino.destination({ dest: join(out, 'logs', 'owner.log'), sync: true }));
  const result = await runJobOwner({
    coordinatorUrl: url,
    identity: s.owner,
    signed: signManifest(s.manifest, s.owner),
    log: logger,
    pollMs: 100,
    onRound: (p: RoundProgress) => {
      const a = p.metrics?.auc ?? NaN;
      perRoundAuc.push(a);
      // With DP, training rounds release no evaluation unless the manifest asks for it (evaluation.everyRound): there is no AUC to show.
      const shown = Number.isFinite(a) ? a.toFixed(4) : 'n/a (not evaluated this round)';
      bar.update(p.round, { auc: shown });
      if (!process.stderr.isTTY) say(`round ${p.round}/${p.totalRounds}: global AUC of the model entering the round ${shown}`);
    },
  });
  bar.stop();
  if (result.state !== 'completed') throw new FedmarkError('DEMO_JOB', `the job ended ${result.state}: ${result.reason ?? 'no reason given'}; logs in ${join(out, 'logs')}`);
  return { result, perRoundAuc };
}
