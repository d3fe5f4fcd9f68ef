// zstd for compressed-blobs transfers (REAPI Compressor ZSTD), over zstd-napi's low-level binding.
// Blobs are stored uncompressed: compression exists only on the wire (docs/ARCHITECTURE.md,
// "Compression", says why and what it costs).
//
// Both directions are streaming with fixed buffers, so memory per transfer is bounded whatever the
// blob size or the compression ratio:
// - the decoder yields pieces of at most one zstd output block (128 KiB) and stops as soon as the
//   output passes the size the digest declares, so a zstd bomb costs at most one block of output;
//   frames whose window is larger than 2^ZSTD_WINDOW_LOG_MAX are refused before any is allocated;
// - the encoder turns a stream of uncompressed chunks into compressed pieces of at most one block.
import zstd from 'zstd-napi/binding.js';
import { invalidArgument } from './errors.ts';

/**
 * Largest window a client's frame may ask for: 2^23 = 8 MiB of decoder memory per upload. zstd's
 * levels 1–19 and the common Go and Java encoders stay within it; `--long` or level 20+ frames
 * (windows up to 2 GiB) are refused with INVALID_ARGUMENT rather than allowed to allocate.
 */
export const ZSTD_WINDOW_LOG_MAX = 23;

/**
 * Level used to compress reads. Level 1 keeps compression well above the object store's read
 * speed on one core; the measurements behind the choice are in docs/ARCHITECTURE.md.
 */
export const ZSTD_READ_LEVEL = 1;

const DECODE_OUT_BYTES = zstd.dStreamOutSize();
const ENCODE_OUT_BYTES = zstd.cStreamOutSize();

/**
 * The most compressed bytes accepted for a blob of `size` bytes: zstd's worst case for
 * incompressible data is about size/256 of block headers, plus a frame header per frame; a client
 * that flushes a frame every 16 KiB stays well within size/128 + 64 KiB. Anything beyond is not a
 * compressed form of the blob, and would only tie up the upload.
 */
export function maxCompressedBytes(size: number): number {
  return size + Math.floor(size / 128) + 64 * 1024;
}

/** Incremental zstd decoding of one compressed stream, of one or more frames. */
export class ZstdDecoder {
  readonly #dctx = new zstd.DCtx();
  readonly #out = Buffer.allocUnsafe(DECODE_OUT_BYTES);
  readonly #limit: number;
  readonly #what: string;
  #produced = 0;
  #midFrame = false;
  #sawInput = false;

  /**
   * @param limit the uncompressed size the stream must not pass (the digest's size)
   * @param what names the transfer in error messages (`compressed-blobs/zstd upload of …`)
   */
  constructor(limit: number, what: string) {
    this.#limit = limit;
    this.#what = what;
    this.#dctx.setParameter(zstd.DParameter.windowLogMax, ZSTD_WINDOW_LOG_MAX);
  }

  /** Uncompressed bytes produced so far. */
  get produced(): number {
    return this.#produced;
  }

  /**
   * Decodes `input`, yielding the uncompressed bytes as buffers of at most 128 KiB. The caller
   * consumes each piece before the next is produced, which is what bounds memory.
   */
  *write(input: Uint8Array): Generator<Buffer> {
    if (input.length > 0) this.#sawInput = true;
    const out = this.#out;
    let rest = input;
    for (;;) {
      let hint: number;
      let produced: number;
      let consumed: number;
      try {
        [hint, produced, consumed] = this.#dctx.decompressStream(out, rest);
      } catch (error) {
        throw this.#invalid(error);
      }
      rest = rest.subarray(consumed);
      // 0: a frame just ended. A call that consumed nothing (flushing output after the input ran
      // out) leaves the state as it was: its hint would be the next frame's header size.
      if (hint === 0) this.#midFrame = false;
      else if (consumed > 0) this.#midFrame = true;
      if (produced > 0) {
        this.#produced += produced;
        if (this.#produced > this.#limit) {
          throw invalidArgument(
            `${this.#what}: the zstd data decodes to more than the ${this.#limit} bytes the ` +
              'digest declares',
          );
        }
        // A copy, so the scratch buffer is reused and a small piece does not pin 128 KiB.
        yield Buffer.from(out.subarray(0, produced));
      }
      // Done with this input once it is consumed and the decoder had no more output to flush.
      if (rest.length === 0 && produced < out.length) return;
    }
  }

  /** Checks that the stream ended at a frame boundary. */
  end(): void {
    if (!this.#sawInput) {
      throw invalidArgument(`${this.#what}: the compressed stream holds no zstd frame`);
    }
    if (this.#midFrame) {
      throw invalidArgument(
        `${this.#what}: the compressed stream ends inside a zstd frame (truncated data)`,
      );
    }
  }

