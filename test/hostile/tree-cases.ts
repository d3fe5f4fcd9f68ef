// Hostile GetTree requests: negative page sizes, forged page tokens, and roots that are missing,
// malformed or not a Directory.
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { encodeMessage } from '../../src/grpc/proto.ts';
import { digestOf } from '../support/client.ts';
import { blob, type CaseContext, type HostileCase, invalid } from './cases.ts';

const H = digestOf(blob('tree', 10)).hash;

const token = (text: string) => Buffer.from(text).toString('base64url');

export function treeCases(): HostileCase[] {
  const leaf = encodeMessage('build.bazel.remote.execution.v2.Directory', {});
  const rootData = encodeMessage('build.bazel.remote.execution.v2.Directory', {
    directories: [{ name: 'leaf', digest: digestOf(leaf) }],
  });
  const root = digestOf(rootData);
  const setup = async (ctx: CaseContext) => {
    await ctx.commit(leaf);
    await ctx.commit(rootData);
  };
  const notDirectory = Buffer.alloc(64, 0xff);
  const unknown = digestOf(blob('tree:unknown', 50));
  return [
    ...[-1, -2147483648].map((pageSize) =>
      invalid(
        `GetTree: page_size ${pageSize}`,
        'GetTree',
        { rootDigest: root, pageSize },
        new RegExp(`page_size ${pageSize} is negative`),
        { setup },
      ),
    ),
    ...[
      ['not base64 of anything', 'forged!!', /was not issued by this server/],
      ['a bad hash', token('zz/1'), /not issued by this server: hash "zz"/],
      [
        'a size that is not a number',
        token(`${H}/ten`),
        /"[0-9a-f]{40}.*" is not a hash\/size pair/,
      ],
      ['a size of 2^53', token(`${H}/9007199254740992`), /not issued by this server: digest size/],
      ['an empty entry', token(`${H}/1,,${H}/2`), /"" is not a hash\/size pair/],
    ].map(([label, pageToken, message]) =>
      invalid(
        `GetTree: a forged page_token with ${label}`,
        'GetTree',
        { rootDigest: root, pageToken },
        message as RegExp,
        { setup },
      ),
    ),
    {
      name: 'GetTree: a forged page_token naming unknown directories finds none',
      rpc: 'GetTree',
      requests: [{ rootDigest: root, pageToken: token(`${unknown.hash}/50`) }],
      code: status.OK,
      message: /^OK$/,
      setup,
      verify: async (_ctx, outcome) => {
        const pages = outcome.responses as { directories: unknown[] }[];
        assert.equal(
          pages.reduce((n, page) => n + page.directories.length, 0),
          0,
        );
      },
    },
    {
      name: 'GetTree: a forged page_token naming a directory too large to hold',
      rpc: 'GetTree',
      requests: [{ rootDigest: root, pageToken: token(`${unknown.hash}/99999999999`) }],
      code: status.RESOURCE_EXHAUSTED,
      message: /99999999999 is larger than 67108864 bytes/,
      setup,
    },
    invalid('GetTree: no root digest', 'GetTree', {}, /digest is missing/),
    invalid(
      'GetTree: a malformed root digest',
      'GetTree',
      { rootDigest: { hash: H.toUpperCase(), sizeBytes: 1 } },
      /not lower-case hexadecimal/,
    ),
    {
      name: 'GetTree: a root that is not committed',
      rpc: 'GetTree',
      requests: [{ rootDigest: unknown }],
      code: status.NOT_FOUND,
      message: new RegExp(`root directory ${unknown.hash} is not in the cache`),
      uncommitted: [unknown],
    },
    invalid(
      'GetTree: a root that is not a Directory message',
      'GetTree',
      { rootDigest: digestOf(notDirectory) },
      /is not a Directory message/,
      { setup: async (ctx) => void (await ctx.commit(notDirectory)) },
    ),
  ];
}
