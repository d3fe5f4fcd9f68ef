// The contract between the Remote Asset services and a place that keeps asset mappings. Two
// implementations: Redis (S3 mode, src/asset/redis-asset-store.ts) and the data directory
// (embedded mode, src/asset/directory-asset-store.ts). Both pass the asset conformance suite
// (test/conformance/asset-suite.ts).
//
// A store keeps opaque encoded records (src/asset/asset-record.ts) under a key hashed from the
// canonical asset name, namespaced by instance name. It never decides whether a record may be
// served: expiry and the commit check of the content it names are the service's job, done on every
// fetch. A store may therefore return a record that is expired or whose content is gone; it must
// never return a partly written one.

export interface AssetStore {
  /**
   * The record stored under `key` for `instance`, or undefined. Where the store has leases, this
   * refreshes the record's lease.
   */
  get(instance: string, key: string): Promise<Buffer | undefined>;

  /**
   * Stores `encoded` under `key` for `instance`, replacing any earlier record whole. `expiresAtMs`
   * (epoch milliseconds) lets a store reclaim the record once it can no longer be served.
   */
  put(
    instance: string,
    key: string,
    encoded: Uint8Array,
    expiresAtMs: number | undefined,
  ): Promise<void>;
}
