// What a cross-region read-through adds (docs/ARCHITECTURE.md, "Regions"): region A on its own
// Redis and RADOS Gateway, region B on the run's shared ones with A as its peer through a TCP
// proxy. Each repetition uploads a fresh blob to A, then times in B a Read that misses locally (B
// asks A, reads the blob, verifies it, writes its own bucket, commits, then serves), and a second
// Read of the same blob (a local hit). Once over plain loopback and once with the link delaying
// every chunk by LINK_DELAY_MS each way, as a peer region farther away would. Medians are printed.
//
// Run: node --import tsx test/support/services/run-with-services.ts -- \
//        node --import tsx bench/cross-region.ts
import { blobName, connect, digestOf, randomBlob, uploadName } from '../test/support/client.ts';
import {
  startLink,
  startPrivateRegion,
  startRegionReplica,
  startSharedRegion,
} from '../test/support/regions.ts';

const MIB = 1024 * 1024;
const REPETITIONS = 7;
const SIZES = [4 * 1024, 16 * MIB];
const LINK_DELAY_MS = 10;
/** XR_DELAYS=10 runs only the delayed link, for a quick look. */
const DELAYS = (process.env.XR_DELAYS ?? `0,${LINK_DELAY_MS}`).split(',').map(Number);

const median = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

async function main(): Promise<void> {
  const [regionA, regionB] = await Promise.all([
    startPrivateRegion('bench-xr-a'),
    startSharedRegion('bench-xr-b'),
  ]);
  const replicaA = await startRegionReplica(regionA.store, { region: 'a' });
  const link = await startLink(replicaA.address);
  const replicaB = await startRegionReplica(regionB.store, {
    region: 'b',
    peers: [{ name: 'a', address: link.address }],
    peerTimeoutMs: 5000,
    env: process.env.XR_DEBUG ? { TESSERA_LOG_LEVEL: 'debug' } : {},
  });
  const a = connect(replicaA.address);
  const b = connect(replicaB.address);
  const timeRead = async (name: string) => {
    const started = performance.now();
    await b.read(name);
    return performance.now() - started;
  };
  try {
    for (const delayMs of DELAYS) {
      link.setMode(delayMs === 0 ? { kind: 'pass' } : { kind: 'latency', ms: delayMs });
      for (const size of SIZES) {
        const misses: number[] = [];
        const hits: number[] = [];
        // One unmeasured round first, so connection setup is not counted.
        for (let i = 0; i <= REPETITIONS; i++) {
          const data = randomBlob(size);
          const digest = digestOf(data);
          await a.write(uploadName(digest), data, { chunkBytes: 1024 * 1024 });
          const miss = await timeRead(blobName(digest));
          const hit = await timeRead(blobName(digest));
          if (i === 0) continue;
          misses.push(miss);
          hits.push(hit);
        }
        const line = {
          linkDelayMsEachWay: delayMs,
          sizeBytes: size,
          repetitions: REPETITIONS,
          localHitMedianMs: Number(median(hits).toFixed(1)),
          readThroughMedianMs: Number(median(misses).toFixed(1)),
          addedMs: Number((median(misses) - median(hits)).toFixed(1)),
          missMs: misses.map((ms) => Math.round(ms)),
          hitMs: hits.map((ms) => Math.round(ms)),
        };
        process.stdout.write(`${JSON.stringify(line)}\n`);
      }
    }
  } catch (error) {
    const complaints = replicaB.server.logs.filter(
      (line) => line.level === 'warn' || line.level === 'error',
    );
    process.stderr.write(`${JSON.stringify(complaints.slice(-5), null, 1)}\n`);
    if (process.env.XR_DEBUG)
      process.stderr.write(`${JSON.stringify(replicaB.server.logs.slice(-12))}\n`);
    throw error;
  } finally {
    a.close();
    b.close();
    await Promise.allSettled([replicaA.stop(), replicaB.stop(), link.close()]);
    await Promise.allSettled([regionA.close(), regionB.close()]);
  }
}

await main();
