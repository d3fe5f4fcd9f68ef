// One JSON log line per finished call, carrying what an operator needs to tie it to a build: the
// method, instance, digest, bytes, duration and status, and the tool, invocation and action the
// client named in its requestmetadata-bin header. A malformed header never fails the call, and no
// line ever holds the bearer token.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Metadata, status } from '@grpc/grpc-js';
import { encodeMessage } from '../../src/grpc/proto.ts';
import { REQUEST_METADATA_HEADER } from '../../src/grpc/request-metadata.ts';
import {
  blobName,
  codeOf,
  connect,
  digestOf,
  randomBlob,
  type TestClient,
  type Untyped,
  uploadName,
} from '../support/client.ts';
import { type EmbeddedTessera, startEmbeddedTessera } from '../support/tessera.ts';

const TOKEN = 'rpc-logs-test-token-0123456789abcdef';
const CLIENT_METADATA = {
  toolDetails: { toolName: 'bazel', toolVersion: '7.4.1' },
  actionId: 'a1b2c3d4e5',
  toolInvocationId: '5f1c1d0e-8f00-4c4e-9a55-0a5b7e0c3a11',
  correlatedInvocationsId: 'build-42',
  actionMnemonic: 'CppCompile',
  targetId: '//src:server',
  configurationId: 'k8-fastbuild',
};

type Line = Record<string, unknown>;

/** Calls a unary method with explicit metadata; rejects with the ServiceError. */
function callWith<Res>(client: Untyped, method: string, request: object, metadata: Metadata) {
  return new Promise<Res>((resolve, reject) => {
    const fn = client[method] as (
      req: object,
      md: Metadata,
      cb: (e: Error | null, r: Res) => void,
    ) => void;
    fn.call(client, request, metadata, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

describe('per-call log lines', () => {
  let server: EmbeddedTessera;
  let client: TestClient;
  let logs: Line[];
  const blob = randomBlob(50_000);
  const digest = digestOf(blob);
  const absent = digestOf(randomBlob(10));
  let malformedAnswer: { missingBlobDigests: unknown[] } | undefined;

  before(async () => {
    server = await startEmbeddedTessera({
      logLevel: 'debug',
      env: { TESSERA_AUTH_TOKENS: `${TOKEN}:read+write+ac-write` },
    });
    const header = encodeMessage(
      'build.bazel.remote.execution.v2.RequestMetadata',
      CLIENT_METADATA,
    );
    client = connect(server.server.address, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const withClientMetadata = new Metadata();
    withClientMetadata.set(REQUEST_METADATA_HEADER, header);
    await client.write(uploadName(digest, 'team'), blob);
    await client.read(blobName(digest, 'team'));
    await callWith(
      client.cas,
      'FindMissingBlobs',
      { instanceName: 'team', blobDigests: [digest, absent] },
      withClientMetadata,
    );
    await assert.rejects(
      callWith(client.actionCache, 'GetActionResult', { actionDigest: absent }, withClientMetadata),
      (e) => codeOf(e) === status.NOT_FOUND,
    );
    const malformed = new Metadata();
    malformed.set(REQUEST_METADATA_HEADER, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]));
    malformedAnswer = await callWith(
      client.cas,
      'FindMissingBlobs',
      { instanceName: 'malformed', blobDigests: [absent] },
      malformed,
    );
    client.close();
    await server.stop();
    logs = server.server.logs;
  });
  after(async () => {
    client?.close();
    await server?.stop();
  });

  const finished = (method: string, extra: (line: Line) => boolean = () => true) =>
    logs.filter((l) => l.method === method && l.status !== undefined && extra(l));

  it('logs a finished Write with its digest, instance, bytes, duration and status', () => {
    const [line, ...more] = finished('Write');
    assert.equal(more.length, 0);
    assert.ok(line);
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'ok');
    assert.equal(line.status, 'OK');
    assert.equal(line.instance, 'team');
    assert.equal(line.digest, `sha256/${digest.hash}/${digest.sizeBytes}`);
    assert.equal(line.bytesReceived, blob.length);
    assert.equal(typeof line.ms, 'number');
    const [read] = finished('Read');
    assert.equal(read?.bytesSent, blob.length);
    assert.equal(read?.digest, line.digest);
  });

  it('carries the client request metadata, also on a failed call', () => {
    const [found] = finished('FindMissingBlobs', (l) => l.instance === 'team');
    assert.ok(found);
    const expected = {
      tool: 'bazel',
      toolVersion: '7.4.1',
      invocationId: CLIENT_METADATA.toolInvocationId,
      correlatedInvocationsId: 'build-42',
      actionId: 'a1b2c3d4e5',
      actionMnemonic: 'CppCompile',
      targetId: '//src:server',
      configurationId: 'k8-fastbuild',
    };
    for (const [key, value] of Object.entries(expected)) assert.equal(found[key], value, key);
    assert.equal(found.digests, 2);
    assert.equal(found.missing, 1);
    const [miss] = finished('GetActionResult');
    assert.ok(miss);
    assert.equal(miss.status, 'NOT_FOUND');
    assert.equal(miss.level, 'info');
    assert.equal(miss.invocationId, CLIENT_METADATA.toolInvocationId);
    assert.match(String(miss.msg), /no action result for/);
  });

  it('answers a call whose metadata header does not decode, and says so at debug', () => {
    assert.deepEqual(malformedAnswer?.missingBlobDigests.length, 1);
    const [line] = finished('FindMissingBlobs', (l) => l.instance === 'malformed');
    assert.equal(line?.status, 'OK');
    assert.equal(line?.tool, undefined);
    const ignored = logs.find((l) => l.msg === 'request metadata ignored');
    assert.equal(ignored?.level, 'debug');
    assert.match(String(ignored?.problem), /not a RequestMetadata/);
  });

  it('never logs the bearer token', () => {
    assert.ok(logs.length > 5);
    for (const line of logs) assert.doesNotMatch(JSON.stringify(line), new RegExp(TOKEN));
  });
});
