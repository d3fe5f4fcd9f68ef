import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type { CacheCapabilities, Digest, Directory } from '../../src/grpc/messages.ts';
import {
  type ActionResult,
  actionCacheService,
  byteStreamService,
  capabilitiesService,
  casService,
  decodeMessage,
  encodeMessage,
  fetchService,
  lookupMessageType,
  pushService,
  type Tree,
} from '../../src/grpc/proto.ts';

const V2 = 'build.bazel.remote.execution.v2';

function digest(hexChar: string, sizeBytes: number): Digest {
  return { hash: hexChar.repeat(64), sizeBytes };
}

const EMPTY_DIRECTORY: Directory = {
  files: [],
  directories: [],
  symlinks: [],
  nodeProperties: null,
};

const ACTION_RESULT: ActionResult = {
  outputFiles: [
    {
      path: 'out/lib.a',
      digest: digest('a', 1_048_576),
      isExecutable: false,
      contents: Buffer.alloc(0),
      nodeProperties: null,
    },
    {
      path: 'out/tool',
      // Above 2^32, so int64 sizes must survive as exact numbers.
      digest: digest('b', 6_000_000_000),
      isExecutable: true,
      contents: Buffer.from('#!/bin/sh\n'),
      nodeProperties: {
        properties: [{ name: 'owner', value: 'ci' }],
        mtime: { seconds: 1_700_000_000, nanos: 5 },
        unixMode: { value: 0o755 },
      },
    },
  ],
  outputDirectories: [
    {
      path: 'out/gen',
      treeDigest: digest('c', 212),
      isTopologicallySorted: true,
      rootDirectoryDigest: digest('d', 80),
    },
  ],
  exitCode: 3,
  stdoutRaw: Buffer.from('built\n'),
  stdoutDigest: digest('e', 6),
  stderrRaw: Buffer.alloc(0),
  stderrDigest: null,
  executionMetadata: {
    worker: 'local',
    queuedTimestamp: { seconds: 1_700_000_000, nanos: 0 },
    workerStartTimestamp: null,
    workerCompletedTimestamp: null,
    inputFetchStartTimestamp: null,
    inputFetchCompletedTimestamp: null,
    executionStartTimestamp: { seconds: 1_700_000_001, nanos: 250_000_000 },
    executionCompletedTimestamp: { seconds: 1_700_000_002, nanos: 0 },
    outputUploadStartTimestamp: null,
    outputUploadCompletedTimestamp: null,
    auxiliaryMetadata: [{ type_url: 'type.example/x', value: Buffer.from([1, 2, 3]) }],
    virtualExecutionDuration: { seconds: 1, nanos: 0 },
  },
  outputFileSymlinks: [],
  outputDirectorySymlinks: [{ path: 'out/old', target: 'gen', nodeProperties: null }],
  outputSymlinks: [{ path: 'out/link', target: 'tool', nodeProperties: null }],
};

const TREE: Tree = {
  root: {
    files: [{ name: 'BUILD', digest: digest('1', 10), isExecutable: false, nodeProperties: null }],
    directories: [{ name: 'sub', digest: digest('2', 0) }],
    symlinks: [{ name: 'latest', target: 'sub', nodeProperties: null }],
    nodeProperties: null,
  },
  children: [EMPTY_DIRECTORY],
};

