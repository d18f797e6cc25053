import { createHash } from 'node:crypto';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hash of a parameter vector over its exact float64 bytes (little-endian), used to check agreement. */
export function hashParameters(params: Float64Array): string {
  return sha256Hex(new Uint8Array(params.buffer, params.byteOffset, params.byteLength));
}
