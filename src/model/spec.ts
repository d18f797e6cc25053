import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

/**
 * The model families fedmark trains. Both are stacks of dense layers ending in one logit, so one
 * flat-parameter layout, one backprop routine and one tfjs export cover them.
 */
export const logisticSpecSchema = z
  .object({
    kind: z.literal('logistic'),
  })
  .strict();

export const mlpSpecSchema = z
  .object({
    kind: z.literal('mlp'),
    hidden: z.array(z.number().int().min(1).max(4096)).min(1, 'an MLP needs at least one hidden layer'),
    activation: z.enum(['relu', 'tanh']).default('relu'),
  })
  .strict();

export const modelSpecSchema = z.discriminatedUnion('kind', [logisticSpecSchema, mlpSpecSchema]);

/** Parsed spec (defaults applied). */
export type ModelSpec = z.output<typeof modelSpecSchema>;
/** What a caller may write (activation optional). */
export type ModelSpecInput = z.input<typeof modelSpecSchema>;

/** Validates a spec; throws FedmarkError('INVALID_MODEL_SPEC') naming the offending field. */
export function parseModelSpec(input: unknown): ModelSpec {
  const res = modelSpecSchema.safeParse(input);
  if (!res.success) {
    const issue = res.error.issues[0];
    const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw new FedmarkError('INVALID_MODEL_SPEC', `invalid model spec at ${where}: ${issue.message}`, {
      issues: res.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return res.data;
}
