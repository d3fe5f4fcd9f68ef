// The client's one error type. Its kind tells a caller what went wrong in the terms a script
// acts on: the request was malformed (usage), the server could not be reached at all
// (unreachable), or the server was reached and the operation failed (failed). The CLI maps kinds
// to exit codes; library users branch on `kind` and, for server errors, on `grpcCode`.
import { type ServiceError, status } from '@grpc/grpc-js';
import { CasError } from '../cas/errors.ts';

export type ClientErrorKind = 'usage' | 'failed' | 'unreachable';

export class ClientError extends Error {
  override readonly name = 'ClientError';
  readonly kind: ClientErrorKind;
  /** The gRPC status name (`NOT_FOUND`, …) when the server answered with an error. */
  readonly grpcCode: string | undefined;

  constructor(
    kind: ClientErrorKind,
    message: string,
    options?: { cause?: unknown; grpcCode?: string },
  ) {
    super(message, { cause: options?.cause });
    this.kind = kind;
    this.grpcCode = options?.grpcCode;
  }
}

export const usageError = (message: string): ClientError => new ClientError('usage', message);

export const failure = (message: string, cause?: unknown): ClientError =>
  new ClientError('failed', message, { cause });

/** True for what grpc-js rejects a call with: an Error carrying a numeric status code. */
export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === 'number';
}

/** `NOT_FOUND` for 5; the number itself for a code this grpc-js does not name. */
export function grpcCodeName(code: number): string {
  return status[code] ?? String(code);
}

/**
 * A server's error status as a ClientError whose message says what was being done, the status
 * name and the server's own text: `reading blob 3f…/12 failed: NOT_FOUND: blob … is not in the
 * cache`.
 */
export function rpcFailure(what: string, code: number, details: string): ClientError {
  const name = grpcCodeName(code);
  const text = details ? `: ${details}` : '';
  return new ClientError('failed', `${what} failed: ${name}${text}`, { grpcCode: name });
}

/** Anything thrown, as a ClientError; `what` names the operation for server and system errors. */
export function toClientError(thrown: unknown, what: string): ClientError {
  if (thrown instanceof ClientError) return thrown;
  if (isServiceError(thrown)) return rpcFailure(what, thrown.code, thrown.details);
  if (thrown instanceof CasError)
    return new ClientError('failed', thrown.message, { cause: thrown });
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  return new ClientError('failed', `${what} failed: ${message}`, { cause: thrown });
}

/**
 * What the first call to a server failed with: `unreachable` when it never got through (refused,
 * no route, timed out), `failed` when the server answered with an error.
 */
export function connectFailure(server: string, error: unknown): ClientError {
  if (error instanceof ClientError) return error;
  if (!isServiceError(error)) {
    return failure(`talking to server ${server} failed: ${String(error)}`, error);
  }
  if (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED) {
    return new ClientError(
      'unreachable',
      `server ${server} is unreachable: ${status[error.code]}: ${withoutNote(error.details)}`,
      { cause: error, grpcCode: status[error.code] },
    );
  }
  return rpcFailure(`asking server ${server} for its capabilities`, error.code, error.details);
}

/** grpc-js ends connection errors with an empty "Resolution note: "; it says nothing. */
function withoutNote(details: string): string {
  return details.replace(/\.?\s*Resolution note:\s*$/, '');
}
