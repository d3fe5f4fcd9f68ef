// Certificate rotation without a restart: the server reads its TLS files again on reload() (what
// SIGHUP calls) and on a timer. A consistent new pair takes over for new connections; a
// half-finished rotation (the new certificate next to the old key) is refused and the old pair
// keeps serving.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { startEmbedded } from '../conformance/harness.ts';
import { type CertSet, makeCerts } from '../support/certs.ts';
import { codeOf, connect } from '../support/client.ts';

/** The server certificates name 127.0.0.1 and localhost; SNI takes only a host name. */
const AS_LOCALHOST = { 'grpc.ssl_target_name_override': 'localhost' };

let first: CertSet;
let second: CertSet;
let dir: string;
before(async () => {
  [first, second] = await Promise.all([makeCerts(), makeCerts()]);
  dir = await mkdtemp(join(tmpdir(), 'tessera-tls-reload-'));
});
after(async () => {
  await Promise.all([first.remove(), second.remove()]);
  await rm(dir, { recursive: true, force: true });
});

/** The status of a GetCapabilities call over a new channel that trusts only `set`'s CA. */
async function callTrusting(address: string, set: CertSet): Promise<status> {
  const client = connect(address, {
    credentials: credentials.createSsl(await set.read(set.caCert)),
    channelOptions: AS_LOCALHOST,
  });
  try {
    await client.unary(client.capabilities, 'GetCapabilities', {});
    return status.OK;
  } catch (error) {
    return codeOf(error) ?? status.UNKNOWN;
  } finally {
    client.close();
  }
}

async function install(set: CertSet, files: { cert: string; key: string }, part = 'both') {
  if (part !== 'key') await copyFile(set.serverCert, files.cert);
  if (part !== 'cert') await copyFile(set.serverKey, files.key);
}

describe('TLS certificate reload', () => {
  it('replaces a consistent new pair and refuses a half-finished rotation', async () => {
    const files = { cert: join(dir, 'a-cert.pem'), key: join(dir, 'a-key.pem') };
    await install(first, files);
    const server = await startEmbedded({
      TESSERA_TLS_CERT_FILE: files.cert,
      TESSERA_TLS_KEY_FILE: files.key,
      TESSERA_TLS_RELOAD_INTERVAL_SECONDS: '0',
    });
    try {
      assert.equal(await callTrusting(server.address, first), status.OK);
      assert.equal(await callTrusting(server.address, second), status.UNAVAILABLE);
      assert.deepEqual(await server.app.reloadTls(), { kind: 'unchanged' });

      await install(second, files, 'cert');
      const refused = await server.app.reloadTls();
      assert.equal(refused.kind, 'refused');
      assert.match(refused.kind === 'refused' ? refused.error : '', /is not the key/);
      assert.equal(await callTrusting(server.address, first), status.OK);

      await install(second, files, 'key');
      const replaced = await server.app.reloadTls();
      assert.equal(replaced.kind, 'replaced');
      assert.equal(await callTrusting(server.address, second), status.OK);
      assert.equal(await callTrusting(server.address, first), status.UNAVAILABLE);
    } finally {
      await server.stop();
    }
  });

  it('picks up rotated files on its own at the reload interval', async () => {
    const files = { cert: join(dir, 'b-cert.pem'), key: join(dir, 'b-key.pem') };
    await install(first, files);
    const server = await startEmbedded({
      TESSERA_TLS_CERT_FILE: files.cert,
      TESSERA_TLS_KEY_FILE: files.key,
      TESSERA_TLS_RELOAD_INTERVAL_SECONDS: '1',
    });
    try {
      assert.equal(await callTrusting(server.address, first), status.OK);
      await install(second, files);
      const deadline = Date.now() + 10_000;
      let outcome = await callTrusting(server.address, second);
      while (outcome !== status.OK && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        outcome = await callTrusting(server.address, second);
      }
      assert.equal(outcome, status.OK, 'the rotated certificate was not picked up within 10 s');
    } finally {
      await server.stop();
    }
  });
});