describe('encodeMessage and decodeMessage', () => {
  it('round-trips an ActionResult with every kind of field set', () => {
    const bytes = encodeMessage(`${V2}.ActionResult`, ACTION_RESULT);

    assert.ok(Buffer.isBuffer(bytes));
    assert.deepEqual(decodeMessage<ActionResult>(`${V2}.ActionResult`, bytes), ACTION_RESULT);
  });

  it('round-trips a Tree, including an empty child directory', () => {
    const bytes = encodeMessage(`${V2}.Tree`, TREE);

    assert.deepEqual(decodeMessage<Tree>(`${V2}.Tree`, bytes), TREE);
  });

  it('produces the same bytes and objects as the grpc-js serializers', () => {
    const getActionResult = method(actionCacheService, 'GetActionResult');

    const bytes = encodeMessage(`${V2}.ActionResult`, ACTION_RESULT);

    assert.deepEqual(getActionResult.responseSerialize(ACTION_RESULT), bytes);
    assert.deepEqual(
      getActionResult.responseDeserialize(bytes),
      decodeMessage(`${V2}.ActionResult`, bytes),
    );
  });

  it('fills defaults for fields left out when encoding', () => {
    const bytes = encodeMessage(`${V2}.ActionResult`, { exitCode: 1 });

    const decoded = decodeMessage<ActionResult>(`${V2}.ActionResult`, bytes);
    assert.equal(decoded.exitCode, 1);
    assert.deepEqual(decoded.outputFiles, []);
    assert.deepEqual(decoded.stdoutRaw, Buffer.alloc(0));
    assert.equal(decoded.executionMetadata, null);
  });

  it('keeps an enum number this build does not know as a number', () => {
    const bytes = encodeMessage(`${V2}.CacheCapabilities`, { digestFunctions: ['SHA256', 99] });

    const decoded = decodeMessage<CacheCapabilities>(`${V2}.CacheCapabilities`, bytes);
    assert.deepEqual(decoded.digestFunctions, ['SHA256', 99]);
    assert.equal(decoded.symlinkAbsolutePathStrategy, 'UNKNOWN');
  });

  it('accepts a leading dot on the type name', () => {
    const bytes = encodeMessage(`.${V2}.Digest`, digest('f', 7));

    assert.deepEqual(decodeMessage<Digest>(`${V2}.Digest`, bytes), digest('f', 7));
  });

  it('rejects a name that is not a message type', () => {
    assert.throws(() => lookupMessageType(`${V2}.NoSuchMessage`), /not a message type/);
    assert.throws(() => lookupMessageType(`${V2}.ActionCache`), /not a message type/);
  });

  it('rejects bytes that are not a valid encoding', () => {
    // Field 1, length-delimited, claiming 10 bytes that never come.
    assert.throws(() => decodeMessage(`${V2}.Digest`, Uint8Array.from([0x0a, 0x0a, 0x61])));
  });
});

// biome-ignore lint/suspicious/noExplicitAny: grpc-js types method definitions with any.
type AnyMethod = MethodDefinition<any, any>;

function method(service: ServiceDefinition, name: string): AnyMethod {
  const found = (service as Record<string, AnyMethod | undefined>)[name];
  assert.ok(found, `method ${name} is missing`);
  return found;
}

type Shape = 'unary' | 'server-streaming' | 'client-streaming' | 'bidi';

function shapeOf(definition: AnyMethod): Shape {
  if (definition.requestStream) return definition.responseStream ? 'bidi' : 'client-streaming';
  return definition.responseStream ? 'server-streaming' : 'unary';
}

const SERVICES: [string, ServiceDefinition, Record<string, Shape>][] = [
  [`${V2}.Capabilities`, capabilitiesService, { GetCapabilities: 'unary' }],
  [
    `${V2}.ContentAddressableStorage`,
    casService,
    {
      FindMissingBlobs: 'unary',
      BatchUpdateBlobs: 'unary',
      BatchReadBlobs: 'unary',
      GetTree: 'server-streaming',
      SplitBlob: 'unary',
      SpliceBlob: 'unary',
    },
  ],
  [
    `${V2}.ActionCache`,
    actionCacheService,
    { GetActionResult: 'unary', UpdateActionResult: 'unary' },
  ],
  [
    'google.bytestream.ByteStream',
    byteStreamService,
    { Read: 'server-streaming', Write: 'client-streaming', QueryWriteStatus: 'unary' },
  ],
  [
    'build.bazel.remote.asset.v1.Fetch',
    fetchService,
    { FetchBlob: 'unary', FetchDirectory: 'unary' },
  ],
  ['build.bazel.remote.asset.v1.Push', pushService, { PushBlob: 'unary', PushDirectory: 'unary' }],
];

describe('service definitions', () => {
  for (const [fullName, service, expected] of SERVICES) {
    it(`exposes exactly the ${fullName} methods with their streaming shapes`, () => {
      assert.deepEqual(Object.keys(service).sort(), Object.keys(expected).sort());

      for (const [name, shape] of Object.entries(expected)) {
        const definition = method(service, name);
        assert.equal(shapeOf(definition), shape, `${name} streaming shape`);
        assert.equal(definition.path, `/${fullName}/${name}`);
      }
    });
  }
});
