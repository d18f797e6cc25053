import { expect } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';

/** Awaits `p`, which must reject with a FedmarkError, and returns that error for further checks. */
export async function rejection(p: Promise<unknown>): Promise<FedmarkError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return err as FedmarkError;
  }
  throw new Error('expected a rejection');
}
