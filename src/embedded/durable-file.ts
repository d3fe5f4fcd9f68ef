// Writing a small file so that a crash leaves either the old file or the whole new one: write a
// temp file beside it, fsync, rename over the target, fsync the directory. Used for action results
// and asset records in embedded mode; blobs take the same steps through the staging spool.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { diskError } from '../cas/errors.ts';

/** Directories this process has already created, so hot paths skip the mkdir. */
const knownDirs = new Set<string>();

export async function ensureDir(dir: string): Promise<void> {
  if (knownDirs.has(dir)) return;
  await mkdir(dir, { recursive: true });
  knownDirs.add(dir);
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `target` with `bytes` atomically and durably; `what` names it in errors. */
export async function writeFileDurably(
  target: string,
  bytes: Uint8Array,
  what: string,
): Promise<void> {
  const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await ensureDir(dirname(target));
    const file = await open(temp, 'wx', 0o644);
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, target);
    await syncDir(dirname(target));
  } catch (error) {
    await rm(temp, { force: true });
    throw diskError(error, `cannot store ${what}`);
  }
}
