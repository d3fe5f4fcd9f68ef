import { startEmbedded } from './harness.ts';
import { describeZstd } from './zstd-suite.ts';

describeZstd('embedded directory store', startEmbedded);
