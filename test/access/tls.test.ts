// TLS and mutual TLS on the gRPC port, with real grpc-js clients and certificates made by openssl
// for each run.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { startEmbedded } from '../conformance/harness.ts';
import { type CertSet, makeCerts } from '../support/certs.ts';
import {
  blobName,
  codeOf,
  connect,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
} from '../support/client.ts';

let certs: CertSet;
before(async () => {
  certs = await makeCerts();
});
after(() => certs.remove());

/** The server certificate names 127.0.0.1 and localhost; SNI takes only a host name. */
const AS_LOCALHOST = { 'grpc.ssl_target_name_override': 'localhost' };

const capabilities = (client: TestClient) =>
  client.unary<{ highApiVersion: { major: number } }>(client.capabilities, 'GetCapabilities', {});

async function assertRefused(client: TestClient): Promise<void> {
  try {
    await assert.rejects(capabilities(client), (error: Error) => {
      assert.equal(codeOf(error), status.UNAVAILABLE, error.message);
      return true;
    });
  } finally {
    client.close();
  }
}

describe('TLS', () => {
  it('serves clients that trust its CA and refuses plaintext', async () => {
    const server = await startEmbedded({
      TESSERA_TLS_CERT_FILE: certs.serverCert,
      TESSERA_TLS_KEY_FILE: certs.serverKey,
    });
    try {
      assert.equal(server.app.tls, 'tls');
      const secure = connect(server.address, {
        credentials: credentials.createSsl(await certs.read(certs.caCert)),
        channelOptions: AS_LOCALHOST,
      });
      try {
        const data = randomBlob(40_000);
        assert.equal(await secure.write(uploadName(digestOf(data)), data), data.length);
        assert.ok((await secure.read(blobName(digestOf(data)))).data.equals(data));
      } finally {
        secure.close();
      }
      await assertRefused(connect(server.address));
    } finally {
      await server.stop();
    }
  });

  it('is refused by a client that does not trust the server certificate', async () => {
    const server = await startEmbedded({
      TESSERA_TLS_CERT_FILE: certs.serverCert,
      TESSERA_TLS_KEY_FILE: certs.serverKey,
    });
    try {
      const credentialsOfOtherCa = credentials.createSsl(await certs.read(certs.otherCaCert));
      await assertRefused(
        connect(server.address, {
          credentials: credentialsOfOtherCa,
          channelOptions: AS_LOCALHOST,
        }),
      );
    } finally {
      await server.stop();
    }
  });
});

describe('mutual TLS', () => {
  let server: Awaited<ReturnType<typeof startEmbedded>>;
  before(async () => {
    server = await startEmbedded({
      TESSERA_TLS_CERT_FILE: certs.serverCert,
      TESSERA_TLS_KEY_FILE: certs.serverKey,
      TESSERA_TLS_CLIENT_CA_FILE: certs.caCert,
    });
  });
  after(() => server.stop());

  const clientWith = async (cert?: string, key?: string) =>
    connect(server.address, {
      credentials: credentials.createSsl(
        await certs.read(certs.caCert),
        key ? await certs.read(key) : null,
        cert ? await certs.read(cert) : null,
      ),
      channelOptions: AS_LOCALHOST,
    });

  it('serves a client whose certificate the client CA signed', async () => {
    assert.equal(server.app.tls, 'mtls');
    const client = await clientWith(certs.clientCert, certs.clientKey);
    try {
      assert.equal((await capabilities(client)).highApiVersion.major, 2);
    } finally {
      client.close();
    }
  });

  it('refuses a client without a certificate', async () => {
    await assertRefused(await clientWith());
  });

  it('refuses a client whose certificate another CA signed', async () => {
    await assertRefused(await clientWith(certs.otherClientCert, certs.otherClientKey));
  });

  it('refuses plaintext', async () => {
    await assertRefused(connect(server.address));
  });
});

describe('TLS configuration errors', () => {
  const startError = async (env: Record<string, string>): Promise<string> => {
    try {
      const server = await startEmbedded(env);
      await server.stop();
    } catch (error) {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      return error.message;
    }
    assert.fail('the server started');
  };

  it('names tlsCertFile and the file when the certificate cannot be read', async () => {
    const missing = join(certs.dir, 'no-such.pem');
    const message = await startError({
      TESSERA_TLS_CERT_FILE: missing,
      TESSERA_TLS_KEY_FILE: certs.serverKey,
    });
    assert.match(message, /tlsCertFile/);
    assert.ok(message.includes(missing), message);
    assert.match(message, /ENOENT/);
  });

  it('names tlsCertFile when the file holds no certificate', async () => {
    const message = await startError({
      TESSERA_TLS_CERT_FILE: certs.serverKey,
      TESSERA_TLS_KEY_FILE: certs.serverKey,
    });
    assert.match(message, /tlsCertFile = ".*server\.key": holds no PEM certificate/);
  });

  it('names tlsKeyFile when the key is not the certificate key, without showing the key', async () => {
    const message = await startError({
      TESSERA_TLS_CERT_FILE: certs.serverCert,
      TESSERA_TLS_KEY_FILE: certs.clientKey,
    });
    assert.match(message, /tlsKeyFile = ".*client\.key": is not the key of the certificate/);
    assert.doesNotMatch(message, /PRIVATE KEY/);
  });

  it('names tlsClientCaFile when the CA file is not a certificate', async () => {
    const junk = join(certs.dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    const message = await startError({
      TESSERA_TLS_CERT_FILE: certs.serverCert,
      TESSERA_TLS_KEY_FILE: certs.serverKey,
      TESSERA_TLS_CLIENT_CA_FILE: junk,
    });
    assert.match(message, /tlsClientCaFile = ".*junk\.pem": holds no PEM certificate/);
  });

  it('refuses a certificate without its key, naming where each came from', () => {
    assert.throws(
      () => loadConfig({ argv: ['--tls-cert-file', certs.serverCert], env: {} }),
      (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /tlsCertFile \(--tls-cert-file\) is set/);
        assert.match(error.message, /TESSERA_TLS_KEY_FILE/);
        return true;
      },
    );
  });
});