  #invalid(error: unknown) {
    const reason = error instanceof Error ? error.message : String(error);
    const window = /memory|window/i.test(reason)
      ? `; frames may use a window of at most ${2 ** ZSTD_WINDOW_LOG_MAX} bytes`
      : '';
    return invalidArgument(`${this.#what}: invalid zstd data (${reason.toLowerCase()})${window}`);
  }
}

/** Decodes a whole compressed blob held in memory (the batch RPCs), bounded by `size`. */
export function decompressWhole(data: Uint8Array, size: number, what: string): Buffer {
  // An empty blob sent as no bytes at all is accepted: there is nothing it could mean but "empty".
  if (size === 0 && data.length === 0) return Buffer.alloc(0);
  if (data.length > maxCompressedBytes(size)) {
    throw invalidArgument(
      `${what}: ${data.length} compressed bytes is more than any zstd encoding of ` +
        `${size} bytes needs (${maxCompressedBytes(size)})`,
    );
  }
  const single = decodeSingleFrame(data, size, what);
  if (single) return single;
  const decoder = new ZstdDecoder(size, what);
  const pieces = [...decoder.write(data)];
  decoder.end();
  return Buffer.concat(pieces, decoder.produced);
}

let wholeDctx: InstanceType<typeof zstd.DCtx> | undefined;

/**
 * The common case of a batch blob, decoded in one call into a buffer of exactly `size` bytes: one
 * frame whose header states that size. zstd stops at the end of the buffer, so a header that
 * lies costs no more memory. Undefined when the data is not of that shape.
 */
function decodeSingleFrame(data: Uint8Array, size: number, what: string): Buffer | undefined {
  let frameBytes: number;
  try {
    if (zstd.getFrameContentSize(data) !== size) return undefined;
    frameBytes = zstd.findFrameCompressedSize(data);
  } catch {
    return undefined;
  }
  if (frameBytes !== data.length) return undefined;
  wholeDctx ??= new zstd.DCtx();
  const out = Buffer.allocUnsafe(size);
  let produced: number;
  try {
    produced = wholeDctx.decompress(out, data);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalidArgument(`${what}: invalid zstd data (${reason.toLowerCase()})`);
  }
  if (produced !== size) {
    throw invalidArgument(`${what}: the zstd data decodes to ${produced} bytes, not ${size}`);
  }
  return out;
}

/**
 * Compresses a stream of exactly `length` bytes into one zstd frame (with the content size in its
 * header), yielding compressed pieces of at most 128 KiB.
 */
export async function* compressStream(
  source: AsyncIterable<Uint8Array>,
  length: number,
  level = ZSTD_READ_LEVEL,
): AsyncGenerator<Buffer> {
  const cctx = newCompressor(length, level);
  for await (const chunk of source) yield* encode(cctx, chunk, zstd.EndDirective.continue);
  yield* encode(cctx, new Uint8Array(0), zstd.EndDirective.end);
}

/** One whole blob compressed into one zstd frame. */
export function compressWhole(data: Uint8Array, level = ZSTD_READ_LEVEL): Buffer {
  // One context for every whole-blob call: creating one costs more than compressing a small blob,
  // and the call is synchronous, so no two uses overlap.
  wholeCctx ??= new zstd.CCtx();
  const cctx = wholeCctx;
  cctx.reset(zstd.ResetDirective.sessionOnly);
  cctx.setParameter(zstd.CParameter.compressionLevel, level);
  cctx.setPledgedSrcSize(data.length);
  const pieces = [...encode(cctx, data, zstd.EndDirective.end)];
  return pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
}

let wholeCctx: InstanceType<typeof zstd.CCtx> | undefined;

function newCompressor(length: number, level: number) {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, level);
  cctx.setPledgedSrcSize(length);
  return cctx;
}

function* encode(
  cctx: InstanceType<typeof zstd.CCtx>,
  input: Uint8Array,
  directive: number,
): Generator<Buffer> {
  const out = Buffer.allocUnsafe(ENCODE_OUT_BYTES);
  let rest = input;
  for (;;) {
    const [remaining, produced, consumed] = cctx.compressStream2(out, rest, directive);
    rest = rest.subarray(consumed);
    // A copy, so the scratch buffer is reused and a small piece does not pin 128 KiB.
    if (produced > 0) yield Buffer.from(out.subarray(0, produced));
    if (directive === zstd.EndDirective.end ? remaining === 0 : rest.length === 0) return;
  }
}
