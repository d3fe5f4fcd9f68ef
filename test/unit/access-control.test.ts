// Access control without a network: instance patterns, the two token sources, the config errors
// they give (which never quote a token), and the rule that every method of every registered
// service carries a permission.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DirectoryAssetStore } from '../../src/asset/directory-asset-store.ts';
import { matchesInstance, parseInstancePattern } from '../../src/auth/permissions.ts';
import {
  createTokenTable,
  parseStaticTokens,
  parseTokenFile,
  sha256Of,
  type TokenEntry,
} from '../../src/auth/tokens.ts';
import { Cas } from '../../src/cas/cas.ts';
import { UploadRegistry } from '../../src/cas/uploads.ts';
import { ConfigError, loadConfig, redactedSummary } from '../../src/config/load.ts';
import { flagNameOf } from '../../src/config/schema.ts';
import { DirectoryStore } from '../../src/embedded/directory-store.ts';
import { permissionOf } from '../../src/grpc/handlers.ts';
import { assertAccessChecked, createServices } from '../../src/grpc/server.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createReadiness } from '../../src/observability/readiness.ts';

const TOKEN = 'unit-test-token-0123456789abcdef';
const OTHER = 'another-token-abcdef0123456789';

const entries = (parsed: TokenEntry[] | string[]): TokenEntry[] => {
  assert.equal(typeof parsed[0], 'object', `expected entries, got ${parsed.join('; ')}`);
  return parsed as TokenEntry[];
};
const problems = (parsed: TokenEntry[] | string[]): string => {
  assert.equal(typeof parsed[0], 'string', 'expected problems');
  const text = (parsed as string[]).join('\n');
  assert.ok(!text.includes(TOKEN) && !text.includes(OTHER), `a token leaked into: ${text}`);
  return text;
};

describe('instance patterns', () => {
  const cases: [string, string, boolean][] = [
    ['*', '', true],
    ['*', 'a/b', true],
    ['', '', true],
    ['', 'a', false],
    ['team', 'team', true],
    ['team', 'team/a', false],
    ['team/*', 'team/a', true],
    ['team/*', 'team/a/b', true],
    ['team/*', 'team', false],
    ['team/*', 'teamx/a', false],
    ['a/b/*', 'a/b/c', true],
  ];
  for (const [pattern, instance, expected] of cases) {
    it(`"${pattern}" ${expected ? 'matches' : 'does not match'} "${instance}"`, () => {
      const parsed = parseInstancePattern(pattern);
      assert.notEqual(typeof parsed, 'string', String(parsed));
      assert.equal(matchesInstance(parsed as Exclude<typeof parsed, string>, instance), expected);
    });
  }

  it('refuses "*" inside a name, an empty prefix and reserved words', () => {
    assert.match(String(parseInstancePattern('te*m')), /only alone or as its last segment/);
    assert.match(String(parseInstancePattern('/*')), /empty prefix/);
    assert.match(String(parseInstancePattern('a/blobs/*')), /reserved word "blobs"/);
  });
});

describe('the authTokens setting', () => {
  it('parses entries, defaults the pattern to "*" and merges a repeated token', () => {
    const parsed = entries(
      parseStaticTokens(`${TOKEN}:read+write, ${OTHER}:read:a/* ${TOKEN}:ac-write:x`),
    );
    assert.deepEqual(
      parsed.map((entry) => entry.name),
      ['authTokens#1', 'authTokens#2'],
    );
    const [first] = parsed;
    assert.deepEqual(first?.sha256, sha256Of(TOKEN));
    assert.deepEqual(first?.grants[0]?.pattern, { kind: 'any' });
    assert.deepEqual([...(first?.grants[0]?.permissions ?? [])], ['read', 'write']);
    assert.deepEqual(first?.grants[1]?.pattern, { kind: 'exact', name: 'x' });
  });

  it('names each bad entry and what is wrong, without quoting the token', () => {
    const text = problems(
      parseStaticTokens(
        `${TOKEN}, short:read, ${TOKEN}:reed, ${OTHER}:read:a*b, bad!${TOKEN}:read`,
      ),
    );
    assert.match(text, /entry 1 has no ":"/);
    assert.match(text, /entry 2: the token is 5 characters long; use 16/);
    assert.match(text, /entry 3: permission "reed" is unknown; known: read, write, ac-write/);
    assert.match(text, /entry 4: instance pattern "a\*b"/);
    assert.match(text, /entry 5: the token may hold only/);
  });

  it('is a secret: no flag, redacted in the summary and in config errors', () => {
    assert.equal(flagNameOf('authTokens'), undefined);
    const settings = loadConfig({ argv: [], env: { TESSERA_AUTH_TOKENS: `${TOKEN}:read` } });
    assert.equal(redactedSummary(settings).authTokens, '(redacted)');
    assert.ok(!JSON.stringify(redactedSummary(settings)).includes(TOKEN));
    assert.throws(
      () => loadConfig({ argv: [], env: { TESSERA_AUTH_TOKENS: `${TOKEN}:raed` } }),
      (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /authTokens \(TESSERA_AUTH_TOKENS\) = \(redacted\): entry 1/);
        assert.ok(!error.message.includes(TOKEN));
        return true;
      },
    );
  });
});

