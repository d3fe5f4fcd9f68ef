import { startS3Redis } from '../conformance/harness.ts';
import { describeFuzz } from './fuzz.ts';
import { STREAMING_ENV, streamingCases } from './streaming-cases.ts';
import { describeHostile } from './suite.ts';

const start = (env?: Record<string, string>) => startS3Redis({ ...env, ...STREAMING_ENV });

describeHostile('S3 + Redis', start, streamingCases);
describeFuzz('S3 + Redis', start);
