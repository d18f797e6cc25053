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

/** Calls `f`, which must throw a FedmarkError, and returns "CODE: message" for matching. */
export function thrown(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return `${(err as FedmarkError).code}: ${(err as Error).message}`;
  }
  throw new Error('expected a FedmarkError, nothing was thrown');
}