describe('the tokens file', () => {
  const file = (tokens: unknown[]) => JSON.stringify({ tokens });
  const grants = [{ instance: 'team/*', permissions: ['read'] }];

  it('takes a token by SHA-256 or in plain', () => {
    const parsed = entries(
      parseTokenFile(
        file([
          { name: 'ci', sha256: sha256Of(TOKEN).toString('hex').toUpperCase(), grants },
          { name: 'dev', token: OTHER, grants },
        ]),
      ),
    );
    assert.deepEqual(parsed[0]?.sha256, sha256Of(TOKEN));
    assert.deepEqual(parsed[1]?.sha256, sha256Of(OTHER));
  });

  it('names the path of every fault, without quoting a token', () => {
    const text = problems(
      parseTokenFile(
        file([
          { name: 'both', sha256: sha256Of(TOKEN).toString('hex'), token: TOKEN, grants },
          { name: 'neither', grants },
          { name: 'typo', token: OTHER, grants: [{ instance: '*', permision: ['read'] }] },
          { name: 'bad hash', sha256: 'abc', grants: [] },
        ]),
      ),
    );
    assert.match(text, /tokens\[0\]: give exactly one of "sha256" and "token"/);
    assert.match(text, /tokens\[1\]: give exactly one/);
    assert.match(text, /tokens\[2\]\.grants\[0\]: .*permision/);
    assert.match(text, /tokens\[3\]\.name: expected 1 to 64/);
    assert.match(text, /tokens\[3\]\.sha256: expected 64 hex digits/);
    assert.match(text, /tokens\[3\]\.grants: /);
  });

  it('refuses text that is not JSON without quoting it', () => {
    assert.match(problems(parseTokenFile(`{"tokens": ["${TOKEN}`)), /not valid JSON/);
  });
});

describe('the token table', () => {
  const entry = (name: string, token: string): TokenEntry => ({
    name,
    sha256: sha256Of(token),
    grants: [],
  });

  it('finds the entry of a known token and nothing for another', () => {
    const table = createTokenTable([entry('a', TOKEN), entry('b', OTHER)]);
    assert.equal(table.find(OTHER)?.name, 'b');
    assert.equal(table.find(`${TOKEN}x`), undefined);
    assert.equal(table.find(''), undefined);
  });

  it('refuses a repeated name or token', () => {
    assert.throws(
      () => createTokenTable([entry('a', TOKEN), entry('a', OTHER)]),
      /"a" is used twice/,
    );
    assert.throws(
      () => createTokenTable([entry('a', TOKEN), entry('b', TOKEN)]),
      /"a" and "b" are the same token/,
    );
  });
});

describe('every registered method has a permission', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-access-unit-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const services = () => {
    const cas = new Cas(new DirectoryStore(dir), { stagingDir: dir, readChunkBytes: 65_536 });
    return createServices({
      cas,
      uploads: new UploadRegistry(cas, 60_000),
      actions: new DirectoryStore(dir),
      assets: new DirectoryAssetStore(dir),
      maxBatchTotalSizeBytes: 1024 * 1024,
      log: silentLogger(),
      metrics: createMetrics({ processMetrics: false }),
      readiness: createReadiness([]),
      shutdown: new AbortController().signal,
      access: {
        summary: 'unused',
        authenticate: () => ({ name: undefined }),
        authorize: () => undefined,
        reload: async () => undefined,
        onReload: () => () => undefined,
        close: () => undefined,
      },
    });
  };

  it('maps each method of each service to read, write or ac-write, and health to public', () => {
    const table: Record<string, string | undefined> = {};
    for (const { definition, implementation } of services()) {
      for (const [name, method] of Object.entries(definition)) {
        table[method.path] = permissionOf(implementation[name]);
      }
    }
    const short = Object.fromEntries(
      Object.entries(table).map(([path, permission]) => [path.split('.').at(-1), permission]),
    );
    assert.deepEqual(short, {
      'Capabilities/GetCapabilities': 'read',
      'ContentAddressableStorage/FindMissingBlobs': 'read',
      'ContentAddressableStorage/BatchUpdateBlobs': 'write',
      'ContentAddressableStorage/BatchReadBlobs': 'read',
      'ContentAddressableStorage/GetTree': 'read',
      'ContentAddressableStorage/SplitBlob': 'read',
      'ContentAddressableStorage/SpliceBlob': 'write',
      'ByteStream/Read': 'read',
      'ByteStream/Write': 'write',
      'ByteStream/QueryWriteStatus': 'write',
      'ActionCache/GetActionResult': 'read',
      'ActionCache/UpdateActionResult': 'ac-write',
      'Fetch/FetchBlob': 'read',
      'Fetch/FetchDirectory': 'read',
      'Push/PushBlob': 'write',
      'Push/PushDirectory': 'write',
      'Health/Check': 'public',
      'Health/Watch': 'public',
    });
  });

  it('refuses to register a handler built without an access check', () => {
    const [capabilities] = services();
    assert.ok(capabilities);
    const unchecked = { ...capabilities.implementation, GetCapabilities: () => undefined };
    assert.throws(
      () => assertAccessChecked({ ...capabilities, implementation: unchecked }),
      /Capabilities\/GetCapabilities has no access check/,
    );
  });

  it('refuses an unlabelled health handler too', () => {
    const health = services().find(({ definition }) => 'Check' in definition);
    assert.ok(health);
    const unchecked = { ...health.implementation, Watch: () => undefined };
    assert.throws(
      () => assertAccessChecked({ ...health, implementation: unchecked }),
      /grpc\.health\.v1\.Health\/Watch has no access check/,
    );
  });
});
