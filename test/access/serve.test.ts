// `tessera serve` as an operator runs it with TLS and tokens from the environment: the listening
// line says what is on, clients with the CA and a token get in, others do not, SIGHUP rereads the
// tokens file, bad files stop it with exit code 2, and no token reaches its output.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { credentials, status } from '@grpc/grpc-js';
import { type CertSet, makeCerts } from '../support/certs.ts';
import { codeOf, connect, sha256 } from '../support/client.ts';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';
import { bearer, newToken, replaceFile } from './support.ts';

const ENTRY = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));
const CI = newToken('ci');
const FROM_FILE = newToken('file');
const LATER = newToken('later');

const tokensFile = (name: string, token: string) =>
  JSON.stringify({
    tokens: [{ name, sha256: sha256(token), grants: [{ instance: '*', permissions: ['read'] }] }],
  });

let certs: CertSet;
let dir: string;
before(async () => {
  certs = await makeCerts();
  dir = await mkdtemp(join(tmpdir(), 'tessera-serve-access-'));
});
after(async () => {
  await certs.remove();
  await rm(dir, { recursive: true, force: true });
});

describe('tessera serve with TLS and tokens', () => {
  let server: TesseraProcess;
  let tokensPath: string;
  before(async () => {
    tokensPath = join(dir, 'tokens.json');
    await writeFile(tokensPath, tokensFile('from-file', FROM_FILE));
    server = await startTessera({
      env: {
        TESSERA_DATA_DIR: join(dir, 'data'),
        TESSERA_TLS_CERT_FILE: certs.serverCert,
        TESSERA_TLS_KEY_FILE: certs.serverKey,
        TESSERA_AUTH_TOKENS: `${CI}:read+write+ac-write`,
        TESSERA_AUTH_TOKENS_FILE: tokensPath,
        TESSERA_LOG_LEVEL: 'trace',
      },
    });
  });

  const findMissing = async (token?: string): Promise<status> => {
    const client = connect(server.address, {
      credentials: credentials.createSsl(await certs.read(certs.caCert)),
      channelOptions: { 'grpc.ssl_target_name_override': 'localhost' },
      headers: token ? bearer(token) : {},
    });
    try {
      await client.unary(client.cas, 'FindMissingBlobs', { blobDigests: [] });
      return status.OK;
    } catch (error) {
      return codeOf(error) ?? status.UNKNOWN;
    } finally {
      client.close();
    }
  };

  it('says in its listening line that TLS and tokens are on', () => {
    const listening = server.logs.find((line) => line.msg === 'listening');
    assert.equal(listening?.tls, 'tls');
    assert.match(String(listening?.auth), /1 from authTokens, 1 from .*tokens\.json/);
  });

  it('serves a token over TLS and refuses a call without one', async () => {
    assert.equal(await findMissing(CI), status.OK);
    assert.equal(await findMissing(FROM_FILE), status.OK);
    assert.equal(await findMissing(), status.UNAUTHENTICATED);
    assert.equal(await findMissing(LATER), status.UNAUTHENTICATED);
  });

  it('rereads the tokens file on SIGHUP', async () => {
    // The file watch may reload first; wait for the reload that follows the signal.
    const reloaded = new Promise<void>((resolve) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const signalled = output.indexOf('reloading the auth tokens file');
        if (signalled < 0 || !output.includes('auth tokens file reloaded', signalled)) return;
        server.child.stdout?.off('data', onData);
        resolve();
      };
      server.child.stdout?.on('data', onData);
    });
    await replaceFile(tokensPath, tokensFile('later', LATER));
    server.child.kill('SIGHUP');
    await reloaded;
    assert.equal(await findMissing(LATER), status.OK);
    assert.equal(await findMissing(FROM_FILE), status.UNAUTHENTICATED);
  });

  it('prints no token anywhere in its log', async () => {
    assert.equal(await server.stop(), 0);
    const output = server.logs.map((line) => JSON.stringify(line)).join('\n');
    assert.match(output, /"caller":"authTokens#1"/);
    for (const token of [CI, FROM_FILE, LATER]) {
      assert.ok(!output.includes(token), 'a token appears in the log');
    }
  });
});

describe('tessera serve with unusable security files', () => {
  const serve = (env: Record<string, string>) =>
    spawnSync(process.execPath, [ENTRY, 'serve', '--listen', '127.0.0.1:0'], {
      env: { ...process.env, TESSERA_DATA_DIR: join(dir, 'bad'), ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });

  it('exits with 2 naming tlsKeyFile and the file', () => {
    const result = serve({
      TESSERA_TLS_CERT_FILE: certs.serverCert,
      TESSERA_TLS_KEY_FILE: join(dir, 'missing.key'),
    });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /tlsKeyFile = ".*missing\.key": cannot be read: ENOENT/);
  });

  it('exits with 2 naming authTokensFile, without printing the tokens', async () => {
    const broken = join(dir, 'broken.json');
    await writeFile(broken, JSON.stringify({ tokens: [{ name: 'x', token: CI, grants: [] }] }));
    const result = serve({
      TESSERA_AUTH_TOKENS_FILE: broken,
      TESSERA_AUTH_TOKENS: `${LATER}:read`,
    });
    assert.equal(result.status, 2, result.stderr);
    assert.ok(result.stderr.includes(`authTokensFile = "${broken}"`), result.stderr);
    assert.ok(!result.stderr.includes(CI) && !result.stderr.includes(LATER));
    assert.ok(!result.stdout.includes(CI) && !result.stdout.includes(LATER));
  });
});
