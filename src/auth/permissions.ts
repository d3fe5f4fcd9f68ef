// Permissions and the instance patterns that grant them. A grant gives a set of permissions on
// every instance name its pattern matches; a caller may do what the union of its grants allows.
//
//   read      Capabilities, FindMissingBlobs, BatchReadBlobs, GetTree, ByteStream Read,
//             GetActionResult, Fetch.*
//   write     BatchUpdateBlobs, ByteStream Write and QueryWriteStatus, Push.*
//   ac-write  UpdateActionResult
//
// One more label exists for handlers only, never for tokens: `public`, for grpc.health.v1.Health,
// which load balancers and orchestrators call without credentials. A public handler is still
// labelled, so the server's start-up check (every handler has a permission) still holds.
//
// Patterns: `*` (every instance, the empty one included), `prefix/*` (every instance below
// `prefix/`, not `prefix` itself), or an exact instance name (`""` is the empty instance).
import { parseInstanceName } from '../grpc/resource-name.ts';

export const PERMISSIONS = ['read', 'write', 'ac-write'] as const;
export type Permission = (typeof PERMISSIONS)[number];
/** What a handler requires: a permission a token grants, or nothing at all. */
export type RoutePermission = Permission | 'public';

export type InstancePattern =
  | { readonly kind: 'any' }
  | { readonly kind: 'exact'; readonly name: string }
  | { readonly kind: 'prefix'; readonly prefix: string };

export interface Grant {
  readonly pattern: InstancePattern;
  readonly permissions: ReadonlySet<Permission>;
}

export function isPermission(text: string): text is Permission {
  return (PERMISSIONS as readonly string[]).includes(text);
}

/** Parses a pattern, or returns why it is not one (the pattern is never secret). */
export function parseInstancePattern(text: string): InstancePattern | string {
  if (text === '*') return { kind: 'any' };
  const prefix = text.endsWith('/*') ? text.slice(0, -2) : undefined;
  const name = prefix ?? text;
  if (name.includes('*')) {
    return (
      `instance pattern "${text}" may use "*" only alone or as its last segment, ` +
      'as in "team/*"'
    );
  }
  if (prefix === '') return `instance pattern "${text}" has an empty prefix; use "*" for all`;
  try {
    parseInstanceName(name);
  } catch (error) {
    return `instance pattern "${text}": ${(error as Error).message}`;
  }
  return prefix === undefined ? { kind: 'exact', name } : { kind: 'prefix', prefix };
}

export function matchesInstance(pattern: InstancePattern, instance: string): boolean {
  switch (pattern.kind) {
    case 'any':
      return true;
    case 'exact':
      return instance === pattern.name;
    case 'prefix':
      return instance.startsWith(`${pattern.prefix}/`);
  }
}

export function grantsAllow(
  grants: readonly Grant[],
  instance: string,
  permission: Permission,
): boolean {
  return grants.some(
    (grant) => grant.permissions.has(permission) && matchesInstance(grant.pattern, instance),
  );
}
