/**
 * Errors of secure aggregation. Every one is a FedmarkError with a stable code; `SecaggAttemptFailed`
 * marks the outcome the federation turns into a failed attempt, like a missed quorum: too few partners
 * took part in some stage, so the attempt cannot complete (its DP charges stay spent). The other codes
 * name a protocol violation — a lying or buggy peer or coordinator — and also end the attempt for the
 * party that detects it.
 */
import { FedmarkError } from '../../errors.ts';

export type SecaggStage = 'advertise' | 'share' | 'upload' | 'consistency' | 'unmask' | 'reconstruct';

export type SecaggErrorCode =
  | 'SECAGG_ATTEMPT_FAILED' // too few participants in a stage
  | 'SECAGG_BAD_CONFIG' // parameters that cannot work
  | 'SECAGG_CONFIG_MISMATCH' // a roster carrying another config than this party derived
  | 'SECAGG_BAD_MESSAGE' // malformed message
  | 'SECAGG_BAD_SIGNATURE' // signature does not verify
  | 'SECAGG_WRONG_ATTEMPT' // message, share or mask of another job, round, attempt or config
  | 'SECAGG_WRONG_STAGE' // message arriving in a stage that does not take it
  | 'SECAGG_UNKNOWN_PARTNER' // sender not among the selected / expected partners
  | 'SECAGG_DUPLICATE' // second message of one kind from one partner
  | 'SECAGG_EQUIVOCATION' // a second, different input for a stage already answered
  | 'SECAGG_KEY_REUSE' // a mask key, share key or seed seen in an earlier round or twice in one
  | 'SECAGG_INCONSISTENT_ROSTER' // partners acted on different rosters
  | 'SECAGG_BAD_INBOX' // shares withheld or added by the coordinator
  | 'SECAGG_INCONSISTENT_SURVIVORS' // the coordinator showed different survivor sets
  | 'SECAGG_DOUBLE_REVEAL' // a request that would reveal both shares of one partner
  | 'SECAGG_BAD_SHARE' // a sealed share that cannot be opened
  | 'SECAGG_BAD_SHARES' // revealed shares that do not reconstruct the committed secret
  | 'SECAGG_SUM_MISMATCH'; // the published sum does not hold the survivors' uploads

export class SecaggError extends FedmarkError {
  readonly stage: SecaggStage;
  constructor(code: SecaggErrorCode, stage: SecaggStage, message: string, details?: Record<string, unknown>) {
    super(code, message, { stage, ...details });
    this.name = 'SecaggError';
    this.stage = stage;
  }
}

/** Too few partners in `stage`: the attempt fails cleanly and the federation may retry with a new one. */
export class SecaggAttemptFailed extends SecaggError {
  constructor(stage: SecaggStage, message: string, details?: Record<string, unknown>) {
    super('SECAGG_ATTEMPT_FAILED', stage, message, details);
    this.name = 'SecaggAttemptFailed';
  }
}

export function isSecaggAttemptFailed(err: unknown): err is SecaggAttemptFailed {
  return err instanceof SecaggAttemptFailed;
}
