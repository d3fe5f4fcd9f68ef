// docker-compose.yml, checked without a Docker engine (none runs here): docker-compose 1.x itself
// validates it (`config`, which needs no engine) with and without the two-regions profile, dclint
// checks it against the compose specification, the server's own config loader accepts every
// Tessera service's environment, and the two-regions profile really is two regions: each Tessera
// on its own MinIO and Redis, each the other's peer. Each check also runs on a broken copy, to
// show that it fails.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { BIN, createScratch, DOCKERFILE, imageEnvironment, ROOT, run } from './support/docker.ts';

const COMPOSE = join(ROOT, 'docker-compose.yml');
const PROFILE = 'two-regions';

const scratch = createScratch('tessera-compose-');
after(() => scratch.remove());

const configs = new Map<string, Promise<string>>();

/** `docker-compose config` output; each file and profile is rendered once per run. */
function composeConfig(file: string, profile?: string): Promise<string> {
  const key = `${file}\0${profile ?? ''}`;
  let config = configs.get(key);
  if (!config) {
    config = renderCompose(file, profile);
    configs.set(key, config);
  }
  return config;
}

async function renderCompose(file: string, profile?: string): Promise<string> {
  const args = [...(profile ? ['--profile', profile] : []), '-f', file, 'config'];
  try {
    const { stdout } = await run('docker-compose', args, { cwd: ROOT });
    return stdout;
  } catch (error) {
    const { code, stderr } = error as { code?: unknown; stderr?: string };
    if (code === 'ENOENT') {
      assert.fail('docker-compose is not installed; scripts/install-test-deps.sh installs it');
    }
    throw new Error(`docker-compose config failed: ${stderr}`);
  }
}

async function dclintProblems(file: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run(join(BIN, 'dclint'), [file, '-f', 'json', '--max-warnings', '0']));
  } catch (error) {
    stdout = (error as { stdout?: string }).stdout ?? '';
  }
  const report = JSON.parse(stdout) as { messages: { rule: string; message: string }[] }[];
  return report.flatMap((entry) =>
    entry.messages.map((message) => `${message.rule}: ${message.message}`),
  );
}

/** Problems the server's own config loader finds in each Tessera service's environment. */
function configProblems(config: string): string[] {
  const { services } = parseYaml(config) as { services: Record<string, ComposeService> };
  const image = imageEnvironment(readFileSync(DOCKERFILE, 'utf8'));
  const problems: string[] = [];
  const tesseras = Object.entries(services).filter(([, service]) => service.build !== undefined);
  if (tesseras.length === 0) problems.push('no service is built from infra/Dockerfile');
  for (const [name, service] of tesseras) {
    try {
      loadConfig({ argv: [], env: { ...image, ...service.environment } });
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
    }
  }
  return problems;
}

interface ComposeService {
  build?: unknown;
  environment?: Record<string, string>;
  ports?: (string | { published: string | number })[];
  profiles?: string[];
  command?: string | string[];
}

/** What makes the two-regions profile two regions, checked on `docker-compose config` output. */
function twoRegionProblems(config: string): string[] {
  const services = (parseYaml(config) as { services: Record<string, ComposeService> }).services;
  const problems: string[] = [];
  const peered = Object.entries(services).filter(
    ([, service]) => service.environment?.TESSERA_PEERS !== undefined,
  );
  if (peered.length !== 2)
    problems.push(`expected two peered Tessera services, found ${peered.length}`);
  const regionOf = new Map(
    peered.map(([name, service]) => [name, service.environment?.TESSERA_REGION]),
  );

  for (const [name, service] of peered) {
    const env = service.environment ?? {};
    if (!service.profiles?.includes(PROFILE))
      problems.push(`${name} is not in the ${PROFILE} profile`);
    const peers = JSON.parse(env.TESSERA_PEERS ?? '[]') as { name: string; endpoint: string }[];
    const [other] = peered.filter(([candidate]) => candidate !== name);
    if (!other) continue;
    const [otherName, otherService] = other;
    const expected = { name: regionOf.get(otherName), endpoint: `grpc://${otherName}:8980` };
    if (JSON.stringify(peers) !== JSON.stringify([expected])) {
      problems.push(
        `${name} peers with ${JSON.stringify(peers)}, expected ${JSON.stringify([expected])}`,
      );
    }
    const otherEnv = otherService.environment ?? {};
    for (const key of ['TESSERA_S3_ENDPOINT', 'TESSERA_REDIS_URL', 'TESSERA_REGION']) {
      if (env[key] === undefined || env[key] === otherEnv[key]) {
        problems.push(
          `${name} and ${otherName} share ${key}=${env[key]}; each region needs its own`,
        );
      }
    }
  }

  const published = Object.entries(services).flatMap(([name, service]) =>
    (service.ports ?? []).map((port) => [
      name,
      typeof port === 'string' ? port : String(port.published),
    ]),
  );
  const seen = new Map<string, string>();
  for (const [name, port] of published as [string, string][]) {
    const hostPort = port.split(':').slice(0, -1).join(':');
    if (seen.has(hostPort))
      problems.push(`${name} and ${seen.get(hostPort)} both publish ${hostPort}`);
    seen.set(hostPort, name);
  }
  return problems;
}

