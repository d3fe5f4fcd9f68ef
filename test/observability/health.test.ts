// Readiness follows the backends on a live replica: /readyz, grpc.health.v1.Health and the
// tessera_ready / tessera_backend_up gauges turn 503 / NOT_SERVING / 0 when Redis goes away or S3
// fails, and come back by themselves once it answers again, without a restart. Health needs no token even when every other call does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type ClientReadableStream,
  credentials,
  makeClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { healthService } from '../../src/grpc/proto.ts';
import { callUnary, codeOf, connect, type Untyped } from '../support/client.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { type FaultProxy, startFaultProxy } from '../support/s3-fault-proxy.ts';
import { httpGet, parseScrape, sampleValue } from '../support/scrape.ts';
import { getServices, type RedisServer, startRedis } from '../support/services/index.ts';

const TOKEN = 'health-test-token-0123456789';
const WAIT_MS = 15_000;

interface Watch {
  readonly statuses: string[];
  /** Resolves once the watch has seen `status` (bounded by WAIT_MS). */
  seen(status: string): Promise<void>;
  readonly ended: Promise<ServiceError | undefined>;
  readonly call: ClientReadableStream<{ status: string }>;
}

function watch(client: Untyped, service: string): Watch {
  const call = (client.Watch as (req: object) => ClientReadableStream<{ status: string }>).call(
    client,
    { service },
  );
  const statuses: string[] = [];
  const waiters: { status: string; resolve: () => void }[] = [];
  call.on('data', (message: { status: string }) => {
    statuses.push(message.status);
    for (const waiter of waiters.filter((w) => w.status === message.status)) waiter.resolve();
  });
  const ended = new Promise<ServiceError | undefined>((resolve) => {
    call.on('error', (error: ServiceError) => resolve(error));
    call.on('end', () => resolve(undefined));
  });
  return {
    statuses,
    call,
    ended,
    seen(wanted) {
      if (statuses.at(-1) === wanted) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`watch saw ${statuses.join(', ')}, never ${wanted}`)),
          WAIT_MS,
        );
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        waiters.push({ status: wanted, resolve: done });
      });
    },
  };
}

