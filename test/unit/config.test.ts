import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig, redactedSummary } from '../../src/config/load.ts';
import { isCloudMode, S3_MIN_PART_SIZE_BYTES, type Settings } from '../../src/config/schema.ts';

const MIB = 1024 * 1024;
const SECRET_KEY = 'wJalrXUtnFEMI7K7MDENGbPxRfiCYEXAMPLEKEY';
const SESSION_TOKEN = 'FwoGZXIvYXdzEBYaDOrSESSIONTOKENEXAMPLE';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-config-test-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let fileCount = 0;
function configFile(contents: unknown): string {
  const path = join(dir, `config-${fileCount++}.json`);
  writeFileSync(path, typeof contents === 'string' ? contents : JSON.stringify(contents));
  return path;
}

function load(argv: string[] = [], env: Record<string, string> = {}): Settings {
  return loadConfig({ argv, env });
}

/** Runs `run`, which must throw a ConfigError, and returns its message. */
function configErrorOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig defaults', () => {
  it('gives an embedded-mode configuration when nothing is set', () => {
    const settings = load();
    assert.equal(settings.listen, '127.0.0.1:8980');
    assert.equal(settings.s3Region, 'us-east-1');
    assert.equal(settings.s3ForcePathStyle, false);
    assert.equal(settings.s3PartSizeBytes, 8 * MIB);
    assert.equal(settings.s3UploadConcurrency, 4);
    assert.equal(settings.logLevel, 'info');
    assert.equal(settings.s3Bucket, undefined);
    assert.equal(settings.redisUrl, undefined);
    assert.equal(isCloudMode(settings), false);
    assert.ok(settings.dataDir.length > 0);
  });

  it('treats empty optional text settings as unset', () => {
    const settings = load([], { TESSERA_S3_BUCKET: '', TESSERA_REDIS_URL: '' });
    assert.equal(settings.s3Bucket, undefined);
    assert.equal(isCloudMode(settings), false);
  });
});

describe('loadConfig sources and precedence', () => {
  it('reads a JSON file named by --config', () => {
    const path = configFile({
      listen: '0.0.0.0:9000',
      logLevel: 'debug',
      s3PartSizeBytes: 6 * MIB,
    });
    const settings = load(['--config', path]);
    assert.equal(settings.listen, '0.0.0.0:9000');
    assert.equal(settings.logLevel, 'debug');
    assert.equal(settings.s3PartSizeBytes, 6 * MIB);
  });

  it('reads a JSON file named by TESSERA_CONFIG', () => {
    const path = configFile({ logLevel: 'warn' });
    assert.equal(load([], { TESSERA_CONFIG: path }).logLevel, 'warn');
  });

  it('prefers --config over TESSERA_CONFIG', () => {
    const fromFlag = configFile({ logLevel: 'error' });
    const fromEnv = configFile({ logLevel: 'warn' });
    assert.equal(load(['--config', fromFlag], { TESSERA_CONFIG: fromEnv }).logLevel, 'error');
  });

  it('prefers the environment over the file', () => {
    const path = configFile({ logLevel: 'warn', s3Region: 'eu-west-1' });
    const settings = load(['--config', path], { TESSERA_LOG_LEVEL: 'debug' });
    assert.equal(settings.logLevel, 'debug');
    assert.equal(settings.s3Region, 'eu-west-1');
  });

  it('prefers a flag over the environment and the file', () => {
    const path = configFile({ logLevel: 'warn', listen: '127.0.0.1:1' });
    const settings = load(['--config', path, '--log-level', 'trace'], {
      TESSERA_LOG_LEVEL: 'debug',
      TESSERA_LISTEN: '127.0.0.1:2',
    });
    assert.equal(settings.logLevel, 'trace');
    assert.equal(settings.listen, '127.0.0.1:2');
  });

  it('accepts --name=value as well as --name value', () => {
    const settings = load(['--listen=10.1.2.3:7000', '--s3-region', 'ap-south-1']);
    assert.equal(settings.listen, '10.1.2.3:7000');
    assert.equal(settings.s3Region, 'ap-south-1');
  });

  it('reads the AWS credentials from their standard variable names', () => {
    const settings = load([], {
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_SESSION_TOKEN: SESSION_TOKEN,
    });
    assert.equal(settings.awsAccessKeyId, 'AKIAEXAMPLE');
    assert.equal(settings.awsSecretAccessKey, SECRET_KEY);
    assert.equal(settings.awsSessionToken, SESSION_TOKEN);
  });
});

