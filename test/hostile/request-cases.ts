// Hostile requests to the other services: Read offsets and limits out of range, compressed reads
// with a limit, action results that reference malformed digests or a tree that is no Tree, the
// Remote Asset API, Capabilities and QueryWriteStatus.
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { encodeMessage } from '../../src/grpc/proto.ts';
import { digestOf } from '../support/client.ts';
import {
  blob,
  type CaseContext,
  type HostileCase,
  readName,
  SEGMENT_FAULT,
  writeName,
} from './cases.ts';
import type { Outcome } from './raw-client.ts';

function readCases(): HostileCase[] {
  const data = blob('read', 1000);
  const digest = digestOf(data);
  const name = readName(digest);
  const setup = async (ctx: CaseContext) => void (await ctx.commit(data));
  const read = (
    label: string,
    request: object,
    code: status,
    message: RegExp,
    expected?: Buffer,
  ): HostileCase => ({
    name: `Read: ${label}`,
    rpc: 'Read',
    requests: [{ resourceName: name, readOffset: 0, readLimit: 0, ...request }],
    code,
    message,
    setup,
    ...(expected && {
      verify: async (_ctx: CaseContext, outcome: Outcome) => {
        const chunks = outcome.responses as { data: Buffer }[];
        assert.ok(Buffer.concat(chunks.map((c) => c.data)).equals(expected));
      },
    }),
  });
  const zstd = name.replace(/^blobs\//, 'compressed-blobs/zstd/');
  const missing = digestOf(blob('read:missing', 1000));
  return [
    read('offset -1', { readOffset: -1 }, status.OUT_OF_RANGE, /read offset -1 is outside blob/),
    read('offset size + 1', { readOffset: 1001 }, status.OUT_OF_RANGE, /read offset 1001 is/),
    read('offset 2^62', { readOffset: 2 ** 62 }, status.OUT_OF_RANGE, /read offset 46116860/),
    read('offset at the size', { readOffset: 1000 }, status.OK, /^OK$/, Buffer.alloc(0)),
    read('read_limit -1', { readLimit: -1 }, status.INVALID_ARGUMENT, /read_limit -1 is negative/),
    read('read_limit 2^62 reads to the end', { readLimit: 2 ** 62 }, status.OK, /^OK$/, data),
    read(
      'a compressed read with read_limit 10',
      { resourceName: zstd, readLimit: 10 },
      status.INVALID_ARGUMENT,
      /read_limit 10 is not allowed in a read of compressed-blobs\/zstd/,
    ),
    read(
      'a deflate read, which is not supported',
      { resourceName: zstd.replace('/zstd/', '/deflate/') },
      status.INVALID_ARGUMENT,
      /compressor "deflate" is not supported/,
    ),
    {
      ...read(
        'a blob that was never written',
        { resourceName: readName(missing) },
        status.NOT_FOUND,
        new RegExp(`${missing.hash}/1000 is not in the cache`),
      ),
      uncommitted: [missing],
    },
  ];
}

function actionCacheCases(): HostileCase[] {
  const action = digestOf(blob('ac:action', 64));
  const output = blob('ac:output', 200);
  const notTree = Buffer.alloc(64, 0xff);
  const badTree = encodeMessage('build.bazel.remote.execution.v2.Tree', {
    root: { files: [{ name: 'f', digest: { hash: 'XYZ', sizeBytes: 1 } }] },
  });
  const ghost = digestOf(blob('ac:ghost', 300));
  const setup = async (ctx: CaseContext) => {
    await ctx.commit(output);
    await ctx.commit(notTree);
    await ctx.commit(badTree);
  };
  const update = (label: string, result: object | null, code: status, message: RegExp) => ({
    name: `UpdateActionResult: ${label}`,
    rpc: 'UpdateActionResult' as const,
    requests: [{ actionDigest: action, actionResult: result }],
    code,
    message,
    setup,
  });
  const outputs = (digest: object | null) => ({ outputFiles: [{ path: 'out/a', digest }] });
  const get = (label: string, request: object, code: status, message: RegExp): HostileCase => ({
    name: `GetActionResult: ${label}`,
    rpc: 'GetActionResult',
    requests: [request],
    code,
    message,
  });
  const invalid = status.INVALID_ARGUMENT;
  return [
    update(
      'an output file with an upper-case hash',
      outputs({ hash: digestOf(output).hash.toUpperCase(), sizeBytes: 200 }),
      invalid,
      /output file "out\/a": hash "[0-9A-F]{64}" is not lower-case hexadecimal/,
    ),
    update('an output file with no digest', outputs(null), invalid, /"out\/a" has no digest/),
    update(
      'an output file with a negative size',
      outputs({ hash: digestOf(output).hash, sizeBytes: -200 }),
      invalid,
      /output file "out\/a": digest size -200/,
    ),
    update(
      'a stdout digest with 63 digits',
      { stdoutDigest: { hash: ghost.hash.slice(1), sizeBytes: 3 } },
      invalid,
      /stdout digest: hash "[0-9a-f]{63}" has 63 hex digits/,
    ),
    update(
      'an output directory with no tree digest',
      { outputDirectories: [{ path: 'dir' }] },
      invalid,
      /output directory "dir" has no tree digest/,
    ),
    update(
      'an output directory whose tree is not a Tree message',
      { outputDirectories: [{ path: 'dir', treeDigest: digestOf(notTree) }] },
      invalid,
      /output directory "dir": tree_digest sha256\/[0-9a-f]{64}\/64 is not a Tree message/,
    ),
    update(
      'a tree naming a file with a malformed digest',
      { outputDirectories: [{ path: 'dir', treeDigest: digestOf(badTree) }] },
      invalid,
      /hash "XYZ"/,
    ),
    update(
      'an output file that is not in the cache',
      outputs(ghost),
      status.FAILED_PRECONDITION,
      new RegExp(`first sha256/${ghost.hash}/300`),
    ),
    update('no action_result', null, invalid, /carries no action_result/),
    {
      ...update('a malformed action digest', outputs(digestOf(output)), invalid, /has 3 hex/),
      requests: [{ actionDigest: { hash: 'abc', sizeBytes: 1 }, actionResult: outputs(null) }],
    },
    get('digest function 99', { actionDigest: action, digestFunction: 99 }, invalid, /99/),
    get('a negative size', { actionDigest: { ...action, sizeBytes: -1 } }, invalid, /size -1/),
    get(
      'a reserved word as instance',
      { instanceName: 'blobs', actionDigest: action },
      invalid,
      /reserved word "blobs"/,
    ),
    get('an unknown action', { actionDigest: action }, status.NOT_FOUND, /no action result for/),
  ];
}

function otherCases(): HostileCase[] {
  const absent = digestOf(blob('asset:absent', 10));
  const uri = 'urn:example:hostile';
  const invalid = status.INVALID_ARGUMENT;
  const unary = (
    rpc: HostileCase['rpc'],
    label: string,
    request: object,
    code: status,
    message: RegExp,
  ): HostileCase => ({
    name: `${rpc}: ${label}`,
    rpc,
    requests: [request],
    code,
    message,
  });
  return [
    unary('FetchBlob', 'no uris', {}, invalid, /FetchBlob names no uris/),
    unary('FetchBlob', 'an empty uri', { uris: [''] }, invalid, /a uri is empty/),
    unary(
      'FetchBlob',
      'digest function 99',
      { uris: [uri], digestFunction: 99 },
      invalid,
      /digest function 99/,
    ),
    unary(
      'FetchDirectory',
      'an instance with ".."',
      { instanceName: '..', uris: [uri] },
      invalid,
      SEGMENT_FAULT,
    ),
    unary(
      'PushBlob',
      'a malformed blob digest',
      { uris: [uri], blobDigest: { hash: 'G', sizeBytes: 1 } },
      invalid,
      /blob_digest: hash "G"/,
    ),
    unary(
      'PushBlob',
      'a blob that is not in the cache',
      { uris: [uri], blobDigest: absent },
      status.FAILED_PRECONDITION,
      new RegExp(absent.hash),
    ),
    unary(
      'PushDirectory',
      'a malformed referenced blob',
      { uris: [uri], rootDirectoryDigest: absent, referencesBlobs: [{ hash: '', sizeBytes: 0 }] },
      invalid,
      /references_blobs: digest hash is empty/,
    ),
    unary(
      'GetCapabilities',
      'an instance with ".."',
      { instanceName: 'x/..' },
      invalid,
      SEGMENT_FAULT,
    ),
    unary(
      'GetCapabilities',
      'an instance with a tab',
      { instanceName: 'x\ty' },
      invalid,
      /control character \(U\+0009\)/,
    ),
    unary(
      'QueryWriteStatus',
      'an upload nobody started',
      { resourceName: writeName(absent) },
      status.NOT_FOUND,
      /no upload named ".*" is in progress/,
    ),
  ];
}

export function requestCases(): HostileCase[] {
  return [...readCases(), ...actionCacheCases(), ...otherCases()];
}
