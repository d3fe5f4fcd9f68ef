import { startS3Redis } from './harness.ts';
import { describeConformance } from './suite.ts';

// A low multipart threshold so the suite's larger blobs take the multipart path too.
describeConformance('S3 + Redis', () =>
  startS3Redis({ TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(2 * 1024 * 1024) }),
);
