/** Helpers shared by the crypto tests. */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import { rejection } from '../helpers/errors.ts';

/** Runs `fn`, which must throw a FedmarkError with `code`, and returns it for further checks. */
export function expectCode(fn: () => unknown, code: string): FedmarkError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    expect((err as FedmarkError).code).toBe(code);
    return err as FedmarkError;
  }
  throw new Error(`expected FedmarkError ${code}, nothing was thrown`);
}

/** Awaits `fn()`, which must reject with a FedmarkError with `code`. */
export async function expectCodeAsync(fn: () => Promise<unknown>, code: string): Promise<FedmarkError> {
  const err = await rejection(fn());
  expect(err.code).toBe(code);
  return err;
}

/** Recomputes a blob's trailing sha256 so a modified blob reaches the deeper validation layers. */
export function reseal(blob: Uint8Array): Uint8Array {
  const out = Uint8Array.from(blob);
  out.set(
    createHash('sha256')
      .update(out.subarray(0, out.length - 32))
      .digest(),
    out.length - 32,
  );
  return out;
}
