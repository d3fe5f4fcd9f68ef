// What must hold after any request, however hostile: nothing was committed for a bad digest, no
// upload session lingers unless the case expects one (and that one is resumable, then dropped
// when idle), no spool file is left in staging, and the server still answers Capabilities and a
// small write and read.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { type ServiceError, status } from '@grpc/grpc-js';
import { fromWireDigest } from '../../src/cas/digest.ts';
import { blobName, type Digest, digestOf, randomBlob, uploadName } from '../support/client.ts';
import type { CaseContext, HostileCase } from './cases.ts';

/** How long a condition may take to come true: well past the 1 s upload idle timeout. */
const SETTLE_MS = 5_000;

export async function waitUntil(what: string, condition: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + SETTLE_MS;
  while (!(await condition())) {
    assert.ok(performance.now() < deadline, `timed out waiting until ${what}`);
    await nextTurn();
  }
}

export interface WriteProgress {
  readonly code: status;
  readonly committedSize?: number;
  readonly complete?: boolean;
}

export async function queryWrite(ctx: CaseContext, resourceName: string): Promise<WriteProgress> {
  try {
    const reply = await ctx.client.unary<{ committedSize: number; complete: boolean }>(
      ctx.client.byteStream,
      'QueryWriteStatus',
      { resourceName },
    );
    return { code: status.OK, ...reply };
  } catch (error) {
    return { code: (error as ServiceError).code };
  }
}

export async function assertNotCommitted(ctx: CaseContext, digest: Digest): Promise<void> {
  assert.equal(
    await ctx.server.isCommitted(fromWireDigest(digest, undefined)),
    false,
    `${digest.hash}/${digest.sizeBytes} was committed`,
  );
  const { missingBlobDigests } = await ctx.client.unary<{ missingBlobDigests: Digest[] }>(
    ctx.client.cas,
    'FindMissingBlobs',
    { blobDigests: [digest] },
  );
  assert.deepEqual(missingBlobDigests, [digest], 'FindMissingBlobs must report it missing');
}

/** A broken-off Write's session: resumable at once, gone with its files once idle. */
export async function assertSessionResumableThenDropped(
  ctx: CaseContext,
  session: NonNullable<HostileCase['keepsSession']>,
): Promise<void> {
  const progress = await queryWrite(ctx, session.resourceName);
  assert.equal(progress.code, status.OK, 'the broken-off upload must be resumable');
  assert.equal(progress.complete, false);
  const resumeAt = progress.committedSize ?? -1;
  if (session.checkpointed)
    assert.ok(resumeAt >= 0 && resumeAt <= session.received, `at ${resumeAt}`);
  else assert.equal(resumeAt, session.received);

  await waitUntil('the idle upload session is dropped', async () => {
    return (await queryWrite(ctx, session.resourceName)).code === status.NOT_FOUND;
  });
}

/** Resource names of a Write case's messages, for looking up sessions it may have left. */
function writeNames(c: HostileCase): string[] {
  if (c.rpc !== 'Write') return [];
  return c.requests.flatMap((r) => {
    const name = Buffer.isBuffer(r) ? '' : (r as { resourceName?: string }).resourceName;
    return name ? [name] : [];
  });
}

export async function assertUnharmed(ctx: CaseContext, c: HostileCase): Promise<void> {
  for (const digest of c.uncommitted ?? []) await assertNotCommitted(ctx, digest);

  if (c.keepsSession) {
    await assertSessionResumableThenDropped(ctx, c.keepsSession);
  } else {
    for (const name of writeNames(c)) {
      const left = await queryWrite(ctx, name);
      assert.ok(
        !(left.code === status.OK && left.complete === false),
        `an upload session for ${name} was left behind at ${left.committedSize}`,
      );
    }
  }
  await waitUntil('no .spool file is left in staging', async () => {
    return (await ctx.server.stagingFiles()).length === 0;
  });

  await ctx.client.unary(ctx.client.capabilities, 'GetCapabilities', {});
  const probe = randomBlob(300, randomUUID());
  const digest = digestOf(probe);
  assert.equal(await ctx.client.write(uploadName(digest), probe), probe.length);
  assert.ok((await ctx.client.read(blobName(digest))).data.equals(probe));
}