describe('docker-compose.yml', () => {
  it('is valid for docker-compose with and without the two-regions profile', async () => {
    const single = parseYaml(await composeConfig(COMPOSE)) as { services: object };
    assert.ok('tessera' in single.services);

    const both = await composeConfig(COMPOSE, PROFILE);
    for (const name of ['tessera', 'tessera-a', 'tessera-b', 'minio-b', 'redis-b']) {
      assert.ok(name in (parseYaml(both) as { services: object }).services, `no service ${name}`);
    }
  });

  it('keeps the single-region stack out of the profile and unpeered', async () => {
    const { services } = parseYaml(await composeConfig(COMPOSE)) as {
      services: Record<string, ComposeService>;
    };
    for (const name of ['minio', 'minio-init', 'redis', 'tessera']) {
      assert.equal(services[name]?.profiles, undefined, `${name} must start without a profile`);
    }
    assert.equal(services.tessera?.environment?.TESSERA_PEERS, undefined);
  });

  it('gives every Tessera service a configuration the server accepts', async () => {
    assert.deepEqual(configProblems(await composeConfig(COMPOSE, PROFILE)), []);
    assert.ok(imageEnvironment(readFileSync(DOCKERFILE, 'utf8')).TESSERA_HTTP_LISTEN);
  });

  it('passes dclint against the compose specification', async () => {
    assert.deepEqual(await dclintProblems(COMPOSE), []);
  });

  it('runs two regions in the profile, each on its own MinIO and Redis, each the other’s peer', async () => {
    assert.deepEqual(twoRegionProblems(await composeConfig(COMPOSE, PROFILE)), []);
  });

  describe('catches', () => {
    const original = readFileSync(COMPOSE, 'utf8');

    it('a misspelled key, in docker-compose and in dclint', async () => {
      const file = scratch.file(
        'compose-typo.yml',
        original.replace(
          '    stop_grace_period: 40s\n\n  # --- profile',
          '    stop_grace_perod: 40s\n\n  # --- profile',
        ),
      );
      await assert.rejects(composeConfig(file), /stop_grace_perod/);
      const problems = await dclintProblems(file);
      assert.ok(
        problems.some((problem) => /invalid-schema/.test(problem)),
        problems.join('\n'),
      );
    });

    it('a region that peers with itself or shares the other region’s Redis', async () => {
      const broken = original
        .replace('"endpoint":"grpc://tessera-b:8980"', '"endpoint":"grpc://tessera-a:8980"')
        .replace(
          'TESSERA_REDIS_URL: redis://redis-b:6379',
          'TESSERA_REDIS_URL: redis://redis:6379',
        );
      const file = scratch.file('compose-regions.yml', broken);
      const problems = twoRegionProblems(await composeConfig(file, PROFILE));
      assert.ok(
        problems.some((problem) => /tessera-a peers with/.test(problem)),
        problems.join('\n'),
      );
      assert.ok(
        problems.some((problem) => /share TESSERA_REDIS_URL/.test(problem)),
        problems.join('\n'),
      );
    });

    it('a peer list the server would refuse', async () => {
      const file = scratch.file(
        'compose-peers.yml',
        original.replace(
          '"endpoint":"grpc://tessera-a:8980"',
          '"endpoint":"http://tessera-a:8980"',
        ),
      );
      const problems = configProblems(await composeConfig(file, PROFILE));
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0] as string, /^tessera-b: invalid configuration:\n {2}peers /);
    });

    it('two services publishing the same host port', async () => {
      const file = scratch.file(
        'compose-ports.yml',
        original.replace("'127.0.0.1:8982:8980'", "'127.0.0.1:8981:8980'"),
      );
      const problems = twoRegionProblems(await composeConfig(file, PROFILE));
      assert.ok(
        problems.some((problem) => /both publish 127\.0\.0\.1:8981/.test(problem)),
        problems.join('\n'),
      );
    });
  });
});
