// Malformed ByteStream resource names, each sent to Read, Write and QueryWriteStatus. Faults in
// the instance part keep a valid digest, so the case can also check that nothing was committed.
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { digestOf } from '../support/client.ts';
import { blob, chunk, type HostileCase, SEGMENT_FAULT } from './cases.ts';

const DATA = blob('names', 300);
const D = digestOf(DATA);
const H = D.hash;
const MD5_LIKE = H.slice(0, 32);
const SHA1_LIKE = H.slice(0, 40);

interface InstanceFault {
  readonly label: string;
  readonly instance: string;
  readonly message: RegExp;
  /** Where the fault can be seen: a reserved word may itself be the read or write marker. */
  readonly only?: 'read' | 'write';
}

const INSTANCE_FAULTS: InstanceFault[] = [
  { label: '".." segment', instance: 'team/..', message: SEGMENT_FAULT },
  { label: '"." segment', instance: './team', message: SEGMENT_FAULT },
  { label: 'lone ".."', instance: '..', message: SEGMENT_FAULT },
  { label: 'empty middle segment', instance: 'a//b', message: SEGMENT_FAULT },
  { label: 'leading slash', instance: '/a', message: SEGMENT_FAULT },
  { label: 'trailing slash', instance: 'a/', message: SEGMENT_FAULT },
  {
    label: 'a segment of 1025 characters',
    instance: `ok/${'s'.repeat(1025)}`,
    message: /segment of 1025 characters exceeds 1024/,
  },
  {
    label: 'a name over 4096 characters',
    instance: 'ab/'.repeat(1400).slice(0, -1),
    message: /resource name is 4\d{3} characters long; the limit is 4096/,
  },
  ...['\u0000', '\u0001', '\n', '\u001b', '\u007f'].map((c) => {
    const code = c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    return {
      label: `control character U+${code}`,
      instance: `a${c}b`,
      message: new RegExp(`control character \\(U\\+${code}\\)`),
    };
  }),
  ...['actions', 'actionResults', 'operations', 'capabilities'].map((word) => ({
    label: `reserved word "${word}"`,
    instance: `team/${word}`,
    message: new RegExp(`reserved word "${word}"`),
  })),
  {
    label: 'reserved word "uploads"',
    instance: 'team/uploads',
    message: /reserved word "uploads"/,
    only: 'read',
  },
  ...['blobs', 'compressed-blobs'].map((word) => ({
    label: `reserved word "${word}"`,
    instance: `team/${word}`,
    message: new RegExp(`reserved word "${word}"`),
    only: 'write' as const,
  })),
];

interface BlobFault {
  readonly label: string;
  /** What follows the instance in a read name, and the upload id in a write name. */
  readonly part: string;
  readonly message: RegExp;
  readonly only?: 'read' | 'write';
  /** QueryWriteStatus parses the name and finds no such upload, as for any it does not know. */
  readonly queryNotFound?: boolean;
}

const sizeFault = (size: string): BlobFault => ({
  label: `size "${size}"`,
  part: `blobs/${H}/${size}`,
  message: new RegExp(`size "${size.replace(/[.+]/g, '\\$&')}" in .* is not a non-negative`),
});

const BLOB_FAULTS: BlobFault[] = [
  { label: '63-digit hash', part: `blobs/${H.slice(1)}/300`, message: /has 63 hex digits/ },
  { label: '65-digit hash', part: `blobs/${H}0/300`, message: /has 65 hex digits/ },
  {
    label: 'non-hex hash of 64 characters',
    part: `blobs/${'g'.repeat(64)}/300`,
    message: /hash "g{64}" is not lower-case hexadecimal/,
  },
  {
    label: 'upper-case hex hash',
    part: `blobs/${H.toUpperCase()}/300`,
    message: new RegExp(`hash "${H.toUpperCase()}" is not lower-case hexadecimal`),
  },
  {
    label: 'one upper-case hex digit',
    part: `blobs/A${H.slice(1)}/300`,
    message: /not lower-case hexadecimal/,
  },
  {
    label: 'sha256 with 40 digits',
    part: `blobs/sha256/${SHA1_LIKE}/300`,
    message: /SHA256 needs 64/,
  },
  { label: 'md5 with 64 digits', part: `blobs/md5/${H}/300`, message: /MD5 needs 32/ },
  {
    label: 'blake3 with 32 digits',
    part: `blobs/blake3/${MD5_LIKE}/300`,
    message: /BLAKE3 needs 64/,
  },
  {
    label: 'upper-case function segment',
    part: `blobs/SHA256/${H}/300`,
    message: /digest function "SHA256" in .* is not supported/,
  },
  { label: 'empty hash', part: 'blobs//300', message: /lacks a hash and size/ },
  { label: 'no size', part: `blobs/${H}`, message: /lacks a hash and size/ },
  ...['', '-1', '-300', '1.5', '300.0', '0300', '+300', '3e2', ' 300', '0x12c', 'ten'].map(
    sizeFault,
  ),
  sizeFault('99999999999999999999'),
  {
    label: 'size 2^53',
    part: `blobs/${H}/9007199254740992`,
    message: /digest size 9007199254740992 is not a whole number between 0 and 9007199254740991/,
  },
  ...['vso', 'murmur3', 'sha256tree', 'gitsha1', 'sha999', 'crc32c'].map((fn) => ({
    label: `digest function segment "${fn}"`,
    part: `blobs/${fn}/${H}/300`,
    message: new RegExp(`digest function "${fn}" in .* is not supported`),
  })),
  ...['deflate', 'brotli'].map((compressor) => ({
    label: `unsupported compressor "${compressor}"`,
    part: `compressed-blobs/${compressor}/${H}/300`,
    message: new RegExp(`compressor "${compressor}" is not supported`),
    queryNotFound: true,
  })),
  ...['lz4', 'ZSTD', ''].map((compressor) => ({
    label: `unknown compressor "${compressor}"`,
    part: `compressed-blobs/${compressor}/${H}/300`,
    message: new RegExp(`compressor "${compressor}" in .* is unknown`),
  })),
  {
    label: 'segments after the size',
    part: `blobs/${H}/300/extra`,
    message: /extra segments after the size/,
    only: 'read',
  },
];

