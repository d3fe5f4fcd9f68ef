// Runs the `tessera` command as a script would: a child process, judged by its exit status,
// stdout and stderr.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const TESSERA_ENTRY = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));

export interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `tessera ARGS…` to completion without blocking the test process's event loop. */
export async function runTessera(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, [TESSERA_ENTRY, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  const [status] = (await once(child, 'close')) as [number | null];
  return {
    status,
    stdout: Buffer.concat(stdout),
    stderr: Buffer.concat(stderr).toString('utf8'),
  };
}
