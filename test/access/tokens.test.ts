// Bearer tokens from the authTokens setting, against a real server and real grpc-js clients:
// who is turned away with UNAUTHENTICATED, who with PERMISSION_DENIED, and what each may do.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type MethodDefinition, status } from '@grpc/grpc-js';
import type { Permission } from '../../src/auth/permissions.ts';
import {
  actionCacheService,
  byteStreamService,
  capabilitiesService,
  casService,
  fetchService,
  pushService,
} from '../../src/grpc/proto.ts';
import {
  blobName,
  codeOf,
  connect,
  digestOf,
  randomBlob,
  sha256,
  type TestClient,
  uploadName,
} from '../support/client.ts';
import { bearer, callMethod, type LoggedServer, newToken, startLogged } from './support.ts';

const FULL = newToken('full');
const READER = newToken('reader');
const WRITER = newToken('writer');
const TEAM = newToken('team');
const SOLO = newToken('solo');
const NO_READ = newToken('noread');
const NO_WRITE = newToken('nowrite');
const NO_AC_WRITE = newToken('noacwrite');
const UNKNOWN = newToken('unknown');

const AUTH_TOKENS = [
  `${FULL}:read+write+ac-write`,
  `${READER}:read`,
  `${WRITER}:read+write:*`,
  `${TEAM}:read+write+ac-write:team/*`,
  `${SOLO}:read+write:solo`,
  `${SOLO}:read:`,
  `${NO_READ}:write+ac-write:locked`,
  `${NO_WRITE}:read+ac-write:locked`,
  `${NO_AC_WRITE}:read+write:locked`,
].join(', ');

const LACKING: Record<Permission, string> = {
  read: NO_READ,
  write: NO_WRITE,
  'ac-write': NO_AC_WRITE,
};

/** The permission table of the README, by service definition. */
const EXPECTED: [Record<string, MethodDefinition<object, object>>, Record<string, Permission>][] = [
  [capabilitiesService, { GetCapabilities: 'read' }],
  [
    casService,
    {
      FindMissingBlobs: 'read',
      BatchUpdateBlobs: 'write',
      BatchReadBlobs: 'read',
      GetTree: 'read',
      SplitBlob: 'read',
      SpliceBlob: 'write',
    },
  ],
  [byteStreamService, { Read: 'read', Write: 'write', QueryWriteStatus: 'write' }],
  [actionCacheService, { GetActionResult: 'read', UpdateActionResult: 'ac-write' }],
  [fetchService, { FetchBlob: 'read', FetchDirectory: 'read' }],
  [pushService, { PushBlob: 'write', PushDirectory: 'write' }],
];

/** One request per method, each naming the instance "locked". */
function lockedRequest(method: string): object {
  const hash = sha256('x');
  const digest = { hash, sizeBytes: 1 };
  const upload = `locked/uploads/${randomUUID()}/blobs/${hash}/1`;
  const byResource: Record<string, object> = {
    Read: { resourceName: `locked/blobs/${hash}/1` },
    Write: { resourceName: upload, writeOffset: 0, data: Buffer.from('x'), finishWrite: true },
    QueryWriteStatus: { resourceName: upload },
  };
  return (
    byResource[method] ?? {
      instanceName: 'locked',
      actionDigest: digest,
      rootDigest: digest,
      blobDigest: digest,
      rootDirectoryDigest: digest,
      actionResult: {},
      uris: ['urn:tessera-test:x'],
    }
  );
}

let server: LoggedServer;
before(async () => {
  server = await startLogged({ TESSERA_AUTH_TOKENS: AUTH_TOKENS });
});
after(() => server.stop());

