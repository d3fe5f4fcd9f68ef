import { describeDiskFull } from './disk-full.ts';
import { startEmbedded } from './harness.ts';
import { describeLimits } from './limits-suite.ts';

describeLimits('embedded directory store', startEmbedded);
describeDiskFull(startEmbedded);
