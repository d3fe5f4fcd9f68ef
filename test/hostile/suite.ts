// Runs every hostile case against one real server of a mode: the call must end with the expected
// code and a message naming the bad value, and afterwards the server must be unharmed (checks.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { ServerFactory, ServerUnderTest } from '../conformance/harness.ts';
import { connect, digestOf, type TestClient, uploadName } from '../support/client.ts';
import { casCases } from './cas-cases.ts';
import type { CaseContext, HostileCase } from './cases.ts';
import { assertUnharmed, queryWrite, waitUntil } from './checks.ts';
import { nameCases } from './name-cases.ts';
import { connectRaw, type RawClient } from './raw-client.ts';
import { requestCases } from './request-cases.ts';
import { treeCases } from './tree-cases.ts';
import { wireCases } from './wire-cases.ts';
import { writeCases } from './write-cases.ts';

/** Short, so that the sessions broken-off Writes keep are seen to be dropped. */
export const HOSTILE_ENV = { TESSERA_UPLOAD_IDLE_TIMEOUT_SECONDS: '1' };

export function allCases(): HostileCase[] {
  return [
    ...nameCases(),
    ...writeCases(),
    ...casCases(),
    ...treeCases(),
    ...requestCases(),
    ...wireCases(),
  ];
}

export function describeHostile(
  mode: string,
  start: ServerFactory,
  extraCases: () => HostileCase[] = () => [],
): void {
  describe(`hostile requests: ${mode}`, () => {
    let server: ServerUnderTest;
    let client: TestClient;
    let raw: RawClient;
    let ctx: CaseContext;

    before(async () => {
      server = await start(HOSTILE_ENV);
      client = connect(server.address);
      raw = connectRaw(server.address);
      ctx = {
        server,
        client,
        async commit(data) {
          const digest = digestOf(data);
          await client.write(uploadName(digest), data);
          return digest;
        },
      };
    });
    after(async () => {
      raw.close();
      client.close();
      await server.stop();
    });

    for (const c of [...allCases(), ...extraCases()]) {
      it(c.name, async () => {
        await c.setup?.(ctx);
        const settle = c.settle;
        const between = settle
          ? async (index: number) => {
              if (index !== settle.after) return;
              await waitUntil(`the server holds ${settle.bytes} bytes`, async () => {
                const progress = await queryWrite(ctx, settle.resourceName);
                return (progress.committedSize ?? -1) >= settle.bytes;
              });
            }
          : undefined;

        const outcome = await raw.call(c.rpc, c.requests, between);

        assert.equal(
          outcome.code,
          c.code,
          `expected ${status[c.code]}, got ${status[outcome.code]}: ${outcome.details}`,
        );
        assert.match(outcome.details, c.message);
        await c.verify?.(ctx, outcome);
        await assertUnharmed(ctx, c);
      });
    }
  });
}
