import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

/**
 * Learning-rate schedules over federated rounds: a factor multiplying the server learning rate of
 * round t (1-based) of a job of R training rounds. Pure functions of (schedule, t, R), so every key
 * holder applies the same step; a schedule changes no release (the DP accounting is untouched).
 */
export const lrScheduleSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant') }).strict(),
  /** ×gamma every `every` rounds: γ^⌊(t−1)/every⌋. */
  z.object({ kind: z.literal('step'), every: z.number().int().positive(), gamma: z.number().gt(0).lte(1) }).strict(),
  /** ×gamma each round: γ^(t−1). */
  z.object({ kind: z.literal('exponential'), gamma: z.number().gt(0).lte(1) }).strict(),
  /**
   * Linear warm-up over `warmupRounds` (t / warmup), then cosine decay from 1 to `minFactor` at the
   * last round (Loshchilov & Hutter 2017, SGDR, without restarts). minFactor > 0: every round of a
   * job takes a step (a zero learning rate is not a server optimizer).
   */
  z
    .object({
      kind: z.literal('cosine'),
      minFactor: z.number().gt(0).lt(1).default(0.05),
      warmupRounds: z.number().int().nonnegative().default(0),
    })
    .strict(),
]);
export type LrSchedule = z.input<typeof lrScheduleSchema>;

/** The factor of round `round` (1..totalRounds); constant → 1 exactly, so an unscheduled job computes what it did before. */
export function scheduleFactor(schedule: LrSchedule | undefined, round: number, totalRounds: number): number {
  if (!Number.isInteger(round) || round < 1 || !Number.isInteger(totalRounds) || round > totalRounds) {
    throw new FedmarkError('INVALID_SCHEDULE', `learning-rate schedule asked for round ${round} of ${totalRounds}`);
  }
  if (schedule === undefined) return 1;
  const parsed = lrScheduleSchema.safeParse(schedule);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError('INVALID_SCHEDULE', `learning-rate schedule: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const s = parsed.data;
  switch (s.kind) {
    case 'constant':
      return 1;
    case 'step':
      return Math.pow(s.gamma, Math.floor((round - 1) / s.every));
    case 'exponential':
      return Math.pow(s.gamma, round - 1);
    case 'cosine': {
      if (round <= s.warmupRounds) return round / s.warmupRounds;
      const span = totalRounds - s.warmupRounds;
      if (span <= 1) return 1;
      const progress = (round - s.warmupRounds - 1) / (span - 1);
      return s.minFactor + ((1 - s.minFactor) * (1 + Math.cos(Math.PI * progress))) / 2;
    }
  }
}
