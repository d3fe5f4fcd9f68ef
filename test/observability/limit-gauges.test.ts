// The configured limits alert rules compare against, exported as gauges on a real server:
// tessera_upload_sessions_limit beside tessera_upload_sessions{state}, which follows real
// ByteStream Writes as they open, park and finish, and tessera_gc_budget_bytes, in S3 mode only.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type ClientWritableStream, status } from '@grpc/grpc-js';
import { type App, startApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import {
  codeOf,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
  writeProgress,
} from '../support/client.ts';
import { captureLogs } from '../support/logs.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { httpGet, parseScrape, type Sample, sampleValue } from '../support/scrape.ts';
import { getServices } from '../support/services/index.ts';

const MAX_CONCURRENT_UPLOADS = 3;
const GC_BUDGET_BYTES = 5 * 1024 * 1024 * 1024;
const KIB = 1024;
const POLL_DEADLINE_MS = 15_000;

async function scrape(address: string | undefined): Promise<Sample[]> {
  assert.ok(address, 'the server was started with an HTTP address');
  const answer = await httpGet(address, '/metrics');
  assert.equal(answer.status, 200);
  return parseScrape(answer.body);
}

/** A ByteStream Write the test sends piece by piece. */
function openWrite(client: TestClient, data: Buffer) {
  const name = uploadName(digestOf(data));
  const start = client.byteStream.Write as (
    cb: (error: Error | null, response?: { committedSize: number }) => void,
  ) => ClientWritableStream<object>;
  let call: ClientWritableStream<object> | undefined;
  const outcome = new Promise<{ code?: number; committedSize?: number }>((resolve) => {
    call = start.call(client.byteStream, (error, response) =>
      resolve(error ? { code: codeOf(error) } : { committedSize: response?.committedSize }),
    );
  });
  const stream = call as ClientWritableStream<object>;
  stream.on('error', () => undefined);
  return {
    name,
    outcome,
    send(from: number, to: number) {
      stream.write({
        resourceName: name,
        writeOffset: from,
        data: data.subarray(from, to),
        finishWrite: to === data.length,
      });
    },
    end: () => stream.end(),
  };
}

describe('limit gauges in S3 mode', () => {
  let rig: Rig;

  before(async () => {
    const { s3, redisUrl } = await getServices();
    rig = await startRig({
      s3,
      redisUrl,
      env: {
        TESSERA_HTTP_LISTEN: '127.0.0.1:0',
        TESSERA_MAX_CONCURRENT_UPLOADS: String(MAX_CONCURRENT_UPLOADS),
        TESSERA_GC_BUDGET_BYTES: String(GC_BUDGET_BYTES),
      },
    });
  });
  after(() => rig?.close());

  /** Upload sessions by state, from one scrape. */
  const sessions = async () => {
    const samples = await scrape(rig.app.httpAddress);
    return {
      writing: sampleValue(samples, 'tessera_upload_sessions', { state: 'writing' }),
      parked: sampleValue(samples, 'tessera_upload_sessions', { state: 'parked' }),
    };
  };

  /** Waits until the server holds `bytes` of the upload, as QueryWriteStatus reports it. */
  const received = async (name: string, bytes: number) => {
    const deadline = Date.now() + POLL_DEADLINE_MS;
    while ((await writeProgress(rig.client, name)) !== bytes) {
      assert.ok(Date.now() < deadline, `the server never held ${bytes} bytes of ${name}`);
      await delay(25);
    }
  };

  it('exports max_concurrent_uploads and gc_budget_bytes as configured', async () => {
    const samples = await scrape(rig.app.httpAddress);
    assert.equal(sampleValue(samples, 'tessera_upload_sessions_limit'), MAX_CONCURRENT_UPLOADS);
    assert.equal(sampleValue(samples, 'tessera_gc_budget_bytes'), GC_BUDGET_BYTES);
  });

  it('counts upload sessions as they are written, parked and finished', async () => {
    assert.deepEqual(await sessions(), { writing: 0, parked: 0 });

    const held = randomBlob(64 * KIB);
    const writing = openWrite(rig.client, held);
    writing.send(0, 16 * KIB);
    await received(writing.name, 16 * KIB);
    assert.deepEqual(await sessions(), { writing: 1, parked: 0 });

    // A Write that ends before finish_write leaves its session parked for a resume.
    const partial = randomBlob(32 * KIB);
    const broken = openWrite(rig.client, partial);
    broken.send(0, 8 * KIB);
    broken.end();
    assert.equal((await broken.outcome).code, status.INVALID_ARGUMENT);
    assert.deepEqual(await sessions(), { writing: 1, parked: 1 });

    writing.send(16 * KIB, held.length);
    writing.end();
    assert.equal((await writing.outcome).committedSize, held.length);
    assert.deepEqual(await sessions(), { writing: 0, parked: 1 });

    // The resume takes the parked session over and finishing it ends the session.
    const resumed = await rig.client.write(broken.name, partial, { offset: 8 * KIB });
    assert.equal(resumed, partial.length);
    assert.deepEqual(await sessions(), { writing: 0, parked: 0 });
  });
});

describe('limit gauges in embedded mode', () => {
  let app: App;
  let dataDir: string;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tessera-limit-gauges-'));
    const settings = loadConfig({
      argv: ['--listen', '127.0.0.1:0'],
      env: {
        TESSERA_DATA_DIR: dataDir,
        TESSERA_HTTP_LISTEN: '127.0.0.1:0',
        TESSERA_MAX_CONCURRENT_UPLOADS: String(MAX_CONCURRENT_UPLOADS),
      },
    });
    app = await startApp(settings, captureLogs(settings.logLevel).log);
  });
  after(async () => {
    await app?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('exports the upload limit but no GC budget, which only S3 mode has', async () => {
    const samples = await scrape(app.httpAddress);
    assert.equal(sampleValue(samples, 'tessera_upload_sessions_limit'), MAX_CONCURRENT_UPLOADS);
    assert.equal(sampleValue(samples, 'tessera_upload_sessions', { state: 'writing' }), 0);
    assert.equal(sampleValue(samples, 'tessera_gc_budget_bytes'), undefined);
  });
});
