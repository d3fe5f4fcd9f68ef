// The shape of one hostile case and the small helpers the tables share. A case is data: the RPC,
// what is sent, the status code expected and a pattern its message must match (naming the bad
// value). suite.ts runs each against a real server and then checks that the server is unharmed.
import { createHash, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { ServerUnderTest } from '../conformance/harness.ts';
import { type Digest, digestOf, type TestClient } from '../support/client.ts';
import type { Outcome, RawRequest, Rpc } from './raw-client.ts';

export interface CaseContext {
  readonly server: ServerUnderTest;
  readonly client: TestClient;
  /** Commits a blob through ByteStream Write. */
  commit(data: Buffer): Promise<Digest>;
}

export interface HostileCase {
  readonly name: string;
  readonly rpc: Rpc;
  /** One request for unary and server-streaming methods; every message, in order, for Write. */
  readonly requests: readonly RawRequest[];
  readonly code: status;
  /** The status message must match; for errors it names the offending value. */
  readonly message: RegExp;
  /**
   * For a Write: after message `after` is sent, wait until QueryWriteStatus reports `bytes`
   * received before sending the rest, so what the server holds when the stream breaks is known.
   */
  readonly settle?: {
    readonly after: number;
    readonly resourceName: string;
    readonly bytes: number;
  };
  /** Runs before the call: commits what the request refers to. */
  readonly setup?: (ctx: CaseContext) => Promise<void>;
  /** Well-formed digests the call must not have committed. */
  readonly uncommitted?: readonly Digest[];
  /**
   * A Write that broke off and keeps its session: QueryWriteStatus reports `received`, or for an
   * upload streamed to S3 (`checkpointed`) the last checkpoint, which may be less.
   */
  readonly keepsSession?: {
    readonly resourceName: string;
    readonly received: number;
    readonly checkpointed?: boolean;
  };
  /** Further checks of the outcome and of what the server holds afterwards. */
  readonly verify?: (ctx: CaseContext, outcome: Outcome) => Promise<void>;
}

/** A case refused with INVALID_ARGUMENT. */
export const invalid = (
  name: string,
  rpc: HostileCase['rpc'],
  request: object,
  message: RegExp,
  extra: Partial<HostileCase> = {},
): HostileCase => ({
  name,
  rpc,
  requests: [request],
  code: status.INVALID_ARGUMENT,
  message,
  ...extra,
});

/** Deterministic, incompressible-looking bytes for one case, so a failure replays the same. */
export function blob(tag: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(`hostile:${tag}`).digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** Instance faults all get this message, which quotes the whole name. */
export const SEGMENT_FAULT = /has an empty, "\." or "\.\." segment/;

export const SHA256_EMPTY = digestOf(Buffer.alloc(0)).hash;

/** A fresh upload name for a digest; the instance and the blob part may be overridden. */
export function writeName(digest: Digest, instance = ''): string {
  const prefix = instance === '' ? '' : `${instance}/`;
  return `${prefix}uploads/${randomUUID()}/blobs/${digest.hash}/${digest.sizeBytes}`;
}

export function readName(digest: Digest, instance = ''): string {
  const prefix = instance === '' ? '' : `${instance}/`;
  return `${prefix}blobs/${digest.hash}/${digest.sizeBytes}`;
}

/** One Write message; `resourceName` only where given. */
export function chunk(
  data: Buffer,
  writeOffset: number,
  options: { resourceName?: string; finishWrite?: boolean } = {},
): object {
  return {
    resourceName: options.resourceName ?? '',
    writeOffset,
    data,
    finishWrite: options.finishWrite ?? false,
  };
}

/** Escapes text for use inside a RegExp. */
export function literal(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}