describe('loadConfig --listen', () => {
  it('accepts a host or IPv4 address with a port, and an IPv6 address in brackets', () => {
    for (const listen of ['0.0.0.0:8980', 'localhost:1', 'cache.internal:65535', '[::1]:8980']) {
      assert.equal(load(['--listen', listen]).listen, listen);
    }
    assert.equal(load(['--listen', '[::]:0']).listen, '[::]:0');
  });

  it('rejects a missing port, naming the setting, the flag and the value', () => {
    const message = configErrorOf(() => load(['--listen', '127.0.0.1']));
    assert.match(message, /listen \(--listen\) = "127\.0\.0\.1": expected HOST:PORT/);
  });

  it('does not call a missing port a port above 65535', () => {
    const message = configErrorOf(() => load(['--listen', 'localhost']));
    assert.match(message, /expected HOST:PORT/);
    assert.doesNotMatch(message, /port above 65535/);
  });

  it('rejects a port that is not a number or is above 65535', () => {
    assert.match(
      configErrorOf(() => load(['--listen', 'localhost:http'])),
      /expected HOST:PORT/,
    );
    assert.match(
      configErrorOf(() => load(['--listen', 'localhost:65536'])),
      /port from 0 to 65535/,
    );
    assert.match(
      configErrorOf(() => load(['--listen', 'localhost:-1'])),
      /expected HOST:PORT/,
    );
  });

  it('rejects an IPv6 address without brackets', () => {
    assert.match(
      configErrorOf(() => load(['--listen', '::1:8980'])),
      /expected HOST:PORT/,
    );
  });

  it('names the environment variable when the bad value came from there', () => {
    const message = configErrorOf(() => load([], { TESSERA_LISTEN: 'nowhere' }));
    assert.match(message, /listen \(TESSERA_LISTEN\) = "nowhere"/);
  });

  it('rejects a --listen flag given without a value', () => {
    assert.match(
      configErrorOf(() => load(['--listen'])),
      /listen \(--listen\)/,
    );
  });
});

describe('loadConfig booleans', () => {
  it('reads "true" and "1" from the environment as true', () => {
    for (const value of ['true', '1', 'TRUE']) {
      assert.equal(load([], { TESSERA_S3_FORCE_PATH_STYLE: value }).s3ForcePathStyle, true);
    }
  });

  it('reads "false" and "0" from the environment as false', () => {
    for (const value of ['false', '0']) {
      assert.equal(load([], { TESSERA_S3_FORCE_PATH_STYLE: value }).s3ForcePathStyle, false);
    }
  });

  it('reads a boolean flag given alone as true', () => {
    assert.equal(load(['--s3-force-path-style']).s3ForcePathStyle, true);
    assert.equal(load(['--s3-force-path-style', '--log-level', 'warn']).s3ForcePathStyle, true);
  });

  it('takes JSON booleans from the file', () => {
    assert.equal(load(['--config', configFile({ s3ForcePathStyle: true })]).s3ForcePathStyle, true);
  });

  it('rejects other words, naming the variable and the value', () => {
    const message = configErrorOf(() => load([], { TESSERA_S3_FORCE_PATH_STYLE: 'maybe' }));
    assert.match(message, /s3ForcePathStyle \(TESSERA_S3_FORCE_PATH_STYLE\) = "maybe"/);
  });
});

