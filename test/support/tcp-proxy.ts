// A TCP proxy for tests of a link between two regions. It forwards bytes both ways unless told
// otherwise:
//   blackhole  accepts connections and holds every byte in both directions, on open connections
//              too: a network partition, where calls neither fail nor answer. The held bytes are
//              delivered when the mode changes, as TCP retransmission would after the partition
//              heals (dropping them would break the HTTP/2 stream, which no real network does)
//   latency    delays every chunk, in both directions, by `ms` (order kept)
//   corrupt    flips one bit of the first server-to-client chunk that contains one of `needles`
//              (byte strings taken from inside a blob, so the flip lands in blob data and not in
//              HTTP/2 or gRPC framing); then forwards unchanged
// The target can be changed while it runs (a restarted server listens on a new port); connections
// opened before keep their old target.
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

export type LinkMode =
  | { readonly kind: 'pass' }
  | { readonly kind: 'blackhole' }
  | { readonly kind: 'latency'; readonly ms: number }
  | { readonly kind: 'corrupt'; readonly needles: readonly Buffer[] };

export interface TcpProxy {
  /** 127.0.0.1:port */
  readonly address: string;
  setTarget(address: string): void;
  setMode(mode: LinkMode): void;
  /** Bytes clients sent through the proxy (blackholed ones included). */
  readonly bytesFromClients: number;
  /** Resolves once no delayed bytes are waiting to be sent. */
  drained(): Promise<void>;
  /** How many bytes `corrupt` has flipped so far. */
  readonly flips: number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  let current = target;
  let mode: LinkMode = { kind: 'pass' };
  let bytesFromClients = 0;
  let flips = 0;
  const sockets = new Set<Socket>();

  const held: (() => void)[] = [];
  let pending = 0;
  const waiters: (() => void)[] = [];
  const settled = () => {
    if (pending === 0) for (const resolve of waiters.splice(0)) resolve();
  };
  const relay = (from: Socket, to: Socket, towardsClient: boolean) => {
    // One queue and one timer per direction, so bytes leave in the order they came whatever the
    // latency does meanwhile. (A timer per chunk did not keep it: Node orders timers of different
    // durations by their own clock, and a chunk whose duration came out a millisecond shorter
    // could overtake the one before it, scrambling the byte stream under HTTP/2.)
    const queue: { due: number; work: () => void }[] = [];
    let head = 0;
    let scheduled = false;
    const pump = () => {
      scheduled = false;
      const now = Date.now();
      while (head < queue.length && (queue[head] as { due: number }).due <= now) {
        const item = queue[head] as { work: () => void };
        head += 1;
        pending -= 1;
        item.work();
      }
      if (head === queue.length) {
        queue.length = 0;
        head = 0;
        settled();
        return;
      }
      if (head > 1024) {
        queue.splice(0, head);
        head = 0;
      }
      scheduled = true;
      setTimeout(pump, (queue[head] as { due: number }).due - now);
    };
    const send = (work: () => void) => {
      const delay = mode.kind === 'latency' ? mode.ms : 0;
      if (delay === 0 && head === queue.length) {
        work();
        return;
      }
      pending += 1;
      queue.push({ due: Date.now() + delay, work });
      if (!scheduled) {
        scheduled = true;
        setTimeout(pump, Math.max(0, (queue[head] as { due: number }).due - Date.now()));
      }
    };
    from.on('data', (chunk: Buffer) => {
      if (!towardsClient) bytesFromClients += chunk.length;
      const now = mode;
      if (now.kind === 'blackhole' || held.length > 0) {
        held.push(() => send(() => to.destroyed || to.write(chunk)));
        return;
      }
      const out = now.kind === 'corrupt' && towardsClient ? corruptOnce(chunk, now.needles) : chunk;
      send(() => to.destroyed || to.write(out));
    });
    from.on('end', () => send(() => to.end()));
    from.on('close', () => to.destroy());
    from.on('error', () => to.destroy());
  };
  const corruptOnce = (chunk: Buffer, needles: readonly Buffer[]): Buffer => {
    for (const needle of needles) {
      const at = chunk.indexOf(needle);
      if (at < 0) continue;
      const copy = Buffer.from(chunk);
      copy[at] = (copy[at] as number) ^ 0x01;
      flips += 1;
      mode = { kind: 'pass' };
      return copy;
    }
    return chunk;
  };

  const server: Server = createServer((client) => {
    const [host, port] = splitAddress(current);
    const upstream = connect({ host, port });
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    relay(client, upstream, false);
    relay(upstream, client, true);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    address: `127.0.0.1:${port}`,
    setTarget(address) {
      current = address;
    },
    setMode(next) {
      mode = next;
      if (next.kind === 'blackhole') return;
      for (const send of held.splice(0)) send();
    },
    get bytesFromClients() {
      return bytesFromClients;
    },
    drained() {
      if (pending === 0) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
    get flips() {
      return flips;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}
