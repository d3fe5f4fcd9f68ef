// The container image and the compose stacks, checked without a Docker engine (none runs here):
// - infra/Dockerfile is linted by dockerfile-utils (every rule an error) and dockerfilelint, and
//   must be multi-stage, install production dependencies only, run as a non-root user and carry
//   a health check;
// - docker-compose.yml is validated by docker-compose 1.x itself (`config -q`, which needs no
//   engine) with and without the two-regions profile, and by dclint against the compose spec;
// - the two-regions profile really is two regions: each Tessera on its own MinIO and Redis, each
//   the other's peer.
// Each check also runs on a broken copy, to show that it fails.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ValidationSeverity, validate } from 'dockerfile-utils';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCKERFILE = join(ROOT, 'infra', 'Dockerfile');
const COMPOSE = join(ROOT, 'docker-compose.yml');
const BIN = join(ROOT, 'node_modules', '.bin');
const PROFILE = 'two-regions';

const scratch = mkdtempSync(join(tmpdir(), 'tessera-container-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function scratchFile(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

/** Every configurable dockerfile-utils rule, raised to an error. */
const STRICT = Object.fromEntries(
  [
    'deprecatedMaintainer',
    'directiveCasing',
    'emptyContinuationLine',
    'instructionCasing',
    'instructionCmdMultiple',
    'instructionEntrypointMultiple',
    'instructionHealthcheckMultiple',
    'instructionJSONInSingleQuotes',
    'instructionWorkdirRelative',
  ].map((rule) => [rule, ValidationSeverity.ERROR]),
);

function dockerfileUtilsProblems(text: string): string[] {
  return validate(text, STRICT).map(
    (diagnostic) => `line ${diagnostic.range.start.line + 1}: ${diagnostic.message}`,
  );
}

async function dockerfilelintProblems(file: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run(join(BIN, 'dockerfilelint'), ['-j', file]));
  } catch (error) {
    // It exits with the number of issues; the report is on stdout all the same.
    stdout = (error as { stdout?: string }).stdout ?? '';
  }
  const report = JSON.parse(stdout) as {
    files: { issues: { line: string; title: string }[] }[];
  };
  return report.files.flatMap((entry) =>
    entry.issues.map((issue) => `line ${issue.line}: ${issue.title}`),
  );
}

interface LockFile {
  packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>;
}

/** Production dependencies whose install scripts the project approved (package.json allowScripts). */
function approvedProductionScripts(): string[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    allowScripts?: Record<string, boolean>;
  };
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as LockFile;
  return Object.entries(manifest.allowScripts ?? {})
    .filter(([, allowed]) => allowed)
    .map(([name]) => name)
    .filter((name) => {
      const entry = lock.packages[`node_modules/${name}`];
      return entry?.hasInstallScript === true && entry.dev !== true;
    });
}

/** What this project asks of its image beyond what the linters know. */
function imageProblems(text: string, neededScripts = approvedProductionScripts()): string[] {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const froms = instructions.filter((line) => /^FROM\s/i.test(line));
  const lastFrom = instructions.findLastIndex((line) => /^FROM\s/i.test(line));
  const final = instructions.slice(lastFrom);
  const problems: string[] = [];

  if (froms.length < 2)
    problems.push('not multi-stage: dependencies must be installed in a stage of their own');
  const installs = instructions.filter((line) => /\bnpm (ci|install)\b/.test(line));
  if (installs.length === 0) problems.push('installs no dependencies with npm ci');
  for (const line of installs) {
    if (!/\bnpm ci\b/.test(line))
      problems.push(`"${line}": use npm ci, which installs the lock file exactly`);
    if (!/--omit=dev\b/.test(line))
      problems.push(`"${line}": installs devDependencies; add --omit=dev`);
    if (/--ignore-scripts\b/.test(line) && neededScripts.length > 0) {
      problems.push(`"${line}": skips the install scripts that ${neededScripts.join(', ')} need`);
    }
  }
  if (final.some((line) => /\bnpm (ci|install)\b/.test(line))) {
    problems.push(
      'the final stage runs npm install; copy node_modules from the dependencies stage',
    );
  }
  const user = final.findLast((line) => /^USER\s/i.test(line))?.split(/\s+/)[1];
  if (user === undefined || /^(root|0)(:|$)/.test(user)) {
    problems.push(
      `the final stage runs as ${user ?? 'root (no USER)'}; run as an unprivileged user`,
    );
  }
  if (!final.some((line) => /^HEALTHCHECK\s+(--\S+\s+)*CMD\s/i.test(line))) {
    problems.push('the final stage has no HEALTHCHECK');
  }
  if (final.some((line) => /^COPY\s+(\S+\s+)*(test|bench|terraform|\.)\s+\S+$/i.test(line))) {
    problems.push('the final stage copies tests, benchmarks, Terraform or the whole context');
  }
  return problems;
}

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

