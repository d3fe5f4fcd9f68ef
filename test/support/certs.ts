// Throw-away certificates for TLS tests, made with the openssl command (Debian's openssl package):
// a CA, a server certificate for 127.0.0.1 and localhost, a client certificate from the same CA,
// and a second CA with a client certificate of its own, which the server must refuse.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertSet {
  readonly dir: string;
  /** Paths of PEM files. */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly otherCaCert: string;
  readonly otherClientCert: string;
  readonly otherClientKey: string;
  read(path: string): Promise<Buffer>;
  remove(): Promise<void>;
}

const DAYS = '2';

export async function makeCerts(): Promise<CertSet> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-certs-'));
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

  const makeCa = (name: string) =>
    openssl(
      'req',
      ...['-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', at(`${name}.key`), '-out', at(`${name}.pem`), '-days', DAYS],
      ...['-subj', `/CN=Tessera test ${name}`],
      ...['-addext', 'basicConstraints=critical,CA:TRUE'],
      ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    );
  const makeLeaf = async (name: string, ca: string, extensions: string) => {
    await writeFile(at(`${name}.ext`), extensions);
    openssl(
      'req',
      ...['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', at(`${name}.key`), '-out', at(`${name}.csr`), '-subj', `/CN=${name}`],
    );
    openssl(
      'x509',
      ...['-req', '-in', at(`${name}.csr`), '-CA', at(`${ca}.pem`), '-CAkey', at(`${ca}.key`)],
      ...['-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', DAYS],
      ...['-extfile', at(`${name}.ext`), '-out', at(`${name}.pem`)],
    );
  };

  makeCa('ca');
  makeCa('other-ca');
  await makeLeaf(
    'server',
    'ca',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  await makeLeaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
  await makeLeaf('other-client', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caCert: at('ca.pem'),
    serverCert: at('server.pem'),
    serverKey: at('server.key'),
    clientCert: at('client.pem'),
    clientKey: at('client.key'),
    otherCaCert: at('other-ca.pem'),
    otherClientCert: at('other-client.pem'),
    otherClientKey: at('other-client.key'),
    read: (path) => readFile(path),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
