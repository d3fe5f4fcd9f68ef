import { startEmbedded } from './harness.ts';
import { describeConformance } from './suite.ts';

describeConformance('embedded directory store', startEmbedded);
