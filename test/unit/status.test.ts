import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { CasError, type CasErrorCode, unavailable } from '../../src/cas/errors.ts';
import { grpcCodeOf, OK_STATUS, toRpcStatus, toServiceError } from '../../src/grpc/status.ts';
import type { Logger } from '../../src/observability/logger.ts';

interface LogLine {
  level: number;
  msg: string;
  code?: string;
  err?: { message?: string };
}

/** A real pino logger that keeps its lines in memory, so tests can read what was logged. */
function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'trace' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

const PINO_INFO = 30;
const PINO_ERROR = 50;

const EXPECTED: Record<CasErrorCode, status> = {
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
const CODES = Object.keys(EXPECTED) as CasErrorCode[];

describe('grpcCodeOf', () => {
  it('maps every CasError code to the gRPC status of the same meaning', () => {
    for (const code of CODES) assert.equal(grpcCodeOf(code), EXPECTED[code], code);
  });

  it('never maps a failure to OK', () => {
    for (const code of CODES) assert.notEqual(grpcCodeOf(code), status.OK, code);
  });
});

describe('toServiceError', () => {
  it('sends the code and message of a CasError', () => {
    const { log } = capturingLogger();
    for (const code of CODES) {
      const wire = toServiceError(new CasError(code, `failure coded ${code}`), log);
      assert.equal(wire.code, EXPECTED[code]);
      assert.equal(wire.details, `failure coded ${code}`);
    }
  });

  it("keeps a CasError's cause out of the details and puts it in the log", () => {
    const { log, lines } = capturingLogger();
    const cause = new Error('AccessDenied for bucket acme-secret-builds at 10.0.0.7');
    const wire = toServiceError(unavailable('object store is unavailable', cause), log);
    assert.equal(wire.code, status.UNAVAILABLE);
    assert.equal(wire.details, 'object store is unavailable');
    assert.doesNotMatch(String(wire.details), /acme-secret-builds/);
    assert.doesNotMatch(String(wire.message), /acme-secret-builds/);
    assert.equal(lines.length, 1);
    assert.match(lines[0]?.err?.message ?? '', /acme-secret-builds/);
  });

  it("keeps a plain Error's message out of the details and puts it in the log", () => {
    const { log, lines } = capturingLogger();
    const thrown = new Error('connect ECONNREFUSED redis-primary.internal:6379');
    const wire = toServiceError(thrown, log);
    assert.equal(wire.code, status.INTERNAL);
    assert.doesNotMatch(String(wire.details), /redis-primary/);
    assert.doesNotMatch(String(wire.message), /redis-primary/);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.level, PINO_ERROR);
    assert.match(JSON.stringify(lines[0]), /redis-primary/);
  });

  it('keeps a thrown string out of the details', () => {
    const { log } = capturingLogger();
    const wire = toServiceError('password=hunter2 rejected by upstream', log);
    assert.equal(wire.code, status.INTERNAL);
    assert.doesNotMatch(String(wire.details), /hunter2/);
  });

  it('logs client mistakes at info and server failures at error', () => {
    const clientCodes: CasErrorCode[] = [
      'invalid_argument',
      'not_found',
      'out_of_range',
      'cancelled',
    ];
    const serverCodes: CasErrorCode[] = ['internal', 'unavailable', 'data_loss', 'unimplemented'];
    for (const code of clientCodes) {
      const { log, lines } = capturingLogger();
      toServiceError(new CasError(code, 'x'), log);
      assert.equal(lines[0]?.level, PINO_INFO, code);
    }
    for (const code of serverCodes) {
      const { log, lines } = capturingLogger();
      toServiceError(new CasError(code, 'x'), log);
      assert.equal(lines[0]?.level, PINO_ERROR, code);
    }
  });
});

describe('toRpcStatus', () => {
  it('gives a google.rpc.Status with the mapped code and the message', () => {
    const { log } = capturingLogger();
    const rpc = toRpcStatus(new CasError('resource_exhausted', 'blob of 9 bytes is too big'), log);
    assert.deepEqual(rpc, {
      code: status.RESOURCE_EXHAUSTED,
      message: 'blob of 9 bytes is too big',
    });
  });

  it('gives INTERNAL without the error text for an unknown failure', () => {
    const { log } = capturingLogger();
    const rpc = toRpcStatus(new RangeError('index 77 out of bounds in table users'), log);
    assert.equal(rpc.code, status.INTERNAL);
    assert.doesNotMatch(rpc.message, /table users/);
  });

  it('has an OK status with an empty message', () => {
    assert.deepEqual({ ...OK_STATUS }, { code: 0, message: '' });
  });
});
