// The test link between regions must be a faithful TCP link: whatever latency it adds, the bytes
// arrive whole and in order. A proxy that reorders bytes breaks HTTP/2 framing and makes a
// healthy peer look stalled or broken.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { startTcpProxy } from '../support/tcp-proxy.ts';

const WRITE_BYTES = 1000;

describe('the test TCP proxy', () => {
  it('keeps byte order under latency, over thousands of separate writes', async () => {
    const received: Buffer[] = [];
    const sink = createServer((socket: Socket) =>
      socket.on('data', (c: Buffer) => received.push(c)),
    );
    sink.listen(0, '127.0.0.1');
    await once(sink, 'listening');
    const proxy = await startTcpProxy(`127.0.0.1:${(sink.address() as AddressInfo).port}`);
    proxy.setMode({ kind: 'latency', ms: 5 });
    const [host, port] = proxy.address.split(':') as [string, string];
    const client = connect({ host, port: Number(port) });
    await once(client, 'connect');
    try {
      // Sequence numbers, so any reordering shows up as a difference.
      const sent = Buffer.alloc(12 * 1024 * 1024);
      for (let i = 0; i < sent.length / 4; i++) sent.writeUInt32BE(i, i * 4);
      for (let at = 0; at < sent.length; at += WRITE_BYTES) {
        client.write(sent.subarray(at, at + WRITE_BYTES));
        // A turn of the event loop between writes makes most of them separate chunks.
        await yieldToLoop();
      }
      const deadline = Date.now() + 30_000;
      while (received.reduce((n, c) => n + c.length, 0) < sent.length) {
        assert.ok(Date.now() < deadline, 'not every byte arrived');
        await proxy.drained();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const got = Buffer.concat(received);
      let firstDifference = 0;
      while (firstDifference < got.length && got[firstDifference] === sent[firstDifference]) {
        firstDifference += 1;
      }
      assert.equal(firstDifference, sent.length, `bytes differ from offset ${firstDifference}`);
      assert.equal(got.length, sent.length);
    } finally {
      client.destroy();
      await proxy.close();
      sink.close();
    }
  });
});