/** Polls /readyz until it answers `wanted` (bounded); returns the body. */
async function readyzBecomes(address: string, wanted: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const answer = await httpGet(address, '/readyz');
    if (answer.status === wanted) return JSON.parse(answer.body) as Record<string, unknown>;
    if (Date.now() > deadline) throw new Error(`/readyz stayed ${answer.status}: ${answer.body}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** tessera_ready and tessera_backend_up{backend} from one /metrics scrape. */
async function readyGauges(address: string): Promise<Record<string, number | undefined>> {
  const answer = await httpGet(address, '/metrics');
  assert.equal(answer.status, 200);
  const samples = parseScrape(answer.body);
  return {
    ready: sampleValue(samples, 'tessera_ready'),
    redis: sampleValue(samples, 'tessera_backend_up', { backend: 'redis' }),
    s3: sampleValue(samples, 'tessera_backend_up', { backend: 's3' }),
  };
}

const check = (client: Untyped, service = '') =>
  callUnary<{ status: string }>(client, 'Check', { service });

describe('readiness and grpc.health.v1.Health', () => {
  let redis: RedisServer;
  let proxy: FaultProxy;
  let rig: Rig | undefined;
  let health: Untyped;
  let http: string;

  before(async () => {
    const { s3 } = await getServices();
    redis = await startRedis();
    proxy = await startFaultProxy(s3.endpoint);
    rig = await startRig({
      s3,
      redisUrl: redis.url,
      s3Endpoint: proxy.endpoint,
      env: {
        TESSERA_HTTP_LISTEN: '127.0.0.1:0',
        TESSERA_AUTH_TOKENS: `${TOKEN}:read+write`,
        TESSERA_SHUTDOWN_GRACE_SECONDS: '20',
      },
    });
    const Health = makeClientConstructor(healthService, 'health');
    health = new Health(rig.app.address, credentials.createInsecure()) as unknown as Untyped;
    http = rig.app.httpAddress as string;
  });
  after(async () => {
    health?.close();
    await rig?.close();
    await proxy?.close();
    await redis?.stop();
  });

  it('answers Check without a token while other calls need one', async () => {
    assert.deepEqual(await check(health), { status: 'SERVING' });
    assert.deepEqual(await check(health, 'build.bazel.remote.execution.v2.ActionCache'), {
      status: 'SERVING',
    });
    assert.deepEqual(await check(health, 'grpc.health.v1.Health'), { status: 'SERVING' });
    await assert.rejects(check(health, 'no.such.Service'), (e) => codeOf(e) === status.NOT_FOUND);
    const anonymous = connect((rig as Rig).app.address);
    try {
      await assert.rejects(
        anonymous.unary(anonymous.capabilities, 'GetCapabilities', {}),
        (e) => codeOf(e) === status.UNAUTHENTICATED,
      );
    } finally {
      anonymous.close();
    }
  });

  it('goes NOT_SERVING and 503 while Redis is down, and recovers when it is back', async () => {
    const watching = watch(health, '');
    await watching.seen('SERVING');

    await redis.kill();
    const down = await readyzBecomes(http, 503);
    assert.equal(down.status, 'not ready');
    const checks = down.checks as { name: string; ok: boolean }[];
    assert.deepEqual(
      checks.map(({ name, ok }) => ({ name, ok })),
      [
        { name: 'redis', ok: false },
        { name: 's3', ok: true },
      ],
    );
    assert.deepEqual(await check(health), { status: 'NOT_SERVING' });
    await watching.seen('NOT_SERVING');
    assert.deepEqual(await readyGauges(http), { ready: 0, redis: 0, s3: 1 });

    await redis.start();
    await readyzBecomes(http, 200);
    assert.deepEqual(await check(health), { status: 'SERVING' });
    assert.deepEqual(await readyGauges(http), { ready: 1, redis: 1, s3: 1 });
    await watching.seen('SERVING');
    assert.deepEqual(watching.statuses, ['SERVING', 'NOT_SERVING', 'SERVING']);
    watching.call.cancel();
    assert.equal(codeOf(await watching.ended), status.CANCELLED);
  });

  it('goes not ready while S3 fails HeadBucket, and recovers when it answers', async () => {
    proxy.inject({
      method: 'HEAD',
      path: /^\/[^/?]+\/?(\?.*)?$/,
      count: Number.POSITIVE_INFINITY,
      fault: { kind: 'status', status: 503 },
    });
    try {
      const down = await readyzBecomes(http, 503);
      const checks = down.checks as { name: string; ok: boolean }[];
      assert.deepEqual(
        checks.map(({ name, ok }) => ({ name, ok })),
        [
          { name: 'redis', ok: true },
          { name: 's3', ok: false },
        ],
      );
      assert.deepEqual(await check(health), { status: 'NOT_SERVING' });
      assert.deepEqual(await readyGauges(http), { ready: 0, redis: 1, s3: 0 });
    } finally {
      proxy.clear();
    }
    await readyzBecomes(http, 200);
    assert.deepEqual(await check(health), { status: 'SERVING' });
    assert.deepEqual(await readyGauges(http), { ready: 1, redis: 1, s3: 1 });
  });

  it('sends SERVICE_UNKNOWN to a Watch of an unknown service and keeps it open', async () => {
    const watching = watch(health, 'no.such.Service');
    await watching.seen('SERVICE_UNKNOWN');
    watching.call.cancel();
    assert.equal(codeOf(await watching.ended), status.CANCELLED);
  });

  it('ends open watches with NOT_SERVING at shutdown instead of holding it up', async () => {
    const watching = watch(health, '');
    await watching.seen('SERVING');
    await (rig as Rig).close();
    rig = undefined;
    // A watch that held the shutdown up would be cut when the grace period ran out, with an error
    // status rather than OK.
    assert.equal(await watching.ended, undefined, 'the watch ended with OK');
    assert.deepEqual(watching.statuses, ['SERVING', 'NOT_SERVING']);
  });
});
