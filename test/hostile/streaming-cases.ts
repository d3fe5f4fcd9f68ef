// Hostile Writes of a blob large enough to be streamed to S3 part by part (S3 mode with the
// thresholds below): the same faults as write-cases.ts, met by the multipart path.
import { status } from '@grpc/grpc-js';
import { digestOf } from '../support/client.ts';
import { blob, chunk, type HostileCase, writeName } from './cases.ts';
import { corrupt, readsBack } from './write-cases.ts';

const MIB = 1024 * 1024;

/** Blobs of 6 MiB and more stream to S3, in parts of 5 MiB (the S3 minimum). */
export const STREAMING_ENV = {
  TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(6 * MIB),
  TESSERA_S3_PART_SIZE_BYTES: String(5 * MIB),
};

const SIZE = 6 * MIB + 100;

export function streamingCases(): HostileCase[] {
  const data = blob('streaming', SIZE);
  const digest = digestOf(data);
  const part = 5 * MIB + 512 * 1024;
  const refused = (
    label: string,
    requests: object[],
    message: RegExp,
    extra: Partial<HostileCase> = {},
  ): HostileCase => ({
    name: `Write, streamed to S3: ${label}`,
    rpc: 'Write',
    requests,
    code: status.INVALID_ARGUMENT,
    message,
    uncommitted: [digest],
    ...extra,
  });
  const [ahead, unfinished, more, less, wrong, overlap] = Array.from({ length: 6 }, () =>
    writeName(digest),
  ) as [string, string, string, string, string, string];
  return [
    refused(
      'an offset that skips ahead keeps the upload resumable',
      [
        chunk(data.subarray(0, part), 0, { resourceName: ahead }),
        chunk(data.subarray(part + 1000), part + 1000, { finishWrite: true }),
      ],
      new RegExp(`write offset ${part + 1000} does not continue .* which has ${part} bytes`),
      { keepsSession: { resourceName: ahead, received: part, checkpointed: true } },
    ),
    refused(
      'a stream that ends without finish_write keeps the upload resumable',
      [chunk(data.subarray(0, part), 0, { resourceName: unfinished })],
      /ended without finish_write/,
      { keepsSession: { resourceName: unfinished, received: part, checkpointed: true } },
    ),
    refused(
      'more data than the digest size',
      [chunk(Buffer.concat([data, Buffer.from('!')]), 0, { resourceName: more })],
      new RegExp(`would reach ${SIZE + 1} bytes, more than the digest size ${SIZE}`),
    ),
    refused(
      'fewer bytes than the digest size at finish_write',
      [chunk(data.subarray(0, SIZE - 1), 0, { resourceName: less, finishWrite: true })],
      new RegExp(`digest size ${SIZE} does not match ${SIZE - 1} bytes received`),
    ),
    refused(
      'bytes that do not hash to the digest',
      [
        chunk(data.subarray(0, part), 0, { resourceName: wrong }),
        chunk(corrupt(data, SIZE - 1).subarray(part), part, { finishWrite: true }),
      ],
      new RegExp(`data hashes to [0-9a-f]{64}, not to ${digest.hash}`),
    ),
    {
      name: 'Write, streamed to S3: an overlapping message has the overlap skipped',
      rpc: 'Write',
      requests: [
        chunk(data.subarray(0, part), 0, { resourceName: overlap }),
        chunk(data.subarray(4 * MIB), 4 * MIB, { finishWrite: true }),
      ],
      code: status.OK,
      message: /^OK$/,
      verify: readsBack({ data, digest }),
    },
  ];
}
