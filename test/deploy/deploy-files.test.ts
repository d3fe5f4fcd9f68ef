// Checks that docker-compose.yml and the files under infra/ agree with the code: every TESSERA_*
// name they mention is a setting the server reads, the compose stack runs tessera in S3 mode
// against its own MinIO and Redis, and the image runs scripts it actually copies in. No engine is
// needed.
//
// There is no YAML parser among the dependencies, so the compose file is read line by line. That
// reader understands only the shapes this file uses (two-space indents, `environment` as a map)
// and fails loudly on anything else rather than passing without having looked.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';
import { KNOWN_ENV_NAMES } from './support/env-names.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
const DOCKERFILE = readFileSync(join(ROOT, 'infra', 'Dockerfile'), 'utf8');
const HEALTHCHECK_SCRIPT = join(ROOT, 'infra', 'healthcheck.js');

const indentOf = (line: string): number => line.length - line.trimStart().length;
const isContent = (line: string): boolean =>
  line.trim() !== '' && !line.trimStart().startsWith('#');

/** The lines nested under the first `key:` line found at `indent` within `lines`. */
function blockUnder(lines: readonly string[], key: string, indent: number): string[] {
  const start = lines.findIndex((line) => indentOf(line) === indent && line.trim() === `${key}:`);
  assert.notEqual(start, -1, `no "${key}:" at indent ${indent}`);
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (isContent(line) && indentOf(line) <= indent) break;
    body.push(line);
  }
  return body;
}

function composeService(name: string): string[] {
  return blockUnder(blockUnder(COMPOSE.split('\n'), 'services', 0), name, 2);
}

function unquote(value: string): string {
  const match = /^(['"])(.*)\1$/.exec(value);
  return match?.[2] ?? value;
}

/** A service's `environment` map, as written (anchors such as `*dev-access-key` stay literal). */
function composeEnvironment(service: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of blockUnder(composeService(service), 'environment', 4).filter(isContent)) {
    const match = /^ {6}([A-Za-z_][A-Za-z0-9_]*): (.+)$/.exec(line);
    assert.ok(match, `unexpected line in ${service}.environment (expected KEY: value): ${line}`);
    env.set(match[1]!, unquote(match[2]!.trim()));
  }
  return env;
}

/** The instructions of the Dockerfile's last stage, continuation lines joined, comments dropped. */
function finalStage(): string[] {
  const instructions = DOCKERFILE.replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const lastFrom = instructions.findLastIndex((line) => /^FROM\s/i.test(line));
  assert.notEqual(lastFrom, -1, 'infra/Dockerfile has no FROM');
  return instructions.slice(lastFrom);
}

function dockerfileEnv(): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of finalStage().filter((line) => /^ENV\s/i.test(line))) {
    const pairs = line.replace(/^ENV\s+/i, '').split(/\s+/);
    for (const pair of pairs) {
      const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(pair);
      assert.ok(match, `expected KEY=value in "${line}", found "${pair}"`);
      env.set(match[1]!, unquote(match[2]!));
    }
  }
  return env;
}

/** The JSON (exec) form of ENTRYPOINT, CMD or HEALTHCHECK's command in the final stage. */
function execFormOf(instruction: 'ENTRYPOINT' | 'CMD' | 'HEALTHCHECK'): string[] {
  const line = finalStage().findLast((candidate) => candidate.startsWith(`${instruction} `));
  assert.ok(line, `infra/Dockerfile has no ${instruction} in its final stage`);
  const argument =
    instruction === 'HEALTHCHECK'
      ? line.slice(line.indexOf(' CMD ') + ' CMD '.length).trim()
      : line.slice(instruction.length + 1).trim();
  const form: unknown = argument.startsWith('[') ? JSON.parse(argument) : undefined;
  assert.ok(
    Array.isArray(form) && form.every((part) => typeof part === 'string'),
    `${instruction} must use the JSON (exec) form, which runs node without a shell: ${line}`,
  );
  return form;
}

/** Asserts that `node <script>` from WORKDIR runs a file of this repository the image copies in. */
function assertRunsCopiedScript(instruction: 'ENTRYPOINT' | 'HEALTHCHECK'): void {
  const [program, script, ...rest] = execFormOf(instruction);
  assert.equal(program, 'node');
  assert.deepEqual(rest, []);
  assert.ok(script && !script.startsWith('/'), `expected a path under WORKDIR, got ${script}`);
  assert.ok(existsSync(join(ROOT, script)), `${instruction} runs ${script}, not in the repository`);

  const sources = finalStage()
    .filter((line) => /^COPY\s/i.test(line) && !/--from=/i.test(line))
    .flatMap((line) => line.split(/\s+/).slice(1, -1))
    .filter((source) => !source.startsWith('--'));
  assert.ok(
    sources.some((source) => script === source || script.startsWith(`${source}/`)),
    `${instruction} runs ${script}, which no COPY puts into the image (${sources.join(', ')})`,
  );
}

/** Runs infra/healthcheck.js as the image does, with only `env`, and returns its exit code. */
function runHealthcheck(env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    execFile(process.execPath, [HEALTHCHECK_SCRIPT], { env }, (error) =>
      resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : -1),
    );
  });
}

