// Shared by the container and compose checks: the repository's paths, a child-process runner,
// scratch files for the negative cases, and the environment the image gives every container.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DOCKERFILE = join(ROOT, 'infra', 'Dockerfile');
export const BIN = join(ROOT, 'node_modules', '.bin');

/** A scratch directory for broken copies of the real files; `remove` deletes it. */
export function createScratch(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    file(name: string, text: string): string {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    remove(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The ENV of the Dockerfile's final stage, which every container starts with. */
export function imageEnvironment(text: string): Record<string, string> {
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
