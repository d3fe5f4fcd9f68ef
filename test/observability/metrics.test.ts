// /metrics on a real server in S3 + Redis mode: after real uploads, reads, lookups and action-cache
// calls, each counter has moved by exactly what the calls did, under the right labels.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  blobName,
  codeOf,
  type Digest,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
} from '../support/client.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { httpGet, parseScrape, type Sample, sampleValue, sumOf } from '../support/scrape.ts';
import { getServices } from '../support/services/index.ts';

const STAGING_MAX_BYTES = 256 * 1024 * 1024;

describe('GET /metrics', () => {
  let rig: Rig;
  let client: TestClient;
  let samples: Sample[];
  let scrapeText: string;
  const streamed = randomBlob(300_000);
  const small = [randomBlob(1000), randomBlob(2000)];
  const absent = digestOf(randomBlob(10));

  before(async () => {
    const { s3, redisUrl } = await getServices();
    rig = await startRig({
      s3,
      redisUrl,
      env: {
        TESSERA_HTTP_LISTEN: '127.0.0.1:0',
        TESSERA_STAGING_MAX_BYTES: String(STAGING_MAX_BYTES),
      },
    });
    client = rig.client;

    const streamedDigest = digestOf(streamed);
    const smallDigests = small.map(digestOf);
    await client.write(uploadName(streamedDigest), streamed);
    await client.unary(client.cas, 'BatchUpdateBlobs', {
      requests: small.map((data) => ({ digest: digestOf(data), data })),
    });
    assert.ok((await client.read(blobName(streamedDigest))).data.equals(streamed));
    await client.unary(client.cas, 'BatchReadBlobs', { digests: [smallDigests[0]] });
    const found = await client.unary<{ missingBlobDigests: Digest[] }>(
      client.cas,
      'FindMissingBlobs',
      { blobDigests: [streamedDigest, ...smallDigests, absent] },
    );
    assert.deepEqual(found.missingBlobDigests, [absent]);

    const action = digestOf(randomBlob(64));
    await client.unary(client.actionCache, 'UpdateActionResult', {
      actionDigest: action,
      actionResult: { outputFiles: [{ path: 'out', digest: streamedDigest }] },
    });
    await client.unary(client.actionCache, 'GetActionResult', { actionDigest: action });
    await client.unary(client.actionCache, 'GetActionResult', { actionDigest: action });
    await assert.rejects(
      client.unary(client.actionCache, 'GetActionResult', { actionDigest: absent }),
      (e) => codeOf(e) === status.NOT_FOUND,
    );

    const address = rig.app.httpAddress;
    assert.ok(address, 'the rig was started with an HTTP address');
    const scrape = await httpGet(address, '/metrics');
    assert.equal(scrape.status, 200);
    scrapeText = scrape.body;
    samples = parseScrape(scrape.body);
  });
  after(() => rig?.close());

  it('counts each finished call by method and status code', () => {
    const calls = (method: string, code: string) =>
      sampleValue(samples, 'tessera_rpcs_total', { method, code });
    assert.equal(calls('Write', 'OK'), 1);
    assert.equal(calls('BatchUpdateBlobs', 'OK'), 1);
    assert.equal(calls('Read', 'OK'), 1);
    assert.equal(calls('BatchReadBlobs', 'OK'), 1);
    assert.equal(calls('FindMissingBlobs', 'OK'), 1);
    assert.equal(calls('UpdateActionResult', 'OK'), 1);
    assert.equal(calls('GetActionResult', 'OK'), 2);
    assert.equal(calls('GetActionResult', 'NOT_FOUND'), 1);
    const histogramCount = sampleValue(samples, 'tessera_rpc_duration_seconds_count', {
      method: 'GetActionResult',
      code: 'OK',
    });
    assert.equal(histogramCount, 2);
    const infBucket = sampleValue(samples, 'tessera_rpc_duration_seconds_bucket', {
      method: 'Write',
      code: 'OK',
      le: '+Inf',
    });
    assert.equal(infBucket, 1);
  });

  it('counts blob bytes in and out per method, and no transfer is left in flight', () => {
    const [first, second] = small as [Buffer, Buffer];
    assert.equal(
      sampleValue(samples, 'tessera_received_bytes_total', { method: 'Write' }),
      300_000,
    );
    assert.equal(
      sampleValue(samples, 'tessera_received_bytes_total', { method: 'BatchUpdateBlobs' }),
      first.length + second.length,
    );
    assert.equal(sampleValue(samples, 'tessera_sent_bytes_total', { method: 'Read' }), 300_000);
    assert.equal(
      sampleValue(samples, 'tessera_sent_bytes_total', { method: 'BatchReadBlobs' }),
      first.length,
    );
    for (const method of ['Write', 'Read', 'BatchUpdateBlobs', 'BatchReadBlobs']) {
      assert.equal(sampleValue(samples, 'tessera_transfers_in_flight', { method }), 0, method);
    }
  });

  it('counts FindMissingBlobs results and action-cache hits and misses', () => {
    const find = (result: string) =>
      sampleValue(samples, 'tessera_find_missing_digests_total', { result });
    assert.equal(find('present'), 3);
    assert.equal(find('missing'), 1);
    const lookups = (result: string) =>
      sampleValue(samples, 'tessera_action_cache_lookups_total', { result });
    assert.equal(lookups('hit'), 2);
    assert.equal(lookups('miss'), 1);
  });

  it('times S3 and Redis operations by name', () => {
    // Three blobs were stored (each one PutObject below the multipart threshold) and read back.
    assert.equal(
      sampleValue(samples, 'tessera_s3_requests_total', { operation: 'PutObject', outcome: 'ok' }),
      3,
    );
    assert.ok(
      (sampleValue(samples, 'tessera_s3_requests_total', {
        operation: 'GetObject',
        outcome: 'ok',
      }) ?? 0) >= 2,
    );
    assert.equal(
      sampleValue(samples, 'tessera_s3_request_duration_seconds_count', { operation: 'PutObject' }),
      3,
    );
    // Every command is counted once and timed once, whatever the commit path sends; the action
    // result alone is a plain SET.
    const redisCommands = samples.filter((x) => x.name === 'tessera_redis_commands_total');
    assert.ok(redisCommands.length > 0);
    for (const { labels } of redisCommands) {
      const command = labels.command as string;
      assert.equal(
        sampleValue(samples, 'tessera_redis_command_duration_seconds_count', { command }),
        sumOf(samples, 'tessera_redis_commands_total', { command }),
        command,
      );
    }
    assert.ok(
      sumOf(samples, 'tessera_redis_commands_total', { command: 'set', outcome: 'ok' }) >= 1,
    );
    assert.equal(sumOf(samples, 'tessera_redis_commands_total', { outcome: 'error' }), 0);
  });

  it('looks up a Write before its commit only when the first message is not the whole blob', async () => {
    const lookups = async () => {
      const now = parseScrape((await httpGet(rig.app.httpAddress as string, '/metrics')).body);
      return sumOf(now, 'tessera_redis_commands_total', { command: 'zmscore' });
    };
    const data = randomBlob(5000);
    const digest = digestOf(data);
    const before = await lookups();
    assert.equal(await client.write(uploadName(digest), data), data.length);
    // Sent whole again: the commit finds it committed (begin-put-4), still with no lookup.
    assert.equal(await client.write(uploadName(digest), data), data.length);
    assert.equal(await lookups(), before, 'no lookup for writes sent whole');
    assert.ok((await client.read(blobName(digest))).data.equals(data));

    const afterRead = await lookups();
    const parted = randomBlob(5000);
    const partedDigest = digestOf(parted);
    const name = uploadName(partedDigest);
    await client.write(name, parted.subarray(0, 1000), { finish: false }).catch(() => undefined);
    assert.equal(await client.write(name, parted, { offset: 1000 }), parted.length);
    assert.equal(await lookups(), afterRead + 2, 'one lookup per Write that did not send it all');
  });

  it('reports staging space and the commit-entry count', () => {
    assert.equal(sampleValue(samples, 'tessera_staging_reserved_bytes'), 0);
    assert.equal(sampleValue(samples, 'tessera_staging_limit_bytes'), STAGING_MAX_BYTES);
    // The rig's Redis prefix is its own, so exactly the three blobs above are committed there.
    assert.equal(sampleValue(samples, 'tessera_commit_entries'), 3);
    const stored = streamed.length + (small[0] as Buffer).length + (small[1] as Buffer).length;
    assert.equal(sampleValue(samples, 'tessera_committed_bytes'), stored);
    assert.ok((sampleValue(samples, 'tessera_commit_entries_age_seconds') ?? -1) >= 0);
  });

  it('reports the default limits, and no upload session left once every Write finished', () => {
    assert.equal(sampleValue(samples, 'tessera_upload_sessions_limit'), 256);
    assert.equal(sampleValue(samples, 'tessera_upload_sessions', { state: 'writing' }), 0);
    assert.equal(sampleValue(samples, 'tessera_upload_sessions', { state: 'parked' }), 0);
    assert.equal(sampleValue(samples, 'tessera_gc_budget_bytes'), 0);
  });

  it('includes the process metrics', () => {
    assert.ok((sampleValue(samples, 'process_cpu_user_seconds_total') ?? 0) > 0);
    assert.ok(sampleValue(samples, 'nodejs_heap_size_used_bytes') !== undefined);
    assert.match(scrapeText, /# TYPE tessera_rpcs_total counter/);
  });

  it('answers /healthz, /readyz with every check named, and 404 elsewhere', async () => {
    const address = rig.app.httpAddress as string;
    assert.deepEqual(await httpGet(address, '/healthz'), { status: 200, body: 'ok\n' });
    const ready = await httpGet(address, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body), {
      status: 'ready',
      ready: true,
      checks: [
        { name: 'redis', ok: true },
        { name: 's3', ok: true },
      ],
    });
    assert.equal((await httpGet(address, '/nothing')).status, 404);
  });
});
