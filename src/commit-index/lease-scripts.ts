// The Lua scripts behind leases and garbage collection (lua/*.lua; each file's header documents
// its keys, arguments and replies), registered on a Redis connection under versioned names so a
// rolling upgrade never runs a new body under an old name.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Script file and number of keys. */
const SCRIPTS = {
  beginPut: ['begin-put-4.lua', 4],
  commitPut: ['commit-put-7.lua', 7],
  adoptEntry: ['adopt-entry-3.lua', 3],
  dropEntry: ['drop-entry-3.lua', 3],
  condemn: ['condemn-6.lua', 6],
  releaseIfOwner: ['release-if-owner-1.lua', 1],
  extendIfOwner: ['extend-if-owner-1.lua', 1],
} as const;

const SCRIPT_VERSION = 'v1';

export type LeaseScript = keyof typeof SCRIPTS;
type Args = (string | number)[];

/** Runs a registered lease script: keys first, then arguments. */
export type RunScript = (name: LeaseScript, ...keysThenArgs: Args) => Promise<unknown>;

/** Registers every lease script on `redis` (idempotent) and returns their runner. */
export function leaseScripts(redis: Redis): RunScript {
  for (const [name, [file, numberOfKeys]] of Object.entries(SCRIPTS)) {
    const command = `tessera_${name}_${SCRIPT_VERSION}`;
    if (command in redis) continue;
    const lua = readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
    redis.defineCommand(command, { numberOfKeys, lua });
  }
  const commands = redis as unknown as Record<string, (...args: Args) => Promise<unknown>>;
  return (name, ...args) => {
    const command = commands[`tessera_${name}_${SCRIPT_VERSION}`];
    if (!command) throw new Error(`lease script ${name} is not registered`);
    return command.apply(redis, args);
  };
}
