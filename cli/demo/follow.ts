import { join } from 'node:path';
import cliProgress from 'cli-progress';
import pino from 'pino';
import { FedmarkError } from '../../src/errors.ts';
import { signManifest } from '../../src/federation/manifest.ts';
import { runJobOwner, type OwnerResult, type RoundProgress } from '../../owner/node.ts';
import type { DemoSetup } from './setup.ts';

/**
 * What the progress bar says about the round it shows: the training rounds, then the last round,
 * which only evaluates the final model on every partner's hold-out rows.
 */
export function roundStage(done: number, trainingRounds: number): string {
  if (done < trainingRounds) return '(training)';
  return done === trainingRounds ? '(training done; the last round only evaluates)' : '(the last round only evaluated the final model)';
}

/** Stage 3: the data scientist's node registers the job, runs the key ceremony and follows the rounds, with a progress bar. */
export async function followJob(s: DemoSetup, url: string, out: string, say: (line: string) => void): Promise<{ result: OwnerResult; perRoundAuc: number[] }> {
  const bar = new cliProgress.SingleBar(
    { format: 'rounds [{bar}] {value}/{total} {stage} | global AUC {auc} | {eta_formatted} left', hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  bar.start(s.manifest.rounds + 1, 0, { auc: '—', stage: roundStage(0, s.manifest.rounds) });
  const perRoundAuc: number[] = [];
  const logger = pino({ level: 'warn' }, pino.destination({ dest: join(out, 'logs', 'owner.log'), sync: true }));
  const result = await runJobOwner({
    coordinatorUrl: url,
    identity: s.owner,
    signed: signManifest(s.manifest, s.owner),
    coordinatorKeyId: s.coordinatorKeyId,
    log: logger,
    pollMs: 100,
    onRound: (p: RoundProgress) => {
      const a = p.metrics?.auc ?? NaN;
      perRoundAuc.push(a);
      // With DP, training rounds release no evaluation unless the manifest asks for it (evaluation.everyRound): there is no AUC to show.
      const shown = Number.isFinite(a) ? a.toFixed(4) : 'n/a (not evaluated this round)';
      bar.update(p.round, { auc: shown, stage: roundStage(p.round, s.manifest.rounds) });
      if (!process.stderr.isTTY) {
        say(
          p.round > s.manifest.rounds
            ? `round ${p.round}/${p.totalRounds} (evaluation only, no training): global AUC of the final model ${shown}`
            : `round ${p.round}/${p.totalRounds} (training): global AUC of the model entering the round ${shown}`,
        );
      }
    },
  });
  bar.stop();
  if (result.state !== 'completed')
    throw new FedmarkError('DEMO_JOB', `the job ended ${result.state}: ${result.reason ?? 'no reason given'}; logs in ${join(out, 'logs')}`);
  return { result, perRoundAuc };
}
