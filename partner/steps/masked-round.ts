import { encodeValues, SecaggError, SecaggPartner, type SecaggConfig } from '../../src/crypto/secagg/index.ts';
import { FedmarkError } from '../../src/errors.ts';
import { hasCode } from '../../src/federation/protocol/errors.ts';
import { postSecagg, secaggView } from '../../src/federation/protocol/secagg-client.ts';
import type { SecaggPostStage, SecaggView } from '../../src/federation/protocol/secagg-routes.ts';
import type { VectorCipher } from '../../src/federation/secure-sum.ts';
import { attemptConfig, MASKED_PART, roundingRandom } from '../../src/federation/secagg/round-config.ts';
import type { SecaggStateDir } from '../secagg-state.ts';
import { sleep, type PartnerContext } from './context.ts';
import { applyWithdrawals } from './withdrawals.ts';

/** What a node needs to take part in masked rounds (set up once per job by partner/node.ts). */
export interface MaskedRounds {
  state: SecaggStateDir;
  cipher: VectorCipher;
  masking: { paramsId: string; plainModulus: number; maxSummands: number };
  /** Attempts this node finished (revealed, refused, or saw end) in this process: not run again. */
  finished: Set<string>;
}

/** The attempt ended for this node: nothing more to send. */
class AttemptOver extends Error {}

/**
 * Step 4 of a masked job (docs/CRYPTO.md): one attempt of the round's masked aggregation, stage by
 * stage — advertise fresh keys, Share the mask secrets to the roster, mask and upload, confirm the
 * survivor set, reveal shares for unmasking. Each answer is computed by crypto/secagg's
 * SecaggPartner, persisted in the node's state dir, and only then sent; a restarted node restores
 * the snapshot and re-sends the same answers. The upload is built by the runtime exactly as for
 * any scheme (authorize, compute, charge, record, persist) — one charge, one release — with its
 * parts masked and encrypted by the snapshot's keys; a kept upload is re-sent byte for byte.
 */
export async function runMaskedRound(ctx: PartnerContext, m: MaskedRounds, round: number, attempt: number, selected: string[]): Promise<void> {
  const tag = `${round}.${attempt}`;
  if (m.finished.has(tag)) return;
  try {
    await attemptStages(ctx, m, round, attempt, selected);
  } catch (err) {
    if (err instanceof AttemptOver) ctx.log.info({ round, attempt, why: err.message }, 'masked aggregation attempt over for this node');
    else if (err instanceof SecaggError) {
      // A message the protocol refuses (a lying coordinator, a replay): nothing more of this attempt leaves the node.
      ctx.log.error({ round, attempt, code: err.code, err: err.message }, 'masked aggregation refused: this node sends nothing more for the attempt');
    } else throw err;
  }
  m.finished.add(tag);
}

