import { startEmbedded } from '../conformance/harness.ts';
import { describeFuzz } from './fuzz.ts';
import { describeHostile } from './suite.ts';

describeHostile('embedded directory store', startEmbedded);
describeFuzz('embedded directory store', startEmbedded);
