// The tokens file: checked at startup, and reloaded while the server runs — a new token works
// without a restart, a removed one stops working, and a broken file keeps the tokens before it.
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { TokenFileWatcher } from '../../src/auth/token-file.ts';
import type { TokenEntry } from '../../src/auth/tokens.ts';
import { ConfigError } from '../../src/config/load.ts';
import { codeOf, connect, sha256 } from '../support/client.ts';
import { captureLogs } from '../support/logs.ts';
import {
  bearer,
  type LoggedServer,
  newToken,
  nextReload,
  replaceFile,
  startLogged,
} from './support.ts';

const FIRST = newToken('first');
const SECOND = newToken('second');
const STATIC = newToken('static');
const IN_BROKEN_FILE = newToken('broken');

const tokensFile = (...tokens: object[]) => JSON.stringify({ tokens }, null, 2);
const readerByHash = (name: string, token: string) => ({
  name,
  sha256: sha256(token),
  grants: [{ instance: '*', permissions: ['read'] }],
});
const readerByToken = (name: string, token: string) => ({
  name,
  token,
  grants: [{ instance: '', permissions: ['read'] }],
});

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-token-file-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** The status a FindMissingBlobs call with this token ends with. */
async function statusWith(server: LoggedServer, token: string): Promise<status> {
  const client = connect(server.address, { headers: bearer(token) });
  try {
    await client.unary(client.cas, 'FindMissingBlobs', { blobDigests: [] });
    return status.OK;
  } catch (error) {
    return codeOf(error) ?? status.UNKNOWN;
  } finally {
    client.close();
  }
}

describe('tokens file at startup', () => {
  it('accepts tokens given by SHA-256 or in plain', async () => {
    const path = join(dir, 'startup.json');
    await writeFile(path, tokensFile(readerByHash('ci', FIRST), readerByToken('dev', SECOND)));
    const server = await startLogged({ TESSERA_AUTH_TOKENS_FILE: path });
    try {
      assert.equal(await statusWith(server, FIRST), status.OK);
      assert.equal(await statusWith(server, SECOND), status.OK);
      assert.equal(await statusWith(server, STATIC), status.UNAUTHENTICATED);
      assert.match(server.app.access.summary, /2 from .*startup\.json/);
    } finally {
      await server.stop();
    }
  });

  it('is a config error naming the setting, the file and the fault, never the token', async () => {
    const path = join(dir, 'broken-at-start.json');
    const entry = readerByToken('dev', IN_BROKEN_FILE);
    await writeFile(
      path,
      tokensFile({ ...entry, grants: [{ instance: '', permissions: ['rd'] }] }),
    );
    await assert.rejects(startLogged({ TESSERA_AUTH_TOKENS_FILE: path }), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.ok(error.message.includes(`authTokensFile = "${path}"`), error.message);
      assert.match(error.message, /tokens\[0\]\.grants\[0\]\.permissions\[0\]/);
      assert.ok(!error.message.includes(IN_BROKEN_FILE));
      return true;
    });
  });

  it('is a config error when the file is missing or not JSON', async () => {
    const missing = join(dir, 'no-such.json');
    await assert.rejects(startLogged({ TESSERA_AUTH_TOKENS_FILE: missing }), /ENOENT/);
    const notJson = join(dir, 'not-json.json');
    await writeFile(notJson, `{"tokens": [{"token": "${IN_BROKEN_FILE}"`);
    await assert.rejects(startLogged({ TESSERA_AUTH_TOKENS_FILE: notJson }), (error: Error) => {
      assert.match(error.message, /not valid JSON/);
      assert.ok(!error.message.includes(IN_BROKEN_FILE));
      return true;
    });
  });
});

