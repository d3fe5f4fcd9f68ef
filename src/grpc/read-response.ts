// The wire encoding of ByteStream ReadResponse, written by hand for the server's Read: the message
// is one bytes field (data, field 10), and a Read sends hundreds of MiB of them. The generic
// encoder needs the chunk as one buffer and copies it into another; this one copies the pieces a
// chunk arrived in straight into the message, once. grpc-js then frames it (one more copy, which
// it makes for every message). Clients keep the generic decoder: the bytes are the same.
import type { ServiceDefinition } from '@grpc/grpc-js';

/** A ReadResponse as the server's Read handler sends it: the chunk whole or in pieces. */
export interface OutgoingReadResponse {
  readonly data: Uint8Array | readonly Uint8Array[];
}

/** Field 10 (data), wire type 2 (length-delimited). */
const DATA_TAG = (10 << 3) | 2;

export function encodeReadResponse(message: OutgoingReadResponse): Buffer {
  const pieces = message.data instanceof Uint8Array ? [message.data] : message.data;
  let length = 0;
  for (const piece of pieces) length += piece.length;
  // An empty bytes field is left out, as every proto3 encoder does.
  if (length === 0) return Buffer.alloc(0);
  const out = Buffer.allocUnsafe(1 + varintLength(length) + length);
  out[0] = DATA_TAG;
  let at = writeVarint(out, 1, length);
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/** The ByteStream definition with Read's responses encoded by `encodeReadResponse`. */
export function withReadResponseEncoder(definition: ServiceDefinition): ServiceDefinition {
  const read = definition.Read;
  if (read === undefined) throw new Error('the ByteStream definition has no Read method');
  return {
    ...definition,
    Read: { ...read, responseSerialize: encodeReadResponse as (value: unknown) => Buffer },
  };
}

function varintLength(value: number): number {
  let bytes = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) bytes += 1;
  return bytes;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  let rest = value;
  let offset = at;
  while (rest >= 0x80) {
    out[offset++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[offset++] = rest;
  return offset;
}
