// Property-based fuzzing at the gRPC level, against one real server of a mode. Every call must end
// with a status from the set its method may answer (never INTERNAL or UNKNOWN), the server must
// keep answering, a Write stream that delivers exactly the blob's bytes commits it, and no stream,
// batch or name ever gets a blob committed whose bytes do not match its digest.
//
// Runs are bounded (200 per property) and seeded: a failure prints the seed and the path of the
// shrunk counterexample. TESSERA_FUZZ_SEED and TESSERA_FUZZ_RUNS replay a failure or search
// longer, e.g. TESSERA_FUZZ_SEED=7 TESSERA_FUZZ_RUNS=5000 npm test -- test/hostile.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { type Digest, fromWireDigest, hashBytes } from '../../src/cas/digest.ts';
import { parseWriteResourceName } from '../../src/grpc/resource-name.ts';
import type { ServerFactory, ServerUnderTest } from '../conformance/harness.ts';
import { connect, digestOf, type TestClient } from '../support/client.ts';
import type { CaseContext } from './cases.ts';
import { assertNotCommitted, queryWrite, waitUntil } from './checks.ts';
import {
  digestFunctionArb,
  instanceArb,
  resourceNameArb,
  wireDigestArb,
} from './fuzz-arbitraries.ts';
import { connectRaw, type Outcome, type RawClient, type Rpc } from './raw-client.ts';
import { HOSTILE_ENV } from './suite.ts';
import { playSteps, streamArb } from './write-model.ts';

const RUNS = Number(process.env.TESSERA_FUZZ_RUNS ?? 200);
const SEED = Number(process.env.TESSERA_FUZZ_SEED ?? 20_260_301);
const { OK, INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE, RESOURCE_EXHAUSTED } = status;

/** The codes each method may answer to hostile input. */
const ALLOWED: Partial<Record<Rpc, readonly status[]>> = {
  Read: [OK, INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE],
  Write: [OK, INVALID_ARGUMENT],
  QueryWriteStatus: [OK, INVALID_ARGUMENT, NOT_FOUND],
  FindMissingBlobs: [OK, INVALID_ARGUMENT],
  BatchReadBlobs: [OK, INVALID_ARGUMENT],
  BatchUpdateBlobs: [OK, INVALID_ARGUMENT],
  GetActionResult: [NOT_FOUND, INVALID_ARGUMENT],
};
const BATCH_READ_ENTRY = [OK, NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED];
const BATCH_UPDATE_ENTRY = [OK, INVALID_ARGUMENT];

function assertAllowed(rpc: Rpc, outcome: Outcome, input: unknown): void {
  const allowed = ALLOWED[rpc] ?? [];
  assert.ok(
    allowed.includes(outcome.code),
    `${rpc} answered ${status[outcome.code]} (${outcome.details}) to ${JSON.stringify(input)}`,
  );
}

type BatchEntry = { digest: { hash: string; sizeBytes: number } | null; status: { code: number } };

function batchEntries(outcome: Outcome): BatchEntry[] {
  const [response] = outcome.responses as { responses: BatchEntry[] }[];
  return response?.responses ?? [];
}