/** Whole names that are wrong in their structure rather than in one field. */
const WRITE_ONLY_NAMES: [string, string, RegExp][] = [
  ['a read name', `blobs/${H}/300`, /has no "uploads" segment/],
  ['no upload id', 'uploads', /needs an upload id/],
  ['an upload id with a space', `uploads/a b/blobs/${H}/300`, /needs an upload id/],
  ['an upload id of 201 characters', `uploads/${'u'.repeat(201)}/blobs/${H}/300`, /upload id/],
  ['"blob" for "blobs"', `uploads/${randomUUID()}/blob/${H}/300`, /needs "blobs" after/],
  ['an empty name', '', /resource name is empty/],
];

const READ_ONLY_NAMES: [string, string, RegExp][] = [
  ['an upload name', `uploads/${randomUUID()}/blobs/${H}/300`, /reserved word "uploads"/],
  ['no blobs segment', `${H}/300`, /has no "blobs" or "compressed-blobs" segment/],
  ['an empty name', '', /resource name is empty/],
];

function readCase(label: string, resourceName: string, message: RegExp): HostileCase {
  const request = { resourceName, readOffset: 0, readLimit: 0 };
  return {
    name: `Read: ${label}`,
    rpc: 'Read',
    requests: [request],
    code: status.INVALID_ARGUMENT,
    message,
  };
}

function writeCases(
  label: string,
  resourceName: string,
  message: RegExp,
  valid: boolean,
  queryNotFound = false,
) {
  const data = valid ? DATA : Buffer.from('x');
  const write: HostileCase = {
    name: `Write: ${label}`,
    rpc: 'Write',
    requests: [chunk(data, 0, { resourceName, finishWrite: true })],
    code: status.INVALID_ARGUMENT,
    message,
    uncommitted: valid ? [D] : [],
  };
  const query: HostileCase = {
    name: `QueryWriteStatus: ${label}`,
    rpc: 'QueryWriteStatus',
    requests: [{ resourceName }],
    code: queryNotFound ? status.NOT_FOUND : status.INVALID_ARGUMENT,
    message: queryNotFound ? /no upload named ".*" is in progress/ : message,
  };
  return [write, query];
}

export function nameCases(): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const fault of INSTANCE_FAULTS) {
    if (fault.only !== 'write') {
      cases.push(
        readCase(`instance with ${fault.label}`, `${fault.instance}/blobs/${H}/300`, fault.message),
      );
    }
    if (fault.only !== 'read') {
      const name = `${fault.instance}/uploads/${randomUUID()}/blobs/${H}/300`;
      cases.push(...writeCases(`instance with ${fault.label}`, name, fault.message, true));
    }
  }
  for (const fault of BLOB_FAULTS) {
    if (fault.only !== 'write') cases.push(readCase(fault.label, fault.part, fault.message));
    if (fault.only !== 'read') {
      const name = `uploads/${randomUUID()}/${fault.part}`;
      cases.push(...writeCases(fault.label, name, fault.message, false, fault.queryNotFound));
    }
  }
  for (const [label, name, message] of WRITE_ONLY_NAMES) {
    cases.push(...writeCases(label, name, message, false));
  }
  for (const [label, name, message] of READ_ONLY_NAMES) cases.push(readCase(label, name, message));
  return cases;
}
