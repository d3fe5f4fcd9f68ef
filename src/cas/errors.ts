// The one error type of Tessera. Every failure that can reach a client is a CasError with a code;
// `toCasError` turns anything thrown into one. The `cause` is kept for the logs and is never sent
// to the client (it may hold bucket names, hosts or credentials in SDK error text).

export type CasErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'out_of_range'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'permission_denied'
  | 'unauthenticated'
  | 'aborted'
  | 'cancelled'
  | 'deadline_exceeded'
  | 'unavailable'
  | 'data_loss'
  | 'unimplemented'
  | 'internal';

export class CasError extends Error {
  override readonly name = 'CasError';
  readonly code: CasErrorCode;

  constructor(code: CasErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export const invalidArgument = (message: string): CasError =>
  new CasError('invalid_argument', message);
export const notFound = (message: string): CasError => new CasError('not_found', message);
export const outOfRange = (message: string): CasError => new CasError('out_of_range', message);

/** A backend (S3, Redis, disk) failed in a way a client may retry. */
export const unavailable = (message: string, cause?: unknown): CasError =>
  new CasError('unavailable', message, { cause });

/**
 * Anything thrown, as a CasError. Unknown failures become `internal` with a fixed message: their
 * text may name hosts or paths, so it stays in `cause`, for the log.
 */
export function toCasError(thrown: unknown): CasError {
  if (thrown instanceof CasError) return thrown;
  return new CasError('internal', 'internal error', { cause: thrown });
}

/** A filesystem failure as the client should see it: a full disk is RESOURCE_EXHAUSTED. */
export function diskError(error: unknown, message: string): CasError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CasError('resource_exhausted', `${message}: disk is full`, { cause: error });
  }
  return unavailable(`${message}: ${code ?? 'i/o error'}`, error);
}