describe('tokens file reloads', () => {
  let server: LoggedServer;
  let path: string;
  before(async () => {
    path = join(dir, 'reloaded.json');
    await writeFile(path, tokensFile(readerByHash('first', FIRST)));
    server = await startLogged({
      TESSERA_AUTH_TOKENS_FILE: path,
      TESSERA_AUTH_TOKENS: `${STATIC}:read`,
    });
  });
  after(() => server.stop());

  it('puts a new token in force and revokes a removed one, without a restart', async () => {
    assert.equal(await statusWith(server, FIRST), status.OK);
    assert.equal(await statusWith(server, SECOND), status.UNAUTHENTICATED);

    const reloaded = nextReload(server.app, (outcome) => outcome.ok);
    await replaceFile(path, tokensFile(readerByHash('second', SECOND)));
    assert.deepEqual(await reloaded, { ok: true, tokens: 1 });

    assert.equal(await statusWith(server, SECOND), status.OK);
    assert.equal(await statusWith(server, FIRST), status.UNAUTHENTICATED);
    assert.equal(await statusWith(server, STATIC), status.OK, 'authTokens stay in force');
  });

  it('keeps the tokens in force when the new file is broken, and logs why', async () => {
    const refused = nextReload(server.app, (outcome) => !outcome.ok);
    const broken = readerByToken('third', IN_BROKEN_FILE);
    await replaceFile(path, tokensFile({ ...broken, grants: [] }));
    const outcome = await refused;
    assert.match(outcome.problem ?? '', /tokens\[0\]\.grants/);

    assert.equal(await statusWith(server, SECOND), status.OK);
    assert.equal(await statusWith(server, IN_BROKEN_FILE), status.UNAUTHENTICATED);
    const logged = server.lines.find((line) => line.msg?.toString().includes('refused'));
    assert.equal(logged?.level, 'error');
    assert.equal(logged?.file, path);
  });

  it('keeps the tokens in force when the file is deleted', async () => {
    const refused = nextReload(server.app, (outcome) => !outcome.ok);
    await unlink(path);
    assert.match((await refused).problem ?? '', /ENOENT/);
    assert.equal(await statusWith(server, SECOND), status.OK);
  });

  it('refuses a file that repeats a token of authTokens', async () => {
    const refused = nextReload(server.app, (outcome) => !outcome.ok);
    await replaceFile(path, tokensFile(readerByHash('again', STATIC)));
    assert.match((await refused).problem ?? '', /"authTokens#1" and "again" are the same token/);
    assert.equal(await statusWith(server, SECOND), status.OK);
  });

  it('logs no token while loading, refusing and reloading', () => {
    const logged = server.lines.map((line) => JSON.stringify(line)).join('\n');
    for (const token of [FIRST, SECOND, STATIC, IN_BROKEN_FILE]) {
      assert.ok(!logged.includes(token), 'a token appears in the log');
    }
  });
});

/**
 * `promise`, or a rejection after `ms`. The watcher's timers do not hold the process open (a server
 * does), so without this pending timer the test runner would see nothing left to wait for.
 */
async function withDeadline<T>(promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no reload within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe('TokenFileWatcher', () => {
  it('notices a change by polling when the filesystem sends no events', async () => {
    const path = join(dir, 'polled.json');
    const first = tokensFile(readerByHash('first', FIRST));
    await writeFile(path, first);
    const applied: TokenEntry[][] = [];
    const watcher = new TokenFileWatcher(
      { path, log: captureLogs().log, apply: (e) => applied.push(e), watch: false, pollMs: 10 },
      first,
    );
    try {
      const reloaded = new Promise((resolve) => watcher.onReload(resolve));
      await replaceFile(path, tokensFile(readerByHash('a', FIRST), readerByHash('b', SECOND)));
      assert.deepEqual(await withDeadline(reloaded), { ok: true, tokens: 2 });
      assert.deepEqual(
        applied.at(-1)?.map((entry) => entry.name),
        ['a', 'b'],
      );
    } finally {
      watcher.close();
    }
  });

  it('reads the file again on reload() even when it looks unchanged (SIGHUP)', async () => {
    const path = join(dir, 'sighup.json');
    const text = tokensFile(readerByHash('only', FIRST));
    await writeFile(path, text);
    const watcher = new TokenFileWatcher(
      { path, log: captureLogs().log, apply: () => undefined, watch: false, pollMs: 60_000 },
      text,
    );
    try {
      const reloaded = new Promise((resolve) => watcher.onReload(resolve));
      await watcher.reload();
      assert.deepEqual(await withDeadline(reloaded), { ok: true, tokens: 1 });
    } finally {
      watcher.close();
    }
  });
});
