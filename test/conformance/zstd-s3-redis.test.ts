import { startS3Redis } from './harness.ts';
import { describeZstd } from './zstd-suite.ts';

// A low multipart threshold, so the blob over 16 MiB goes to S3 in several parts.
describeZstd('S3 + Redis', (env = {}) =>
  startS3Redis({
    TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(8 * 1024 * 1024),
    TESSERA_S3_PART_SIZE_BYTES: String(5 * 1024 * 1024),
    ...env,
  }),
);