/** The port of the operations HTTP server, from the server's "listening" log line. */
function httpPortOf(server: TesseraProcess): string {
  const listening = server.logs.find((entry) => entry.msg === 'listening');
  const address = listening?.httpAddress;
  assert.ok(typeof address === 'string', 'the server reported no httpAddress');
  return address.split(':').pop() as string;
}

describe('deployment files', () => {
  it('name only TESSERA_* variables that are real settings', () => {
    for (const [file, text] of [
      ['docker-compose.yml', COMPOSE],
      ['infra/Dockerfile', DOCKERFILE],
      ['infra/healthcheck.js', readFileSync(HEALTHCHECK_SCRIPT, 'utf8')],
    ] as const) {
      const names = new Set(text.match(/\bTESSERA_[A-Z0-9_]+/g) ?? []);
      assert.ok(names.size > 0, `${file} mentions no TESSERA_* variable`);
      for (const name of names) {
        assert.ok(KNOWN_ENV_NAMES.has(name), `${file} mentions ${name}, which no setting reads`);
      }
    }
  });

  it('give the tessera service only environment variables the server reads', () => {
    for (const name of composeEnvironment('tessera').keys()) {
      assert.ok(KNOWN_ENV_NAMES.has(name), `tessera sets ${name}, which no setting reads`);
    }
  });

  it('run tessera in S3 mode against the MinIO and Redis of the same stack', () => {
    const env = composeEnvironment('tessera');

    assert.equal(env.get('TESSERA_S3_ENDPOINT'), 'http://minio:9000');
    assert.equal(env.get('TESSERA_S3_FORCE_PATH_STYLE'), 'true');
    assert.equal(env.get('TESSERA_REDIS_URL'), 'redis://redis:6379');
    const bucket = env.get('TESSERA_S3_BUCKET');
    assert.ok(bucket, 'tessera sets no TESSERA_S3_BUCKET');
    const init = composeService('minio-init').join('\n');
    assert.match(init, new RegExp(`mc mb --ignore-existing \\w+/${bucket}\\s`));

    const minio = composeEnvironment('minio');
    assert.equal(env.get('AWS_ACCESS_KEY_ID'), minio.get('MINIO_ROOT_USER'));
    assert.equal(env.get('AWS_SECRET_ACCESS_KEY'), minio.get('MINIO_ROOT_PASSWORD'));
  });

  it('listen on every interface inside the container but publish on loopback only', () => {
    const listen =
      composeEnvironment('tessera').get('TESSERA_LISTEN') ?? dockerfileEnv().get('TESSERA_LISTEN');
    assert.equal(listen, '0.0.0.0:8980');
    assert.equal(dockerfileEnv().get('TESSERA_HTTP_LISTEN'), '0.0.0.0:9090');

    const ports = blockUnder(composeService('tessera'), 'ports', 4).filter(isContent);
    assert.deepEqual(
      ports.map((line) => unquote(line.trim().replace(/^- /, ''))),
      ['127.0.0.1:8980:8980', '127.0.0.1:9090:9090'],
    );
  });

  it('mount the staging volume where the image points TESSERA_STAGING_DIR', () => {
    const stagingDir = dockerfileEnv().get('TESSERA_STAGING_DIR');
    assert.ok(stagingDir, 'infra/Dockerfile sets no TESSERA_STAGING_DIR');
    const volumes = blockUnder(composeService('tessera'), 'volumes', 4).filter(isContent);
    assert.ok(
      volumes.some((line) => line.trim().endsWith(`:${stagingDir}`)),
      `no tessera volume is mounted at ${stagingDir}: ${volumes.join(', ')}`,
    );
  });

  it('start the image with a script that exists in the repository and is copied into it', () => {
    assertRunsCopiedScript('ENTRYPOINT');
    assert.deepEqual(execFormOf('CMD'), ['serve']);
  });

  it('check health with a script that exists in the repository and is copied into it', () => {
    assertRunsCopiedScript('HEALTHCHECK');
  });

  it('report healthy while a real server answers /healthz, and unhealthy once it stops', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-health-'));
    try {
      const tessera = await startTessera({
        env: {
          TESSERA_HTTP_LISTEN: '127.0.0.1:0',
          TESSERA_DATA_DIR: dataDir,
          TESSERA_STAGING_DIR: undefined,
          TESSERA_S3_BUCKET: undefined,
          TESSERA_REDIS_URL: undefined,
        },
      });
      const env = { TESSERA_HTTP_LISTEN: `0.0.0.0:${httpPortOf(tessera)}` };
      try {
        assert.equal(await runHealthcheck(env), 0);
      } finally {
        await tessera.stop();
      }

      assert.equal(await runHealthcheck(env), 1);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('report unhealthy when /healthz answers anything but 200', async () => {
    const server = createHttpServer((_request, response) => response.writeHead(503).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      assert.equal(await runHealthcheck({ TESSERA_HTTP_LISTEN: `0.0.0.0:${port}` }), 1);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('without an HTTP port, report healthy only while the gRPC port accepts connections', async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const env = { TESSERA_LISTEN: `0.0.0.0:${port}` };
    try {
      assert.equal(await runHealthcheck(env), 0);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }

    assert.equal(await runHealthcheck(env), 1);
  });
});