describe('loadConfig integer limits', () => {
  it('accepts a part size of exactly 5 MiB', () => {
    const settings = load(['--s3-part-size-bytes', String(S3_MIN_PART_SIZE_BYTES)]);
    assert.equal(settings.s3PartSizeBytes, 5 * MIB);
  });

  it('rejects a part size below 5 MiB from a flag, naming setting, flag and value', () => {
    const message = configErrorOf(() => load(['--s3-part-size-bytes', '1048576']));
    assert.match(message, /s3PartSizeBytes \(--s3-part-size-bytes\) = "1048576"/);
    assert.match(message, /5242880/);
  });

  it('rejects a part size below 5 MiB from the environment, naming the variable', () => {
    const message = configErrorOf(() => load([], { TESSERA_S3_PART_SIZE_BYTES: '5242879' }));
    assert.match(message, /s3PartSizeBytes \(TESSERA_S3_PART_SIZE_BYTES\) = "5242879"/);
  });

  it('rejects a part size below 5 MiB from the file, naming the file', () => {
    const path = configFile({ s3PartSizeBytes: 1024 });
    const message = configErrorOf(() => load(['--config', path]));
    assert.ok(message.includes(`s3PartSizeBytes (${path}) = 1024`), message);
  });

  it('rejects fractional and non-numeric integers', () => {
    assert.match(
      configErrorOf(() => load(['--s3-upload-concurrency', '2.5'])),
      /s3UploadConcurrency \(--s3-upload-concurrency\) = "2\.5"/,
    );
    assert.match(
      configErrorOf(() => load([], { TESSERA_READ_CHUNK_BYTES: 'lots' })),
      /readChunkBytes \(TESSERA_READ_CHUNK_BYTES\) = "lots"/,
    );
  });

  it('does not read an empty integer variable as 0: it is either unset or rejected', () => {
    let settings: Settings | undefined;
    try {
      settings = load([], { TESSERA_SHUTDOWN_GRACE_SECONDS: '', TESSERA_CAS_LEASE_SECONDS: '' });
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return;
    }
    assert.equal(settings.shutdownGraceSeconds, load().shutdownGraceSeconds);
    assert.equal(settings.casLeaseSeconds, load().casLeaseSeconds);
  });

  it('rejects values above a maximum', () => {
    assert.match(
      configErrorOf(() => load(['--s3-upload-concurrency', '65'])),
      /s3UploadConcurrency .* = "65"/,
    );
    assert.match(
      configErrorOf(() => load(['--read-chunk-bytes', String(MIB + 1)])),
      /readChunkBytes .* = "1048577"/,
    );
  });

  it('reports every bad setting, one per line', () => {
    const message = configErrorOf(() =>
      load(['--s3-part-size-bytes', '1', '--listen', 'bad host:80'], { TESSERA_LOG_LEVEL: 'loud' }),
    );
    assert.match(message, /s3PartSizeBytes/);
    assert.match(message, /listen/);
    assert.match(message, /logLevel \(TESSERA_LOG_LEVEL\) = "loud"/);
    assert.equal(message.split('\n').length, 4);
  });
});

describe('loadConfig unknown input', () => {
  it('rejects an unknown flag and names it', () => {
    assert.match(
      configErrorOf(() => load(['--lisen', 'x:1'])),
      /unknown flag --lisen; known: /,
    );
    assert.match(
      configErrorOf(() => load(['--bogus=1'])),
      /unknown flag --bogus;/,
    );
  });

  it('has no flags for the AWS credentials', () => {
    const message = configErrorOf(() => load(['--aws-secret-access-key', SECRET_KEY]));
    assert.match(message, /unknown flag --aws-secret-access-key/);
    assert.ok(!message.includes(SECRET_KEY));
  });

  it('rejects a positional argument', () => {
    assert.match(
      configErrorOf(() => load(['serve'])),
      /unexpected argument "serve"/,
    );
  });

  it('rejects unknown keys in the file, naming the key and the file', () => {
    const path = configFile({ listen: '127.0.0.1:1', partSize: 5 });
    const message = configErrorOf(() => load(['--config', path]));
    assert.ok(message.includes(`unknown setting(s) partSize in ${path}`), message);
  });

  it('rejects a file that is missing, not JSON, or not an object', () => {
    assert.match(
      configErrorOf(() => load(['--config', join(dir, 'absent.json')])),
      /cannot read config file .*absent\.json/,
    );
    assert.match(
      configErrorOf(() => load(['--config', configFile('{ nope')])),
      /not valid JSON/,
    );
    assert.match(
      configErrorOf(() => load(['--config', configFile([1, 2])])),
      /must hold a JSON object/,
    );
  });
});

