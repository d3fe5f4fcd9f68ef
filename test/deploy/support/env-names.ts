// The environment variable names the server reads: one per setting of src/config/schema.ts, plus
// TESSERA_CONFIG (read by config/load.ts). Deployment files may set no other TESSERA_* name.
import { envNameOf, SETTING_NAMES } from '../../../src/config/schema.ts';

/**
 * Settings the deployment already passes that other branches are adding to the schema (regions:
 * region, peers, peerTimeoutMs, replication; metrics: httpListen).
 *
 * A name drops out of this set by itself once src/config/schema.ts declares it, so from then on
 * the schema alone decides. LIMITATION: until then, a deployment file could set one of these
 * names to a value the future setting will refuse; nothing here can check that. Delete the list
 * once all five have landed.
 */
export const SETTINGS_IN_FLIGHT: ReadonlySet<string> = new Set(
  [
    'TESSERA_REGION',
    'TESSERA_PEERS',
    'TESSERA_PEER_TIMEOUT_MS',
    'TESSERA_REPLICATION',
    'TESSERA_HTTP_LISTEN',
  ].filter((name) => !SETTING_NAMES.map(envNameOf).includes(name)),
);

export const KNOWN_ENV_NAMES: ReadonlySet<string> = new Set([
  ...SETTING_NAMES.map(envNameOf),
  'TESSERA_CONFIG',
  ...SETTINGS_IN_FLIGHT,
]);
