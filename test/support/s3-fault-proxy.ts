// An HTTP proxy in front of a real S3 server that misbehaves on request, for fault tests. It listens
// on a free loopback port and forwards every request unchanged (the Host header included, so
// signatures still verify) unless a fault rule matches it. A rule names a method, a regular
// expression tested against the path with its query string, and how many requests it spoils;
// the first matching rule with requests left applies, and each use counts down.
//
// Faults:
//   status     answer 500 InternalError or 503 SlowDown with an S3 XML error body, never forwarding
//   latency    wait, then forward
//   reset      forward, but reset the client's connection after N bytes of the response body, or
//              after N bytes of the request body (the request is then not completed upstream)
//   short-body forward the status and headers (Content-Length included) but only N body bytes,
//              then close the connection cleanly
import { once } from 'node:events';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | { readonly kind: 'status'; readonly status: 500 | 503 }
  | { readonly kind: 'latency'; readonly ms: number }
  | { readonly kind: 'reset'; readonly during: 'request' | 'response'; readonly afterBytes: number }
  | { readonly kind: 'short-body'; readonly bytes: number };

export interface FaultRule {
  readonly method: string;
  readonly path: RegExp;
  /** How many matching requests this rule spoils; Infinity for all. */
  readonly count: number;
  readonly fault: Fault;
}

export interface FaultProxy {
  /** http://127.0.0.1:port, to use as the S3 endpoint. */
  readonly endpoint: string;
  /** Adds a rule; returns a function that reports how many requests it has spoiled so far. */
  inject(rule: FaultRule): () => number;
  /** Removes every rule. */
  clear(): void;
  close(): Promise<void>;
}

interface ActiveRule extends FaultRule {
  left: number;
  used: number;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true });
  let rules: ActiveRule[] = [];
  const sockets = new Set<Socket>();

  const take = (req: IncomingMessage): Fault | undefined => {
    const rule = rules.find(
      (r) => r.left > 0 && r.method === req.method && r.path.test(req.url ?? ''),
    );
    if (!rule) return undefined;
    rule.left -= 1;
    rule.used += 1;
    return rule.fault;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, fault: Fault | undefined) => {
    const out = httpRequest({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    });
    out.on('error', () => req.socket.destroy());
    out.on('response', (answer) => relay(answer, res, fault));
    if (fault?.kind === 'reset' && fault.during === 'request') {
      let seen = 0;
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= fault.afterBytes) {
          out.destroy();
          req.socket.resetAndDestroy();
          return;
        }
        out.write(chunk);
      });
      req.on('end', () => out.end());
      return;
    }
    req.pipe(out);
  };

  const server: Server = createServer((req, res) => {
    const fault = take(req);
    if (fault?.kind === 'status') {
      req.resume();
      req.on('end', () => sendError(res, fault.status, req.url ?? ''));
      return;
    }
    if (fault?.kind === 'latency') {
      req.pause();
      setTimeout(() => forward(req, res, undefined), fault.ms);
      return;
    }
    forward(req, res, fault);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject(rule) {
      const active: ActiveRule = { ...rule, left: rule.count, used: 0 };
      rules.push(active);
      return () => active.used;
    },
    clear() {
      rules = [];
    },
    async close() {
      rules = [];
      for (const socket of sockets) socket.destroy();
      server.close();
      agent.destroy();
      await once(server, 'close');
    },
  };
}

function relay(answer: IncomingMessage, res: ServerResponse, fault: Fault | undefined): void {
  res.writeHead(answer.statusCode ?? 502, answer.headers);
  if (fault?.kind === 'reset' && fault.during === 'response') {
    cutAfter(answer, res, fault.afterBytes, (socket) => socket.resetAndDestroy());
    return;
  }
  if (fault?.kind === 'short-body') {
    // Half of what was promised at most, so a body shorter than the limit is still cut short.
    const length = Number(answer.headers['content-length'] ?? 0);
    cutAfter(answer, res, Math.min(fault.bytes, Math.floor(length / 2)), (socket) => socket.end());
    return;
  }
  answer.pipe(res);
}

/** Passes `limit` body bytes on, then ends the client's connection with `finish`. */
function cutAfter(
  answer: IncomingMessage,
  res: ServerResponse,
  limit: number,
  finish: (socket: Socket) => void,
): void {
  let sent = 0;
  const cut = () => {
    answer.destroy();
    const socket = res.socket;
    if (socket) res.write(Buffer.alloc(0), () => finish(socket));
  };
  if (limit === 0) {
    res.flushHeaders();
    cut();
    return;
  }
  answer.on('data', (chunk: Buffer) => {
    if (sent >= limit) return;
    const part = chunk.subarray(0, limit - sent);
    sent += part.length;
    res.write(part);
    if (sent >= limit) cut();
  });
  answer.on('end', () => {
    if (sent < limit) res.end();
  });
}

function sendError(res: ServerResponse, status: 500 | 503, resource: string): void {
  const code = status === 503 ? 'SlowDown' : 'InternalError';
  const message = status === 503 ? 'Please reduce your request rate.' : 'Injected failure.';
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message>` +
    `<Resource>${escapeXml(resource)}</Resource><RequestId>fault-proxy</RequestId></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
