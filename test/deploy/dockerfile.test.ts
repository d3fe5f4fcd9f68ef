// The container image, checked without a Docker engine (none runs here): infra/Dockerfile is
// linted by dockerfile-utils (every rule an error) and dockerfilelint, and must be multi-stage,
// install production dependencies only (running the install scripts the project approved), run as
// a non-root user and carry a health check. Each check also runs on a broken copy, to show that it
// fails.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ValidationSeverity, validate } from 'dockerfile-utils';
import { BIN, createScratch, DOCKERFILE, ROOT, run } from './support/docker.ts';

const scratch = createScratch('tessera-dockerfile-');
after(() => scratch.remove());

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
      const lintProblems = await dockerfilelintProblems(scratch.file('Dockerfile.lint', broken));
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
