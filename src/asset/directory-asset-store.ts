// Asset mappings in the embedded data directory.
//
// Layout under the data directory:
//   asset/{sha256(instance)}/{key[0..2]}/{key}    an encoded asset record (asset-record.ts);
//                                                 {key} is the hex SHA-256 of the canonical name
//   asset/.../{key}.{random}.tmp                  a record being written
//
// Writes go to a temp file that is fsynced, renamed over the record and followed by an fsync of
// the directory, so a reader sees the old record or the new one, never a mix. A crash before the
// rename leaves a stray .tmp file (never read); after it, the new record is durable.
//
// Like the rest of embedded mode there are no leases: a record stays until a push replaces it.
// Expired records are kept but never served (the service checks `expire_at` on every fetch).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diskError } from '../cas/errors.ts';
import { writeFileDurably } from '../embedded/durable-file.ts';
import type { AssetStore } from './asset-store.ts';

export class DirectoryAssetStore implements AssetStore {
  readonly #root: string;

  /** `dataDir` is the embedded store's data directory; records go under its `asset/`. */
  constructor(dataDir: string) {
    this.#root = join(dataDir, 'asset');
  }

  pathOf(instance: string, key: string): string {
    const space = createHash('sha256').update(instance).digest('hex');
    return join(this.#root, space, key.slice(0, 2), key);
  }

  async get(instance: string, key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.pathOf(instance, key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw diskError(error, 'cannot read asset record');
    }
  }

  async put(instance: string, key: string, encoded: Uint8Array): Promise<void> {
    await writeFileDurably(this.pathOf(instance, key), encoded, 'the asset record');
  }
}
