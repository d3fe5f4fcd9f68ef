// `tessera upload | cat` against a server that demands TLS, bearer tokens and, in the second
// part, client certificates: the real command as a child process against a real server process.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CertSet, makeCerts } from '../support/certs.ts';
import { runTessera } from '../support/cli.ts';
import { sha256 } from '../support/client.ts';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';

const WRITER = `writer-${randomBytes(12).toString('hex')}`;
const READER = `reader-${randomBytes(12).toString('hex')}`;

let certs: CertSet;
let dir: string;
let blobPath: string;
let blobDigest: string;
before(async () => {
  certs = await makeCerts();
  dir = await mkdtemp(join(tmpdir(), 'tessera-cli-secure-'));
  const blob = randomBytes(300_000);
  blobPath = join(dir, 'blob.bin');
  await writeFile(blobPath, blob);
  blobDigest = `${sha256(blob)}/${blob.length}`;
});
after(async () => {
  await certs.remove();
  await rm(dir, { recursive: true, force: true });
});

/** A server process with TLS on, its own data dir, and `env` on top. */
async function startSecured(name: string, env: Record<string, string>) {
  const server = await startTessera({
    env: {
      TESSERA_DATA_DIR: join(dir, name),
      TESSERA_TLS_CERT_FILE: certs.serverCert,
      TESSERA_TLS_KEY_FILE: certs.serverKey,
      ...env,
    },
  });
  return { server, port: server.address.split(':').at(-1) ?? '' };
}

describe('client commands against a server with TLS and tokens', () => {
  let server: TesseraProcess;
  let port: string;
  before(async () => {
    ({ server, port } = await startSecured('data', {
      TESSERA_AUTH_TOKENS: `${WRITER}:read+write,${READER}:read`,
    }));
  });
  after(async () => {
    await server.stop();
  });

  it('uploads and reads with a CA file and a token from the environment', async () => {
    const upload = await runTessera(
      ['upload', '--server', `localhost:${port}`, '--tls-ca-file', certs.caCert, blobPath],
      { TESSERA_TOKEN: WRITER },
    );
    assert.equal(upload.status, 0, upload.stderr);
    assert.equal(upload.stdout.toString('utf8').trim(), blobDigest);

    const tokenFile = join(dir, 'reader.token');
    await writeFile(tokenFile, `${READER}\n`);
    const cat = await runTessera([
      'cat',
      '--server',
      `grpcs://localhost:${port}`,
      '--tls-ca-file',
      certs.caCert,
      '--token-file',
      tokenFile,
      blobDigest,
    ]);
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(sha256(cat.stdout), blobDigest.split('/')[0]);
  });

  it('reports a missing token as a failed call naming the status (exit 1)', async () => {
    const run = await runTessera(
      ['cat', '--server', `localhost:${port}`, '--tls-ca-file', certs.caCert, blobDigest],
      { TESSERA_TOKEN: '' },
    );
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /UNAUTHENTICATED/);
  });

  it('reports a token without the permission as PERMISSION_DENIED (exit 1)', async () => {
    const other = join(dir, 'other.bin');
    await writeFile(other, randomBytes(1000));
    const run = await runTessera(
      ['upload', '--server', `localhost:${port}`, '--tls-ca-file', certs.caCert, other],
      { TESSERA_TOKEN: READER },
    );
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /PERMISSION_DENIED/);
  });

  it('cannot reach a TLS server over plaintext, or one signed by an unknown CA (exit 3)', async () => {
    const plain = await runTessera(['cat', '--server', `grpc://localhost:${port}`, blobDigest], {
      TESSERA_TOKEN: READER,
    });
    assert.equal(plain.status, 3, plain.stderr);
    const wrongCa = await runTessera(
      ['cat', '--server', `localhost:${port}`, '--tls-ca-file', certs.otherCaCert, blobDigest],
      { TESSERA_TOKEN: READER },
    );
    assert.equal(wrongCa.status, 3, wrongCa.stderr);
    assert.match(wrongCa.stderr, /unreachable/);
  });

  it('refuses contradictory or unreadable security flags as usage errors (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['--tls-cert-file', certs.clientCert], /--tls-cert-file and --tls-key-file go together/],
      [['--tls-ca-file', join(dir, 'absent.pem')], /--tls-ca-file ".*absent\.pem" cannot be read/],
      [['--server', `grpc://localhost:${port}`, '--tls'], /plaintext.*TLS flag/],
      [['--server', `https://localhost:${port}`], /scheme must be grpc:\/\/ or grpcs:\/\//],
      [['--token-file', join(dir, 'empty.token')], /--token-file holds no token/],
    ];
    await writeFile(join(dir, 'empty.token'), '\n');
    for (const [flags, message] of cases) {
      const run = await runTessera(['cat', ...flags, blobDigest]);
      assert.equal(run.status, 2, `${flags.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
    }
  });
});

describe('client commands against a server that requires client certificates', () => {
  let server: TesseraProcess;
  let port: string;
  before(async () => {
    ({ server, port } = await startSecured('mtls-data', {
      TESSERA_TLS_CLIENT_CA_FILE: certs.caCert,
    }));
  });
  after(async () => {
    await server.stop();
  });

  it('gets through with a client certificate and is turned away without one', async () => {
    const tls = ['--server', `localhost:${port}`, '--tls-ca-file', certs.caCert];
    const upload = await runTessera([
      'upload',
      ...tls,
      '--tls-cert-file',
      certs.clientCert,
      '--tls-key-file',
      certs.clientKey,
      blobPath,
    ]);
    assert.equal(upload.status, 0, upload.stderr);
    assert.equal(upload.stdout.toString('utf8').trim(), blobDigest);

    const anonymous = await runTessera(['cat', ...tls, blobDigest]);
    assert.equal(anonymous.status, 3, anonymous.stderr);
    const stranger = await runTessera([
      'cat',
      ...tls,
      '--tls-cert-file',
      certs.otherClientCert,
      '--tls-key-file',
      certs.otherClientKey,
      blobDigest,
    ]);
    assert.equal(stranger.status, 3, stranger.stderr);
  });
});
