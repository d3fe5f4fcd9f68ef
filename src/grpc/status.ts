// The one mapping from CasError codes to gRPC status codes, and from anything thrown to the status
// a client sees. Causes stay in the logs.
import { type ServiceError, status } from '@grpc/grpc-js';
import { type CasError, type CasErrorCode, toCasError } from '../cas/errors.ts';
import type { Logger } from '../observability/logger.ts';

const GRPC_CODE: Record<CasErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  out_of_range: status.OUT_OF_RANGE,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  aborted: status.ABORTED,
  cancelled: status.CANCELLED,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  unavailable: status.UNAVAILABLE,
  data_loss: status.DATA_LOSS,
  unimplemented: status.UNIMPLEMENTED,
  internal: status.INTERNAL,
};

export function grpcCodeOf(code: CasErrorCode): status {
  return GRPC_CODE[code];
}

/** Codes that mean the client asked for something wrong; they are logged below `error`. */
const CLIENT_CODES = new Set<CasErrorCode>([
  'invalid_argument',
  'not_found',
  'already_exists',
  'out_of_range',
  'failed_precondition',
  'permission_denied',
  'unauthenticated',
  'cancelled',
  'aborted',
  'resource_exhausted',
  // A Write that stalled past the idle timeout: the client stopped sending.
  'deadline_exceeded',
]);

/** Logs the failure at the right level and returns what grpc-js should send. */
export function toServiceError(thrown: unknown, log: Logger): Partial<ServiceError> {
  const error: CasError = toCasError(thrown);
  if (CLIENT_CODES.has(error.code)) {
    log.info({ code: error.code, err: error.cause }, error.message);
  } else {
    log.error({ code: error.code, err: error.cause ?? error }, error.message);
  }
  return {
    code: grpcCodeOf(error.code),
    details: error.message,
    message: error.message,
  };
}

/** A google.rpc.Status for per-blob results inside batch responses. */
export function toRpcStatus(thrown: unknown, log: Logger): { code: number; message: string } {
  const wire = toServiceError(thrown, log);
  return { code: wire.code ?? status.INTERNAL, message: wire.details ?? '' };
}

export const OK_STATUS = { code: status.OK, message: '' } as const;
