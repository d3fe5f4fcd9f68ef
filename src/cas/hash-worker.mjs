// The body of a part-hashing worker thread (see part-hashers.ts). Plain JavaScript, so it loads
// the same way whether the server runs under `node --import tsx` or through bin/tessera.js.
//
// A job carries everything it needs: the digest function, the hasher state the previous part
// ended with (none for the first), and a byte range of a file. The reply is the state after that
// range or, for the last part, the final digest. Jobs run one at a time, to completion, in order.
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import {
  createBLAKE3,
  createMD5,
  createSHA1,
  createSHA256,
  createSHA384,
  createSHA512,
} from 'hash-wasm';

const READ_BYTES = 1024 * 1024;

const hashers = Promise.all([
  createSHA256(),
  createSHA1(),
  createMD5(),
  createSHA384(),
  createSHA512(),
  createBLAKE3(),
]).then(([SHA256, SHA1, MD5, SHA384, SHA512, BLAKE3]) => ({
  SHA256,
  SHA1,
  MD5,
  SHA384,
  SHA512,
  BLAKE3,
}));
const buffer = Buffer.allocUnsafe(READ_BYTES);

function run(byFunction, job) {
  const hasher = byFunction[job.fn];
  if (!hasher) throw new Error(`no hasher for digest function ${job.fn}`);
  if (job.state) hasher.load(job.state);
  else hasher.init();
  if (job.length > 0) {
    const fd = openSync(job.path, 'r');
    try {
      for (let done = 0; done < job.length; ) {
        const want = Math.min(READ_BYTES, job.length - done);
        const got = readSync(fd, buffer, 0, want, job.start + done);
        if (got === 0) throw new Error(`${job.path} ended after ${done} of ${job.length} bytes`);
        hasher.update(buffer.subarray(0, got));
        done += got;
      }
    } finally {
      closeSync(fd);
    }
  }
  return job.final ? { digest: hasher.digest('hex') } : { state: hasher.save() };
}

parentPort?.on('message', (job) => {
  // Handlers resume in arrival order once the hashers exist, and each runs to the end without
  // yielding, so jobs never interleave on the shared hasher instances.
  void hashers.then((byFunction) => {
    try {
      parentPort?.postMessage({ id: job.id, ...run(byFunction, job) });
    } catch (error) {
      parentPort?.postMessage({ id: job.id, error: String(error?.message ?? error) });
    }
  });
});
