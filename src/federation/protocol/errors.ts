import { FedmarkError } from '../../errors.ts';

/**
 * Every error code the coordinator answers with, and its HTTP status: the one table (as fastify's
 * own lib/errors.js keeps one). The job engine throws `DomainError`s with these codes and knows
 * nothing of HTTP; the coordinator's error plugin looks the status up here; nodes branch on the
 * typed code (`hasCode`). A `FedmarkError` whose code is not listed (a library function refusing
 * bad input, e.g. a ciphertext it cannot parse) is a 400: it is bad input by definition.
 */
export const ERROR_STATUS = {
  // The request itself
  INVALID_REQUEST: 400,
  BAD_JSON: 400,
  WRONG_CONTENT_TYPE: 415,
  NOT_FOUND: 404,
  RATE_LIMITED: 429,
  /** Too many long-poll requests held for this key (or in all): let one return first (coordinator/plugins/long-poll.ts). */
  LONG_POLL_LIMIT: 429,
  BODY_TOO_LARGE: 413,
  INTERNAL: 500,
  /** The coordinator's disk (store or ledger) is full: nothing of the request was kept; retry after `retry-after`. */
  STORAGE_FULL: 507,
  /** The coordinator's storage failed (I/O error, read-only device): nothing of the request was kept; retry later. */
  STORAGE_IO_ERROR: 503,
  /** A job ledger the coordinator closed after a write it could not undo: it needs a restart (which repairs the torn tail). */
  LEDGER_CLOSED: 503,
  // Authentication (signed x-fedmark-* headers, src/crypto/request-signing.ts)
  AUTH_MISSING: 401,
  AUTH_MALFORMED: 401,
  AUTH_UNKNOWN_KEY: 401,
  /**
   * The one answer for "no such job", "a key the job does not name" and "a signature that does not
   * verify": a stranger must not learn which job ids exist.
   */
  AUTH_REJECTED: 401,
  AUTH_STALE: 401,
  AUTH_BAD_SIGNATURE: 401,
  AUTH_REPLAY: 409,
  SIGNATURE_SCOPE: 401,
  // Who may do what
  OWNER_ONLY: 403,
  PARTNER_ONLY: 403,
  NOT_PARTNER: 403,
  NOT_SELECTED: 403,
  // Jobs
  UNKNOWN_JOB: 404,
  JOB_EXISTS: 409,
  JOB_CLOSED: 409,
  LEDGER_GENESIS_MISMATCH: 400,
  UNKNOWN_WORKLOAD: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_SIGNATURE: 400,
  LEDGER_EMPTY: 409,
  // Signed statements of partners (acceptance, refusal, withdrawal)
  STATEMENT_MISSING: 400,
  STATEMENT_SCOPE: 400,
  STATEMENT_SIGNATURE: 400,
  WITHDRAWN: 409,
  ALREADY_ANSWERED: 409,
  // Key ceremony
  KEYS_LOCKED: 409,
  UNKNOWN_PARTNER: 404,
  SEALED_KEY_SIZE: 400,
  NO_SEALED_KEY: 404,
  // Rounds
  ALREADY_SUBMITTED: 409,
  ROUND_NOT_OPEN: 409,
  ROUND_CLOSED: 409,
  ROUND_DEADLINE: 409,
  ROUND_NOT_CLOSED: 409,
  NO_MODEL_IN_ROUND: 400,
  HASH_CHANGED: 409,
  NO_SUCH_PART: 404,
  // What a submission holds (federation/rounds.ts checkSubmission, update-codec.ts, secure-sum.ts)
  UPDATE_MALFORMED: 400,
  WRONG_JOB: 400,
  WRONG_ROUND: 400,
  WRONG_ATTEMPT: 400,
  WRONG_KIND: 400,
  HE_PARAMS_MISMATCH: 400,
  HE_BAD_CIPHERTEXT: 400,
  PLAIN_BAD_BLOB: 400,
  STALE_MODEL: 400,
  DP_REPORT_MISSING: 400,
  DP_REPORT_INVALID: 400,
  RECORD_INVALID: 400,
  PART_MISSING: 400,
  PART_LENGTH: 400,
  PART_UNEXPECTED: 400,
  // Relayed point-to-point messages (relay stage: vertical learning)
  NOT_A_RELAY_ROUND: 409,
  RELAY_NOT_EXPECTED: 403,
  RELAY_TOO_LARGE: 413,
  RELAY_CONFLICT: 409,
  NO_RELAY_MESSAGE: 404,
  RELEASE_NOT_RECORDED: 409,
  RELEASE_MISMATCH: 400,
  NO_AGGREGATION: 400,
  // Masked aggregation's stage messages (secagg-routes.ts)
  NOT_SECAGG: 409,
  SECAGG_NOT_YET: 404,
  SECAGG_ATTEMPT_OVER: 409,
  SECAGG_REFUSED: 400,
  SECAGG_NO_COMMITMENT: 409,
} as const satisfies Record<string, number>;

/** A code the coordinator sends. */
export type ProtocolErrorCode = keyof typeof ERROR_STATUS;

/** Codes a node's own transport raises (never sent by the coordinator). */
export const TRANSPORT_ERROR_CODES = [
  'COORDINATOR_UNREACHABLE',
  'RESPONSE_INVALID',
  'RESPONSE_TOO_LARGE',
  'BAD_COORDINATOR_URL',
  'INSECURE_TRANSPORT',
  'TLS_CERT_EXPIRED',
  'TLS_CERT_NOT_YET_VALID',
  'TLS_UNTRUSTED_CERT',
  'TLS_HOSTNAME_MISMATCH',
  'TLS_HANDSHAKE_FAILED',
  'TLS_PIN_MISMATCH',
] as const;
export type TransportErrorCode = (typeof TRANSPORT_ERROR_CODES)[number];

export type ErrorCode = ProtocolErrorCode | TransportErrorCode;

/** What the engine throws: a domain rejection with a code from the table, no HTTP in sight. */
export class DomainError extends FedmarkError {
  declare readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = 'DomainError';
  }
}

export function isProtocolErrorCode(code: string): code is ProtocolErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_STATUS, code);
}

/** The HTTP status for an error code (400 for a library code not in the table). */
export function statusOf(code: string): number {
  return isProtocolErrorCode(code) ? ERROR_STATUS[code] : 400;
}

/** True when `err` is a FedmarkError carrying one of `codes`: how nodes branch on a refusal. */
export function hasCode(err: unknown, ...codes: ErrorCode[]): err is FedmarkError & { code: ErrorCode } {
  return err instanceof FedmarkError && (codes as string[]).includes(err.code);
}
