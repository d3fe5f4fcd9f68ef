// The environment variable names the server reads: one per setting of src/config/schema.ts, plus
// TESSERA_CONFIG (read by config/load.ts). Deployment files may set no other TESSERA_* name.
import { envNameOf, SETTING_NAMES } from '../../../src/config/schema.ts';

export const KNOWN_ENV_NAMES: ReadonlySet<string> = new Set([
  ...SETTING_NAMES.map(envNameOf),
  'TESSERA_CONFIG',
]);
