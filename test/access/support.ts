// What the access tests share: an embedded server whose log lines they can read, fresh tokens, and
// a client that calls any method of any service definition and reports the status it ended with.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ChannelCredentials,
  Client,
  credentials,
  Metadata,
  type MethodDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { type App, startApp } from '../../src/app.ts';
import type { ReloadOutcome } from '../../src/auth/token-file.ts';
import { loadConfig } from '../../src/config/load.ts';
import { captureLogs } from '../support/logs.ts';

export interface LoggedServer {
  readonly app: App;
  readonly address: string;
  readonly dir: string;
  /** Every line logged so far, at trace level and up. */
  readonly lines: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** An embedded-mode server configured by TESSERA_* variables, logging into memory. */
export async function startLogged(env: Record<string, string>): Promise<LoggedServer> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-access-'));
  const settings = loadConfig({
    argv: ['--listen', '127.0.0.1:0'],
    env: { TESSERA_DATA_DIR: join(dir, 'data'), ...env },
  });
  const { log, lines } = captureLogs('trace');
  let app: App;
  try {
    app = await startApp(settings, log);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    app,
    address: app.address,
    dir,
    lines,
    async stop() {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A token nobody could guess, with a readable label in front. */
export function newToken(label: string): string {
  return `${label}-${randomBytes(16).toString('hex')}`;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Replaces a file the way deployment tools do: write a sibling, then rename over it. */
export async function replaceFile(path: string, content: string): Promise<void> {
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, content);
  await rename(temp, path);
}

/** The next reload outcome that satisfies `accept` (earlier, unaccepted ones are skipped). */
export function nextReload(
  app: App,
  accept: (outcome: ReloadOutcome) => boolean = () => true,
): Promise<ReloadOutcome> {
  return new Promise((resolve) => {
    const stop = app.access.onReload((outcome) => {
      if (!accept(outcome)) return;
      stop();
      resolve(outcome);
    });
  });
}

export interface CallOutcome {
  readonly code: status;
  readonly message: string;
}

/**
 * Calls one method with one request message (a client stream sends it and half-closes) and
 * resolves with the status the call ended with, OK included.
 */
export function callMethod(
  address: string,
  method: MethodDefinition<object, object>,
  request: object,
  headers: Record<string, string> = {},
  channelCredentials: ChannelCredentials = credentials.createInsecure(),
): Promise<CallOutcome> {
  const client = new Client(address, channelCredentials);
  const metadata = new Metadata();
  for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
  const { path, requestSerialize: serialize, responseDeserialize: deserialize } = method;
  return new Promise<CallOutcome>((resolve) => {
    const done = (error: ServiceError | null) => {
      client.close();
      resolve(
        error ? { code: error.code, message: error.details } : { code: status.OK, message: '' },
      );
    };
    if (method.requestStream) {
      const call = client.makeClientStreamRequest(path, serialize, deserialize, metadata, done);
      call.write(request);
      call.end();
    } else if (method.responseStream) {
      const call = client.makeServerStreamRequest(path, serialize, deserialize, request, metadata);
      call.on('data', () => undefined);
      call.on('error', done);
      call.on('end', () => done(null));
    } else {
      client.makeUnaryRequest(path, serialize, deserialize, request, metadata, done);
    }
  });
}