export function describeFuzz(mode: string, start: ServerFactory): void {
  describe(`fuzzing over gRPC: ${mode} (seed ${SEED}, ${RUNS} runs per property)`, () => {
    let server: ServerUnderTest;
    let client: TestClient;
    let raw: RawClient;
    let ctx: CaseContext;
    let blobs = 0;

    before(async () => {
      server = await start(HOSTILE_ENV);
      client = connect(server.address);
      raw = connectRaw(server.address);
      ctx = { server, client, commit: () => Promise.reject(new Error('not used here')) };
    });
    after(async () => {
      raw.close();
      client.close();
      await server.stop();
    });

    /** If the server committed `digest`, it must serve bytes that hash to it. */
    const assertNeverWrong = async (digest: Digest) => {
      if (!(await server.isCommitted(digest))) return;
      const fn = digest.fn === 'BLAKE3' ? 'blake3/' : '';
      const { data } = await client.read(`blobs/${fn}${digest.hash}/${digest.size}`);
      assert.equal(await hashBytes(digest.fn, data), digest.hash, 'a wrong blob was committed');
    };
    const survives = async () => {
      await client.unary(client.capabilities, 'GetCapabilities', {});
    };
    /** Broken-off uploads from the runs expire after the idle timeout, leaving nothing. */
    const leavesNoSpool = () =>
      waitUntil('every spool file of the runs is gone', async () => {
        return (await server.stagingFiles()).length === 0;
      });
    const run = <Ts>(property: fc.IAsyncProperty<Ts>) =>
      fc.assert(property, { numRuns: RUNS, seed: SEED, endOnFailure: true });

    it('Read, Write and QueryWriteStatus answer any resource name within their codes', async () => {
      await run(
        fc.asyncProperty(
          resourceNameArb,
          fc.integer({ min: -2, max: 400 }),
          fc.integer({ min: -2, max: 400 }),
          fc.uint8Array({ maxLength: 64 }),
          fc.boolean(),
          async (resourceName, readOffset, readLimit, bytes, finishWrite) => {
            const read = await raw.call('Read', [{ resourceName, readOffset, readLimit }]);
            assertAllowed('Read', read, { resourceName, readOffset, readLimit });

            const data = Buffer.from(bytes);
            const message = { resourceName, writeOffset: 0, data, finishWrite };
            const write = await raw.call('Write', [message]);
            assertAllowed('Write', write, { resourceName, finishWrite, bytes: data.length });
            if (write.code === OK)
              await assertNeverWrong(parseWriteResourceName(resourceName).digest);

            const query = await raw.call('QueryWriteStatus', [{ resourceName }]);
            assertAllowed('QueryWriteStatus', query, { resourceName });
            await survives();
          },
        ),
      );
      await leavesNoSpool();
    });

    it('CAS and action cache calls answer any digests within their codes', async () => {
      const entryArb = fc.record({
        data: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
        digest: fc.option(wireDigestArb, { freq: 2 }),
        compressor: fc.constantFrom(undefined, undefined, 'IDENTITY', 'ZSTD', 7),
      });
      await run(
        fc.asyncProperty(
          fc.array(entryArb, { maxLength: 5 }),
          fc.option(digestFunctionArb, { freq: 2 }),
          instanceArb,
          async (entries, fn, instanceName) => {
            const digestFunction = fn ?? undefined;
            const wire = entries.map((e) => e.digest ?? digestOf(e.data));
            const common = {
              instanceName,
              ...(digestFunction === undefined ? {} : { digestFunction }),
            };
            const input = { ...common, digests: wire };

            const missing = await raw.call('FindMissingBlobs', [{ ...common, blobDigests: wire }]);
            assertAllowed('FindMissingBlobs', missing, input);

            const requests = entries.map((e, i) => ({
              digest: wire[i],
              data: e.data,
              compressor: e.compressor,
            }));
            const update = await raw.call('BatchUpdateBlobs', [{ ...common, requests }]);
            assertAllowed('BatchUpdateBlobs', update, input);
            for (const entry of batchEntries(update)) {
              assert.ok(BATCH_UPDATE_ENTRY.includes(entry.status.code), JSON.stringify(entry));
            }

            const read = await raw.call('BatchReadBlobs', [{ ...common, digests: wire }]);
            assertAllowed('BatchReadBlobs', read, input);
            for (const entry of batchEntries(read)) {
              assert.ok(BATCH_READ_ENTRY.includes(entry.status.code), JSON.stringify(entry));
            }

            for (const actionDigest of wire) {
              const action = await raw.call('GetActionResult', [{ ...common, actionDigest }]);
              assertAllowed('GetActionResult', action, { ...common, actionDigest });
            }
            for (const digest of wire) {
              let parsed: Digest;
              try {
                parsed = fromWireDigest(digest, digestFunction);
              } catch {
                continue;
              }
              await assertNeverWrong(parsed);
            }
            await survives();
          },
        ),
      );
      await leavesNoSpool();
    });

    it('a Write stream commits its blob exactly when it delivers the blob', async () => {
      await run(
        fc.asyncProperty(streamArb, async ({ payload, steps, firstNamed }) => {
          const tag = createHash('sha256').update(`fuzz:${mode}:${blobs++}`).digest();
          const blob = Buffer.concat([tag.subarray(0, 16), payload]);
          const digest = digestOf(blob);
          const id = `fuzz-${blobs}`;
          const name = `uploads/${id}/blobs/${digest.hash}/${blob.length}`;
          const names = {
            name,
            withMetadata: `${name}/client/metadata`,
            otherUpload: `uploads/${id}-other/blobs/${digest.hash}/${blob.length}`,
            otherSize: `uploads/${id}/blobs/${digest.hash}/${blob.length + 1}`,
          };
          const { messages, expected } = playSteps(blob, steps, names, firstNamed);

          const outcome = await raw.call('Write', messages);

          assertAllowed('Write', outcome, { steps });
          assert.equal(
            outcome.code === OK,
            expected.kind === 'committed',
            `answered ${status[outcome.code]} (${outcome.details}), expected ${expected.kind}`,
          );
          const progress = await queryWrite(ctx, name);
          if (expected.kind === 'committed') {
            assert.ok((await client.read(`blobs/${digest.hash}/${blob.length}`)).data.equals(blob));
            assert.equal(progress.complete, true);
          } else {
            await assertNotCommitted(ctx, digest);
            if (expected.kind === 'resumable') {
              assert.equal(progress.code, OK, `no session to resume: ${outcome.details}`);
              assert.equal(progress.committedSize, expected.received);
            } else {
              assert.equal(progress.code, NOT_FOUND, `a session was left: ${outcome.details}`);
            }
          }
          await survives();
        }),
      );
      await leavesNoSpool();
    });
  });
}
