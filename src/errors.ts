/**
 * One error type for every rejection of bad input, so callers (CLI, HTTP routes) can turn it into a
 * clear message or a 4xx without string matching. `code` is stable; `message` names the problem.
 */
export class FedmarkError extends Error {
  readonly code: string;
  readonly details?: Record<string, unknown>;

  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'FedmarkError';
    this.code = code;
    this.details = details;
  }
}

export function isFedmarkError(err: unknown): err is FedmarkError {
  return err instanceof FedmarkError;
}