const expectCode = async (promise: Promise<unknown>, code: status, pattern?: RegExp) => {
  await assert.rejects(promise, (error: Error) => {
    assert.equal(codeOf(error), code, `expected ${status[code]}, got: ${error.message}`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
};

const clients: TestClient[] = [];
const clientOf = (
  token?: string,
  headers: Record<string, string> | undefined = token ? bearer(token) : undefined,
) => {
  const client = connect(server.address, headers ? { headers } : {});
  clients.push(client);
  return client;
};
after(() => {
  for (const client of clients) client.close();
});

const findMissing = (client: TestClient, hashes: string[], instanceName = '') =>
  client.unary<{ missingBlobDigests: { hash: string }[] }>(client.cas, 'FindMissingBlobs', {
    instanceName,
    blobDigests: hashes.map((hash) => ({ hash, sizeBytes: 1 })),
  });

describe('bearer tokens: every method', () => {
  for (const [definition, permissions] of EXPECTED) {
    for (const [name, method] of Object.entries(definition)) {
      const permission = permissions[name];
      it(`${method.path} needs a token and "${permission}" on the instance`, async () => {
        assert.ok(permission, `${method.path} is missing from the expected table`);
        const anonymous = await callMethod(server.address, method, lockedRequest(name));
        assert.equal(anonymous.code, status.UNAUTHENTICATED, anonymous.message);

        const lacking = await callMethod(
          server.address,
          method,
          lockedRequest(name),
          bearer(LACKING[permission]),
        );
        assert.equal(lacking.code, status.PERMISSION_DENIED, lacking.message);
        assert.ok(lacking.message.includes(`${name} on instance "locked"`), lacking.message);
        assert.ok(lacking.message.includes(`"${permission}" permission`), lacking.message);

        const allowed = await callMethod(server.address, method, lockedRequest(name), bearer(FULL));
        assert.ok(
          allowed.code !== status.PERMISSION_DENIED && allowed.code !== status.UNAUTHENTICATED,
          `${status[allowed.code]}: ${allowed.message}`,
        );
      });
    }
  }
});

describe('bearer tokens: authentication', () => {
  it('refuses a call without a token, saying how to send one', async () => {
    await expectCode(
      findMissing(clientOf(), []),
      status.UNAUTHENTICATED,
      /FindMissingBlobs needs a bearer token: send the metadata "authorization: Bearer <token>"/,
    );
  });

  it('refuses an unknown token without echoing it', async () => {
    await assert.rejects(findMissing(clientOf(UNKNOWN), []), (error: Error) => {
      assert.equal(codeOf(error), status.UNAUTHENTICATED);
      assert.match(error.message, /unknown or revoked/);
      assert.ok(!error.message.includes(UNKNOWN));
      return true;
    });
  });

  it('refuses authorization metadata that is not a bearer token', async () => {
    for (const value of [`Basic ${FULL}`, 'Bearer', `Bearer ${FULL} extra`, FULL]) {
      await expectCode(
        findMissing(clientOf(undefined, { authorization: value }), []),
        status.UNAUTHENTICATED,
        /not one "Bearer <token>" value/,
      );
    }
  });

  it('accepts the header as Bazel sends it with --remote_header=Authorization=Bearer …', async () => {
    const client = clientOf(undefined, { Authorization: `Bearer ${READER}` });
    assert.deepEqual((await findMissing(client, [])).missingBlobDigests, []);
  });
});

describe('bearer tokens: permissions', () => {
  it('lets a read-only token read but not write', async () => {
    const data = randomBlob(3_000);
    const digest = digestOf(data);
    assert.equal(await clientOf(WRITER).write(uploadName(digest), data), data.length);
    const reader = clientOf(READER);
    assert.ok((await reader.read(blobName(digest))).data.equals(data));
    await expectCode(
      reader.write(uploadName(digestOf(randomBlob(10))), randomBlob(10)),
      status.PERMISSION_DENIED,
      /token "authTokens#2" may not call Write on instance "": it lacks the "write" permission/,
    );
    const denied = randomBlob(20);
    await expectCode(
      reader.unary(reader.cas, 'BatchUpdateBlobs', {
        requests: [{ digest: digestOf(denied), data: denied }],
      }),
      status.PERMISSION_DENIED,
      /BatchUpdateBlobs/,
    );
    const missing = await findMissing(clientOf(FULL), [digestOf(denied).hash]);
    assert.equal(missing.missingBlobDigests.length, 1, 'a refused upload must not be stored');
  });

  it('applies prefix patterns to the instances below the prefix only', async () => {
    const team = clientOf(TEAM);
    for (const instance of ['team/a', 'team/a/b']) {
      const data = randomBlob(100);
      assert.equal(await team.write(uploadName(digestOf(data), instance), data), data.length);
    }
    for (const instance of ['team', 'other', '']) {
      await expectCode(
        team.write(uploadName(digestOf(randomBlob(5)), instance), randomBlob(5)),
        status.PERMISSION_DENIED,
        new RegExp(`instance "${instance}"`),
      );
    }
  });

  it('applies exact patterns, the empty instance included, to that instance only', async () => {
    const solo = clientOf(SOLO);
    const data = randomBlob(100);
    assert.equal(await solo.write(uploadName(digestOf(data), 'solo'), data), data.length);
    await findMissing(solo, [], '');
    await expectCode(findMissing(solo, [], 'solo/x'), status.PERMISSION_DENIED, /"solo\/x"/);
    await expectCode(
      solo.write(uploadName(digestOf(data)), data),
      status.PERMISSION_DENIED,
      /instance "": it lacks the "write" permission/,
    );
  });

  it('reads a blob by digest under any instance the token may read: the CAS is shared', async () => {
    const data = randomBlob(2_000);
    await clientOf(TEAM).write(uploadName(digestOf(data), 'team/x'), data);
    assert.ok((await clientOf(SOLO).read(blobName(digestOf(data)))).data.equals(data));
  });

  it('keeps ac-write apart from write', async () => {
    const action = digestOf(randomBlob(64));
    const update = (client: TestClient) =>
      client.unary(client.actionCache, 'UpdateActionResult', {
        actionDigest: action,
        actionResult: { exitCode: 0 },
      });
    await expectCode(
      update(clientOf(WRITER)),
      status.PERMISSION_DENIED,
      /UpdateActionResult on instance "": it lacks the "ac-write" permission/,
    );
    await update(clientOf(FULL));
    const reader = clientOf(READER);
    const got = await reader.unary<{ exitCode: number }>(reader.actionCache, 'GetActionResult', {
      actionDigest: action,
    });
    assert.equal(got.exitCode, 0);
  });
});

describe('bearer tokens: logs', () => {
  it('never logs a token, not even an unknown one', () => {
    assert.ok(server.lines.length > 10, 'the server logged its calls');
    const logged = server.lines.map((line) => JSON.stringify(line)).join('\n');
    for (const token of [FULL, READER, WRITER, TEAM, SOLO, NO_READ, NO_WRITE, NO_AC_WRITE]) {
      assert.ok(!logged.includes(token), 'a token appears in the log');
    }
    assert.ok(!logged.includes(UNKNOWN), 'an unknown token appears in the log');
    assert.ok(logged.includes('"caller":"authTokens#1"'), 'calls are logged with the token name');
  });
});