describe('loadConfig S3 mode', () => {
  it('enters S3 mode when both a bucket and a redis url are set', () => {
    const settings = load(['--s3-bucket', 'builds', '--redis-url', 'redis://cache:6379']);
    assert.equal(isCloudMode(settings), true);
    assert.equal(settings.s3Bucket, 'builds');
  });

  it('rejects a bucket without a redis url and names the missing setting', () => {
    const message = configErrorOf(() => load(['--s3-bucket', 'builds']));
    assert.match(message, /s3Bucket \(--s3-bucket\) is set, so S3 mode needs redisUrl/);
    assert.match(message, /TESSERA_REDIS_URL/);
  });

  it('rejects a redis url without a bucket and names the missing setting', () => {
    const message = configErrorOf(() => load([], { TESSERA_REDIS_URL: 'redis://cache:6379' }));
    assert.match(message, /redisUrl \(TESSERA_REDIS_URL\) is set, so S3 mode needs s3Bucket/);
    assert.match(message, /TESSERA_S3_BUCKET/);
  });

  it('rejects a redis url with another scheme', () => {
    const message = configErrorOf(() =>
      load(['--s3-bucket', 'b', '--redis-url', 'http://cache:6379']),
    );
    assert.match(message, /redisUrl \(--redis-url\) = "http:\/\/cache:6379": expected redis:/);
  });
});

describe('secrets', () => {
  const secretEnv = { AWS_SECRET_ACCESS_KEY: SECRET_KEY, AWS_SESSION_TOKEN: SESSION_TOKEN };

  it('keeps the secret key out of errors about other settings', () => {
    const message = configErrorOf(() => load(['--listen', 'nope'], secretEnv));
    assert.ok(!message.includes(SECRET_KEY));
    assert.ok(!message.includes(SESSION_TOKEN));
  });

  it('shows an invalid secret from the file as redacted', () => {
    const path = configFile({ awsSecretAccessKey: 918273645, awsSessionToken: [77] });
    const message = configErrorOf(() => load(['--config', path]));
    assert.match(message, /awsSecretAccessKey \(.*\) = \(redacted\)/);
    assert.match(message, /awsSessionToken \(.*\) = \(redacted\)/);
    assert.ok(!message.includes('918273645'));
  });

  it('keeps the password of an invalid redis url out of the error', () => {
    const message = configErrorOf(() =>
      load(['--s3-bucket', 'b', '--redis-url', 'http://default:hunter2@cache:6379']),
    );
    assert.match(message, /redisUrl/);
    assert.ok(!message.includes('hunter2'), message);
  });

  it('keeps a secret out of the error for a config file that is not valid JSON', () => {
    const path = configFile(`{"awsSecretAccessKey": ${SECRET_KEY}}`);
    const message = configErrorOf(() => load(['--config', path]));
    assert.match(message, /not valid JSON/);
    assert.ok(!message.includes(SECRET_KEY.slice(0, 6)), message);
  });

  it('redacts secrets in the summary and shows the other settings', () => {
    const settings = load(['--s3-bucket', 'builds', '--redis-url', 'redis://cache:6379'], {
      ...secretEnv,
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
    });
    const summary = redactedSummary(settings);
    assert.equal(summary.awsSecretAccessKey, '(redacted)');
    assert.equal(summary.awsSessionToken, '(redacted)');
    assert.equal(summary.s3Bucket, 'builds');
    assert.equal(summary.redisUrl, 'redis://cache:6379');
    const text = JSON.stringify(summary);
    assert.ok(!text.includes(SECRET_KEY));
    assert.ok(!text.includes(SESSION_TOKEN));
  });

  it('leaves unset settings out of the summary', () => {
    const summary = redactedSummary(load());
    assert.equal('awsSecretAccessKey' in summary, false);
    assert.equal('s3Bucket' in summary, false);
  });

  it('masks the user and password of the redis url in the summary', () => {
    const settings = load(['--s3-bucket', 'b', '--redis-url', 'rediss://app:hunter2@cache:6380/2']);
    const summary = redactedSummary(settings);
    assert.equal(summary.redisUrl, 'rediss://***@cache:6380/2');
    assert.equal(settings.redisUrl, 'rediss://app:hunter2@cache:6380/2');
  });

  it('masks a password-only redis url in the summary', () => {
    const settings = load(['--s3-bucket', 'b', '--redis-url', 'redis://:hunter2@cache:6379']);
    assert.equal(redactedSummary(settings).redisUrl, 'redis://***@cache:6379');
  });

  it('masks the whole redis password in the summary when it holds an "@"', () => {
    const url = 'redis://app:open@sesame@cache:6379/0';
    const summary = redactedSummary(load(['--s3-bucket', 'b', '--redis-url', url]));
    assert.ok(!String(summary.redisUrl).includes('sesame'), String(summary.redisUrl));
    assert.match(String(summary.redisUrl), /cache:6379\/0$/);
  });
});
