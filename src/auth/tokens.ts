// Bearer tokens: the two ways to declare them (the `authTokens` setting and the tokens file), and
// the table that finds the entry for a presented token.
//
// Invariants:
// - Only SHA-256 digests of tokens are kept; a plain token from the setting or the file is hashed
//   as it is parsed and never stored, logged or put in an error message.
// - A lookup hashes the presented token and compares it with every entry's digest in constant
//   time, without stopping at a match, so timing tells nothing about which entry or how much of a
//   digest matched.
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  type Grant,
  isPermission,
  PERMISSIONS,
  type Permission,
  parseInstancePattern,
} from './permissions.ts';

export interface TokenEntry {
  /** Shown in logs and errors instead of the token. */
  readonly name: string;
  readonly sha256: Buffer;
  readonly grants: readonly Grant[];
}

/** RFC 6750's token68 characters. */
const TOKEN_RE = /^[A-Za-z0-9._~+/-]+=*$/;
/** Shorter tokens can be guessed; 32 random hex digits is a good token. */
export const MIN_TOKEN_LENGTH = 16;
const MAX_TOKEN_LENGTH = 4096;

export function sha256Of(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Why a plain token is unusable, without quoting it; undefined when it is fine. */
function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH || token.length > MAX_TOKEN_LENGTH) {
    return (
      `the token is ${token.length} characters long; use ${MIN_TOKEN_LENGTH} to ` +
      `${MAX_TOKEN_LENGTH} (for example the output of "openssl rand -hex 32")`
    );
  }
  if (!TOKEN_RE.test(token)) return 'the token may hold only letters, digits and -._~+/ (then =)';
  return undefined;
}

/**
 * Parses the `authTokens` setting: entries separated by commas or whitespace, each
 * `TOKEN:PERMISSION[+PERMISSION…][:INSTANCE_PATTERN]` (the pattern defaults to `*`). Entries with
 * the same token add grants to one entry, named `authTokens#N` after its first appearance.
 * Returns the entries, or the problems found (which never quote a token).
 */
export function parseStaticTokens(text: string): TokenEntry[] | string[] {
  const problems: string[] = [];
  const byDigest = new Map<string, { name: string; sha256: Buffer; grants: Grant[] }>();
  const entries = text.split(/[\s,]+/).filter((entry) => entry !== '');
  if (entries.length === 0) return ['no entries; expected TOKEN:PERMISSIONS[:INSTANCE_PATTERN]'];
  entries.forEach((entry, index) => {
    const where = `entry ${index + 1}`;
    const first = entry.indexOf(':');
    const second = first < 0 ? -1 : entry.indexOf(':', first + 1);
    if (first < 0) {
      problems.push(`${where} has no ":"; expected TOKEN:PERMISSIONS[:INSTANCE_PATTERN]`);
      return;
    }
    const token = entry.slice(0, first);
    const permissionText = second < 0 ? entry.slice(first + 1) : entry.slice(first + 1, second);
    const patternText = second < 0 ? '*' : entry.slice(second + 1);
    const problem = tokenProblem(token);
    if (problem) problems.push(`${where}: ${problem}`);
    const permissions = parsePermissions(permissionText.split('+'), where, problems);
    const pattern = parseInstancePattern(patternText);
    if (typeof pattern === 'string') problems.push(`${where}: ${pattern}`);
    if (problem || !permissions || typeof pattern === 'string') return;

    const sha256 = sha256Of(token);
    const key = sha256.toString('hex');
    const existing = byDigest.get(key);
    const grant = { pattern, permissions };
    if (existing) existing.grants.push(grant);
    else byDigest.set(key, { name: `authTokens#${byDigest.size + 1}`, sha256, grants: [grant] });
  });
  return problems.length > 0 ? problems : [...byDigest.values()];
}

function parsePermissions(
  names: readonly string[],
  where: string,
  problems: string[],
): ReadonlySet<Permission> | undefined {
  const unknown = names.filter((name) => !isPermission(name));
  if (unknown.length === 0) return new Set(names as Permission[]);
  problems.push(
    `${where}: permission ${unknown.map((name) => `"${name}"`).join(', ')} is unknown; ` +
      `known: ${PERMISSIONS.join(', ')}`,
  );
  return undefined;
}

const grantSchema = z
  .object({
    instance: z.string().transform((text, ctx) => {
      const pattern = parseInstancePattern(text);
      if (typeof pattern !== 'string') return pattern;
      ctx.addIssue({ code: 'custom', message: pattern });
      return z.NEVER;
    }),
    permissions: z.array(z.enum(PERMISSIONS)).min(1),
  })
  .strict()
  .transform(
    ({ instance, permissions }): Grant => ({
      pattern: instance,
      permissions: new Set(permissions),
    }),
  );

const tokenSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'expected 1 to 64 of A-Z a-z 0-9 . _ @ -'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits: the SHA-256 of the token')
      .optional(),
    token: z
      .string()
      .superRefine((token, ctx) => {
        const problem = tokenProblem(token);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    grants: z.array(grantSchema).min(1),
  })
  .strict()
  .superRefine((entry, ctx) => {
    if ((entry.sha256 === undefined) === (entry.token === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of "sha256" and "token"' });
    }
  })
  .transform(
    (entry): TokenEntry => ({
      name: entry.name,
      sha256:
        entry.sha256 === undefined ? sha256Of(entry.token ?? '') : Buffer.from(entry.sha256, 'hex'),
      grants: entry.grants,
    }),
  );

const tokenFileSchema = z.object({ tokens: z.array(tokenSchema) }).strict();

/** The tokens file's entries, or the problems found in it (which never quote a token). */
export function parseTokenFile(text: string): TokenEntry[] | string[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    // Node's message quotes the text around the fault, which may be a token: give a position only.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    return [`not valid JSON${position === undefined ? '' : ` (near character ${position})`}`];
  }
  const parsed = tokenFileSchema.safeParse(data);
  if (!parsed.success) {
    return parsed.error.issues.map((issue) => `${pathText(issue.path)}: ${issue.message}`);
  }
  return parsed.data.tokens;
}

function pathText(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    text += typeof key === 'number' ? `[${key}]` : `${text ? '.' : ''}${String(key)}`;
  }
  return text || '(top level)';
}

export interface TokenTable {
  readonly size: number;
  /** The entry whose token this is, or undefined. */
  find(token: string): TokenEntry | undefined;
}

/** Builds the table; throws an Error naming the entries when two names or tokens repeat. */
export function createTokenTable(entries: readonly TokenEntry[]): TokenTable {
  const names = new Set<string>();
  const digests = new Map<string, string>();
  for (const entry of entries) {
    if (names.has(entry.name)) throw new Error(`token name "${entry.name}" is used twice`);
    names.add(entry.name);
    const other = digests.get(entry.sha256.toString('hex'));
    if (other !== undefined) {
      throw new Error(`tokens "${other}" and "${entry.name}" are the same token; merge them`);
    }
    digests.set(entry.sha256.toString('hex'), entry.name);
  }
  const table = [...entries];
  return {
    size: table.length,
    find(token) {
      const presented = sha256Of(token);
      let found: TokenEntry | undefined;
      for (const entry of table) {
        if (timingSafeEqual(entry.sha256, presented) && found === undefined) found = entry;
      }
      return found;
    },
  };
}