/** The ENV of the Dockerfile's final stage, which every container starts with. */
function imageEnvironment(text: string): Record<string, string> {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const final = lines.slice(lines.findLastIndex((line) => /^FROM\s/.test(line)));
  const env: Record<string, string> = {};
  for (const line of final.filter((candidate) => /^ENV\s/.test(candidate))) {
    for (const pair of line
      .replace(/^ENV\s+/, '')
      .trim()
      .split(/\s+/)) {
      const [name, ...value] = pair.split('=');
      env[name as string] = value.join('=');
    }
  }
  return env;
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

describe('container image', () => {
  const text = readFileSync(DOCKERFILE, 'utf8');

  it('passes dockerfile-utils with every rule an error', () => {
    assert.deepEqual(dockerfileUtilsProblems(text), []);
  });

  it('passes dockerfilelint', async () => {
    assert.deepEqual(await dockerfilelintProblems(DOCKERFILE), []);
  });

  it('builds in stages, installs production dependencies only, runs unprivileged with a health check', () => {
    assert.deepEqual(imageProblems(text), []);
  });

  it('keeps tests, Terraform, local state and secrets out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['.git', 'node_modules', 'test', 'bench', 'terraform', '.env']) {
      assert.ok(ignored.includes(entry), `.dockerignore does not exclude ${entry}`);
    }
  });

  describe('catches', () => {
    it('lint errors, with both linters', async () => {
      const broken = text
        .replace('CMD ["serve"]', 'CMD ["serve"]\nCMD ["serve", "--log-level", "debug"]')
        .replace('EXPOSE 8980 9090', 'EXPOSE 89800 9090');
      assert.ok(dockerfileUtilsProblems(broken).some((problem) => /only be one CMD/.test(problem)));
      const lintProblems = await dockerfilelintProblems(scratchFile('Dockerfile.lint', broken));
      assert.ok(
        lintProblems.some((problem) => /Invalid Port Exposed/.test(problem)),
        lintProblems.join('\n'),
      );
    });

    it('an install that skips a native addon’s build', () => {
      const broken = text.replace('npm ci --omit=dev', 'npm ci --omit=dev --ignore-scripts');
      const problems = imageProblems(broken, ['zstd-napi']);
      assert.ok(
        problems.some((problem) => /skips the install scripts that zstd-napi need/.test(problem)),
        problems.join('\n'),
      );
    });

    it('an image that runs as root, without a health check, with devDependencies', () => {
      const broken = text
        .replace('USER node\n', '')
        .replace(/HEALTHCHECK[^\n]*\n/, '')
        .replace('npm ci --omit=dev', 'npm ci');
      const problems = imageProblems(broken);
      assert.ok(
        problems.some((problem) => /runs as root/.test(problem)),
        problems.join('\n'),
      );
      assert.ok(
        problems.some((problem) => /no HEALTHCHECK/.test(problem)),
        problems.join('\n'),
      );
      assert.ok(
        problems.some((problem) => /add --omit=dev/.test(problem)),
        problems.join('\n'),
      );
    });
  });
});

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
      const file = scratchFile(
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
      const file = scratchFile('compose-regions.yml', broken);
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
      const file = scratchFile(
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
      const file = scratchFile(
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
