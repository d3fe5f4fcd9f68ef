// The operations HTTP port (setting httpListen), separate from the gRPC port so that it can stay
// on a private network and carry no auth:
//   GET /metrics   Prometheus text format (this server's registry only)
//   GET /healthz   200 while the process serves; the container health check calls it
//   GET /readyz    200 when every backend probe passes, 503 otherwise; JSON body names each check
// Anything else is 404; methods other than GET and HEAD are 405.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { Readiness } from './readiness.ts';

export interface HttpServer {
  /** host:port actually bound (port 0 picks one). */
  readonly address: string;
  close(): Promise<void>;
}

export async function startHttpServer(
  listen: string,
  deps: { metrics: Metrics; readiness: Readiness; log: Logger },
): Promise<HttpServer> {
  const server: Server = createServer((request, response) => {
    route(request, response, deps).catch((error: unknown) => {
      deps.log.error({ err: error, path: request.url }, 'http request failed');
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
      response.end('internal error\n');
    });
  });
  // Probes come often and on fresh connections; do not keep idle ones open long.
  server.keepAliveTimeout = 5_000;

  const split = listen.lastIndexOf(':');
  const host = listen.slice(0, split).replace(/^\[(.*)\]$/, '$1');
  server.listen(Number(listen.slice(split + 1)), host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([error]) => {
      throw new Error(`cannot listen for HTTP on ${listen}: ${(error as Error).message}`);
    }),
  ]);
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    address: `${shownHost}:${bound.port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function route(
  request: IncomingMessage,
  response: ServerResponse,
  deps: { metrics: Metrics; readiness: Readiness },
): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    send(response, 405, 'text/plain', `${request.method} is not allowed; use GET\n`, {
      allow: 'GET, HEAD',
    });
    return;
  }
  switch (path) {
    case '/metrics':
      send(response, 200, deps.metrics.contentType, await deps.metrics.scrape());
      return;
    case '/healthz':
      send(response, 200, 'text/plain', 'ok\n');
      return;
    case '/readyz': {
      const report = await deps.readiness.check();
      const body = `${JSON.stringify({ status: report.ready ? 'ready' : 'not ready', ...report })}\n`;
      send(response, report.ready ? 200 : 503, 'application/json', body);
      return;
    }
    default:
      send(response, 404, 'text/plain', `no such path ${path}: try /metrics, /healthz, /readyz\n`);
  }
}

function send(
  response: ServerResponse,
  code: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(code, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
