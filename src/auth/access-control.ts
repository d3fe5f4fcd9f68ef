// Who may call what. With no token source configured access is open, as it has always been. With
// `authTokens` or `authTokensFile` every call must carry `authorization: Bearer <token>` metadata
// naming a known token (UNAUTHENTICATED otherwise), and the token must grant the method's
// permission on the instance the request names (PERMISSION_DENIED otherwise).
//
// The gRPC handler wrappers (src/grpc/handlers.ts) call authenticate() before a handler runs and
// authorize() as soon as the request's instance name is parsed; messages name the method, the
// instance and the permission, never the token.
import type { Metadata } from '@grpc/grpc-js';
import { CasError } from '../cas/errors.ts';
import { ConfigError } from '../config/load.ts';
import type { Logger } from '../observability/logger.ts';
import { grantsAllow, type Permission } from './permissions.ts';
import { type ReloadOutcome, readTokenFile, TokenFileWatcher } from './token-file.ts';
import { createTokenTable, type TokenEntry, type TokenTable } from './tokens.ts';

export interface Caller {
  /** The token's name; undefined when access is open. */
  readonly name: string | undefined;
}

export interface AccessControl {
  /** For the startup log line: "open", or how many tokens come from where. */
  readonly summary: string;
  /** The caller behind the call's metadata; throws UNAUTHENTICATED. */
  authenticate(method: string, metadata: Metadata): Caller;
  /** Throws PERMISSION_DENIED unless the caller holds `permission` on `instance`. */
  authorize(caller: Caller, method: string, instance: string, permission: Permission): void;
  /** Reads the tokens file again (SIGHUP); a no-op without one. */
  reload(): Promise<void>;
  /** Calls `listener` after each reload of the tokens file that applied or refused a change. */
  onReload(listener: (outcome: ReloadOutcome) => void): () => void;
  close(): void;
}

export interface AccessSettings {
  readonly authTokens?: readonly TokenEntry[] | undefined;
  readonly authTokensFile?: string | undefined;
}

const OPEN: Caller = { name: undefined };
const BEARER_RE = /^bearer +([^ ]+) *$/i;

interface TokenCaller extends Caller {
  readonly entry: TokenEntry;
}

/** Loads the token sources; a tokens file that cannot be used is a ConfigError. */
export async function createAccessControl(
  settings: AccessSettings,
  log: Logger,
): Promise<AccessControl> {
  const fixed = settings.authTokens ?? [];
  const path = settings.authTokensFile;
  if (fixed.length === 0 && path === undefined) return openAccess();

  let fromFile: { entries: TokenEntry[]; text: string } = { entries: [], text: '' };
  let table: TokenTable;
  try {
    if (path !== undefined) fromFile = await readTokenFile(path);
    table = createTokenTable([...fixed, ...fromFile.entries]);
  } catch (error) {
    const where = path === undefined ? 'authTokens' : `authTokensFile = "${path}"`;
    throw new ConfigError(`invalid configuration:\n  ${where}: ${(error as Error).message}`);
  }
  const watcher =
    path === undefined
      ? undefined
      : new TokenFileWatcher(
          {
            path,
            log,
            apply: (entries) => {
              table = createTokenTable([...fixed, ...entries]);
            },
          },
          fromFile.text,
        );

  const sources = [
    fixed.length > 0 ? `${fixed.length} from authTokens` : '',
    path === undefined ? '' : `${fromFile.entries.length} from ${path} (reloaded on change)`,
  ];
  return {
    summary: `bearer tokens: ${sources.filter(Boolean).join(', ')}`,
    authenticate(method, metadata) {
      const values = metadata.get('authorization');
      if (values.length === 0) {
        throw unauthenticated(
          `${method} needs a bearer token: send the metadata "authorization: Bearer <token>"`,
        );
      }
      const match = values.length === 1 ? BEARER_RE.exec(String(values[0])) : null;
      if (!match?.[1]) {
        throw unauthenticated(
          `${method}: the authorization metadata is not one "Bearer <token>" value`,
        );
      }
      const entry = table.find(match[1]);
      if (!entry) throw unauthenticated(`${method}: the bearer token is unknown or revoked`);
      const caller: TokenCaller = { name: entry.name, entry };
      return caller;
    },
    authorize(caller, method, instance, permission) {
      const entry = (caller as TokenCaller).entry;
      if (entry && grantsAllow(entry.grants, instance, permission)) return;
      throw new CasError(
        'permission_denied',
        `token "${caller.name}" may not call ${method} on instance "${instance}": it lacks the ` +
          `"${permission}" permission there`,
      );
    },
    reload: () => watcher?.reload() ?? Promise.resolve(),
    onReload: (listener) => watcher?.onReload(listener) ?? (() => undefined),
    close: () => watcher?.close(),
  };
}

function openAccess(): AccessControl {
  return {
    summary: 'open (no authTokens or authTokensFile)',
    authenticate: () => OPEN,
    authorize: () => undefined,
    reload: () => Promise.resolve(),
    onReload: () => () => undefined,
    close: () => undefined,
  };
}

function unauthenticated(message: string): CasError {
  return new CasError('unauthenticated', message);
}