async function attemptStages(ctx: PartnerContext, m: MaskedRounds, round: number, attempt: number, selected: string[]): Promise<void> {
  const { o, runtime, log } = ctx;
  const plan = runtime.tracker.plan(round);
  const config: SecaggConfig = attemptConfig(ctx.manifest, plan, m.masking, round, attempt, selected);
  const history = m.state.history();
  const opts = { config, identity: o.identity, partners: ctx.manifest.partners, coordinatorSignPublicKey: ctx.coordinator.signPublicKey, history };
  const kept = m.state.snapshot(round, attempt);
  const partner = kept ? SecaggPartner.restore(opts, kept) : SecaggPartner.create(opts);
  const save = () => m.state.save(round, attempt, partner.snapshot());
  // Fresh keys are on disk before they are advertised: a restart advertises the same ones.
  if (!kept) save();
  const post = (stage: SecaggPostStage, message: object) => rethrowOver(postSecagg(ctx.client, o.jobId, round, stage, attempt, message));
  const wait = (view: SecaggView) => awaitView(ctx, round, attempt, view);

  await post('advertise', partner.advertise());
  const shares = await partner.onRoster(await wait('roster'));
  // onRoster recorded the roster's keys in the history: a key that comes back in a later attempt is refused.
  m.state.saveHistory(history);
  save();
  await post('shares', shares);

  const inbox = await wait('inbox');
  applyWithdrawals(ctx);
  const built = await runtime.buildSubmission(round, attempt, false, (parts) => {
    const encoded = encodeValues(config.encoding, parts, roundingRandom(ctx.manifest, ctx.myKeyId, round, attempt));
    const { blob } = partner.onInbox(inbox, encoded, (masked) => m.cipher.encrypt(masked));
    encoded.fill(0);
    // Masked before a crash but never kept: those bytes never left, and are not masked a second time.
    if (!blob) throw new AttemptOver(`round ${round} attempt ${attempt} was masked before a crash but its upload was never kept: withheld`);
    // The commitment to this blob is on disk before the runtime keeps (and the node sends) the upload.
    save();
    return [{ name: MASKED_PART, length: config.encoding.totalSlots, bytes: blob }];
  });
  if (built.status === 'withheld') throw new AttemptOver(`withheld: ${built.reason}`);
  if (built.status === 'refused') {
    log.warn({ round, reason: built.reason }, 'round declined: privacy budget');
    ctx.ledger.budgetRefusal(o.jobId, round, built.requestedEpsilon, built.remainingEpsilon, built.reason);
    await ctx.client
      .decline(o.jobId, round, { attempt, reason: built.reason, requestedEpsilon: built.requestedEpsilon, remainingEpsilon: built.remainingEpsilon })
      .catch((err: unknown) => {
        if (!hasCode(err, 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED')) throw err;
      });
    throw new AttemptOver('declined');
  }
  const commitment = partner.snapshot().inbox?.answer;
  if (!commitment) throw new FedmarkError('SECAGG_STATE_LOST', `round ${round} attempt ${attempt}: the upload was kept but its masked commitment was not`);
  await post('masked', commitment);
  await rethrowOver(ctx.client.submit(o.jobId, round, built.body));
  runtime.acknowledged(round, attempt);
  log.info({ round, attempt, bytes: built.body.length, resent: built.resent }, built.resent ? 'masked update re-sent' : 'masked update submitted');

  const consistency = partner.onSurvivors(await wait('survivors'));
  save();
  await post('consistency', consistency);
  const reveal = partner.onUnmask(await wait('unmask'));
  save();
  await post('reveal', reveal);
  log.info({ round, attempt, seedShares: reveal.body.seedShares.length, keyShares: reveal.body.keyShares.length }, 'unmasking shares revealed');
}

/** The attempt is over (closed, failed, superseded, job ended): not an error of this node. */
async function rethrowOver<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    // SECAGG_REFUSED: the coordinator's machine refused this node's answer (e.g. it signed another survivor set than the others): nothing more is sent.
    if (hasCode(err, 'SECAGG_ATTEMPT_OVER', 'SECAGG_REFUSED', 'ROUND_CLOSED', 'ROUND_DEADLINE', 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED'))
      throw new AttemptOver((err as Error).message);
    throw err;
  }
}

/** Polls the coordinator's signed view until its stage closed (or the attempt ended). */
async function awaitView(ctx: PartnerContext, round: number, attempt: number, view: SecaggView): Promise<unknown> {
  const pollMs = ctx.o.pollMs ?? 200;
  for (let k = 0; ; k++) {
    ctx.o.signal?.throwIfAborted();
    try {
      return await rethrowOver(secaggView(ctx.client, ctx.o.jobId, round, attempt, view));
    } catch (err) {
      if (!hasCode(err, 'SECAGG_NOT_YET')) throw err;
    }
    if (k % 25 === 24) {
      const s = await ctx.client.status(ctx.o.jobId);
      if (s.round !== round || s.attempt !== attempt || s.roundState !== 'open')
        throw new AttemptOver(`round ${s.round} attempt ${s.attempt} is ${s.roundState ?? s.state}`);
    }
    await sleep(pollMs);
  }
}
