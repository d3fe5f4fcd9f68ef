import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { byteStreamService, decodeMessage, encodeMessage } from '../../src/grpc/proto.ts';
import { encodeReadResponse } from '../../src/grpc/read-response.ts';

const TYPE = 'google.bytestream.ReadResponse';

function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

describe('encodeReadResponse', () => {
  // Lengths around each varint boundary, up to the largest read chunk the config allows.
  for (const length of [1, 127, 128, 16_383, 16_384, 262_144, 1_048_576]) {
    it(`encodes ${length} bytes exactly as the generic encoder does`, () => {
      const data = bytes(length, length);
      assert.deepEqual(encodeReadResponse({ data }), encodeMessage(TYPE, { data }));
    });
  }

  it('joins pieces into the bytes of one chunk, in order', () => {
    const pieces = [bytes(65_536, 1), bytes(10, 2), bytes(100_000, 3)];
    const decoded = decodeMessage<{ data: Buffer }>(TYPE, encodeReadResponse({ data: pieces }));
    assert.deepEqual(decoded.data, Buffer.concat(pieces));
  });

  it('encodes an empty chunk as the empty message', () => {
    assert.equal(encodeReadResponse({ data: [] }).length, 0);
    assert.equal(encodeReadResponse({ data: Buffer.alloc(0) }).length, 0);
  });

  it('is the encoder the server uses for Read responses', () => {
    assert.equal(byteStreamService.Read?.responseSerialize, encodeReadResponse);
  });
});
