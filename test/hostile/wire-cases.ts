// Requests that are broken below the protocol: bytes that are no protobuf message, sent to every
// method, and messages over the server's receive limit, which gRPC itself refuses with
// RESOURCE_EXHAUSTED. A Write stream cut short by either keeps the bytes it delivered before.
import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { digestOf } from '../support/client.ts';
import { blob, chunk, type HostileCase, writeName } from './cases.ts';
import { RPCS } from './raw-client.ts';

/** Byte strings that no REAPI request type decodes from. */
const GARBAGE: [string, Buffer][] = [
  ['a varint that runs past the end', Buffer.from([0xff, 0xff, 0xff, 0xff])],
  ['an end-group tag with no group', Buffer.from([0x0c])],
  ['a tag with no value', Buffer.from([0x08])],
  ['plain text', Buffer.from('GET / HTTP/1.1\r\nHost: tessera\r\n\r\n')],
];

/** Larger than the server's limit: max_batch_total_size_bytes + 4 MiB, about 7.9 MiB. */
const OVERSIZE_BYTES = 9 * 1024 * 1024;
const OVER_LIMIT = /Received message larger than max \(\d+ vs \d+\)/;

/**
 * A digest for a blob that is never sent whole: only its name matters. Its size stays under the
 * S3 suite's multipart threshold, so the upload is spooled and reports every byte it received.
 */
function claimed(tag: string, size: number) {
  return { hash: createHash('sha256').update(tag).digest('hex'), sizeBytes: size };
}

export function wireCases(): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const rpc of RPCS) {
    for (const [label, bytes] of GARBAGE) {
      cases.push({
        name: `${rpc}: garbage bytes (${label})`,
        rpc,
        requests: [bytes],
        code: status.INVALID_ARGUMENT,
        message: new RegExp(`^${rpc} request is not a valid ${rpc}Request message: `),
      });
    }
  }

  const oversize = Buffer.alloc(OVERSIZE_BYTES, 0x61);
  const batchBlob = digestOf(oversize);
  const large = claimed('oversize write', 5 * 1024 * 1024);
  cases.push(
    {
      name: 'FindMissingBlobs: a message over the receive limit',
      rpc: 'FindMissingBlobs',
      requests: [{ instanceName: oversize.toString('latin1') }],
      code: status.RESOURCE_EXHAUSTED,
      message: OVER_LIMIT,
    },
    {
      name: 'BatchUpdateBlobs: a message over the receive limit',
      rpc: 'BatchUpdateBlobs',
      requests: [{ requests: [{ digest: batchBlob, data: oversize }] }],
      code: status.RESOURCE_EXHAUSTED,
      message: OVER_LIMIT,
      uncommitted: [batchBlob],
    },
    {
      name: 'UpdateActionResult: a message over the receive limit',
      rpc: 'UpdateActionResult',
      requests: [
        {
          actionDigest: claimed('oversize action', 10),
          actionResult: { stdoutRaw: oversize },
        },
      ],
      code: status.RESOURCE_EXHAUSTED,
      message: OVER_LIMIT,
    },
    {
      name: 'Write: a first message over the receive limit',
      rpc: 'Write',
      requests: [chunk(oversize, 0, { resourceName: writeName(large) })],
      code: status.RESOURCE_EXHAUSTED,
      message: OVER_LIMIT,
      uncommitted: [large],
    },
  );

  const cut = claimed('oversize after a good message', 5 * 1024 * 1024);
  const cutName = writeName(cut);
  const first = blob('wire:first', 1000);
  cases.push({
    name: 'Write: a message over the receive limit after a good one keeps the session',
    rpc: 'Write',
    requests: [chunk(first, 0, { resourceName: cutName }), chunk(oversize, 1000)],
    code: status.RESOURCE_EXHAUSTED,
    message: OVER_LIMIT,
    settle: { after: 0, resourceName: cutName, bytes: 1000 },
    uncommitted: [cut],
    keepsSession: { resourceName: cutName, received: 1000 },
  });

  const data = blob('wire:garbage after', 1000);
  const digest = digestOf(data);
  const name = writeName(digest);
  cases.push({
    name: 'Write: garbage bytes after a good message keep the session',
    rpc: 'Write',
    requests: [chunk(data.subarray(0, 500), 0, { resourceName: name }), Buffer.from([0x0c])],
    code: status.INVALID_ARGUMENT,
    message: /^Write request is not a valid WriteRequest message/,
    settle: { after: 0, resourceName: name, bytes: 500 },
    uncommitted: [digest],
    keepsSession: { resourceName: name, received: 500 },
  });
  return cases;
}
