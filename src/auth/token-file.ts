// Keeps the tokens loaded from `authTokensFile` in step with the file. A change is noticed three
// ways: fs.watch on the file's directory (which also sees editors and secret mounts that replace
// the file by renaming), a stat of the file every few seconds for filesystems where watching
// misses changes, and reload() (SIGHUP). Each way ends in one serialised check that reads the
// file, and parses and applies it only when its content changed.
//
// A file that cannot be read or parsed on a reload is logged as an error and the tokens loaded
// before stay in force: a half-written or mistyped file never locks everyone out, and never opens
// access. A deleted file counts as unreadable.
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../observability/logger.ts';
import { parseTokenFile, type TokenEntry } from './tokens.ts';

/** How often the file is stat'ed in case no watch event comes. */
export const TOKEN_FILE_POLL_MS = 5_000;
/** Events closer together than this end in one check (an editor's save is several events). */
const DEBOUNCE_MS = 50;

export interface ReloadOutcome {
  readonly ok: boolean;
  /** How many tokens the file holds, when ok. */
  readonly tokens?: number;
  /** What is wrong with the file, when not ok; it never quotes a token. */
  readonly problem?: string;
}

export interface TokenFileOptions {
  readonly path: string;
  readonly log: Logger;
  /** Puts the file's entries in force; throws when they cannot be (the old ones then stay). */
  readonly apply: (entries: TokenEntry[]) => void;
  readonly pollMs?: number;
  /** False leaves only polling and reload(), as on a filesystem without change events. */
  readonly watch?: boolean;
}

/** Reads and parses the file for startup; throws an Error whose message names the problems. */
export async function readTokenFile(
  path: string,
): Promise<{ entries: TokenEntry[]; text: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read it: ${(error as NodeJS.ErrnoException).code ?? 'i/o error'}`);
  }
  const parsed = parseTokenFile(text);
  if (isProblems(parsed)) throw new Error(parsed.join('; '));
  return { entries: parsed, text };
}

export class TokenFileWatcher {
  readonly #options: TokenFileOptions;
  readonly #listeners = new Set<(outcome: ReloadOutcome) => void>();
  readonly #poll: NodeJS.Timeout;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  /** Digest of the content last read, whether it was applied or refused. */
  #seen: string;
  #statSignature = '';
  #running: Promise<void> | undefined;
  #again = false;

  /** `loadedText` is the content already applied at startup. */
  constructor(options: TokenFileOptions, loadedText: string) {
    this.#options = options;
    this.#seen = digestOf(loadedText);
    this.#poll = setInterval(() => void this.#pollOnce(), options.pollMs ?? TOKEN_FILE_POLL_MS);
    this.#poll.unref();
    if (options.watch !== false) this.#startWatching();
    // The first poll only records the signature: its check finds the content already applied.
    void this.#pollOnce();
  }

  /** Calls `listener` after every check that applied or refused a changed file. */
  onReload(listener: (outcome: ReloadOutcome) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Reads the file again even if it looks unchanged, and logs the outcome. */
  reload(): Promise<void> {
    this.#seen = '';
    return this.#check();
  }

  close(): void {
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    this.#watcher?.close();
  }

  #startWatching(): void {
    try {
      this.#watcher = watch(dirname(this.#options.path), { persistent: false }, () => {
        if (this.#debounce) return;
        this.#debounce = setTimeout(() => {
          this.#debounce = undefined;
          void this.#check();
        }, DEBOUNCE_MS);
        this.#debounce.unref();
      });
    } catch (error) {
      this.#watchFailed(error);
      return;
    }
    this.#watcher.on('error', (error) => this.#watchFailed(error));
  }

  #watchFailed(error: unknown): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#options.log.warn(
      { file: this.#options.path, err: error },
      'cannot watch the auth tokens file; checking it by polling only',
    );
  }

  async #pollOnce(): Promise<void> {
    let signature: string;
    try {
      const info = await stat(this.#options.path);
      signature = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    } catch (error) {
      signature = `missing:${(error as NodeJS.ErrnoException).code}`;
    }
    const changed = signature !== this.#statSignature;
    this.#statSignature = signature;
    if (changed) await this.#check();
  }

  /** One check at a time; a request during a check runs one more check after it. */
  #check(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    const run = async () => {
      do {
        this.#again = false;
        await this.#checkOnce();
      } while (this.#again);
    };
    this.#running = run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #checkOnce(): Promise<void> {
    const { path, log } = this.#options;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'i/o error';
      if (this.#seen === `unreadable:${code}`) return;
      this.#seen = `unreadable:${code}`;
      this.#refuse(`cannot read it: ${code}`);
      return;
    }
    const digest = digestOf(text);
    if (digest === this.#seen) return;
    this.#seen = digest;

    const parsed = parseTokenFile(text);
    if (isProblems(parsed)) {
      this.#refuse(parsed.join('; '));
      return;
    }
    try {
      this.#options.apply(parsed);
    } catch (error) {
      this.#refuse((error as Error).message);
      return;
    }
    log.info({ file: path, tokens: parsed.length }, 'auth tokens file reloaded');
    this.#emit({ ok: true, tokens: parsed.length });
  }

  #refuse(problem: string): void {
    this.#options.log.error(
      { file: this.#options.path, problem },
      'auth tokens file refused; the tokens loaded before stay in force',
    );
    this.#emit({ ok: false, problem });
  }

  #emit(outcome: ReloadOutcome): void {
    for (const listener of this.#listeners) listener(outcome);
  }
}

function isProblems(parsed: TokenEntry[] | string[]): parsed is string[] {
  return typeof parsed[0] === 'string';
}

function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
