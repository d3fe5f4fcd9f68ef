// Random ByteStream Write streams against one blob, and a model of what Tessera must answer.
// A stream is a list of steps; each step picks its offset relative to what the server holds so
// far (at it, before it, past it, negative), a length, honest or corrupted bytes, a finish flag
// and what resource name it carries. The model follows Tessera's rules: an offset past the bytes
// received is refused and the upload stays resumable; an overlap is skipped unread; more bytes
// than the digest size, a changed resource name, or a finish with the wrong size or hash is
// refused and the upload dropped; the reply goes out at the first finish_write.
import fc from 'fast-check';

export interface Step {
  readonly from: 'at' | 'before' | 'past' | 'negative' | 'start';
  readonly delta: number;
  /** Bytes to send; `rest` sends up to the end of the blob. */
  readonly length: number | 'rest';
  /** Never send past the end of the blob (steps of honest streams). */
  readonly clamp?: boolean;
  /** Flip the byte at this index of the chunk, if it has one. */
  readonly corruptAt: number | undefined;
  readonly finish: boolean;
  readonly name: 'omitted' | 'same' | 'metadata' | 'other upload' | 'other size';
}

export const stepArb: fc.Arbitrary<Step> = fc.record({
  from: fc.constantFrom('at', 'at', 'at', 'before', 'past', 'negative', 'start'),
  delta: fc.nat({ max: 600 }),
  length: fc.oneof(fc.nat({ max: 700 }), fc.nat({ max: 2100 })),
  corruptAt: fc.option(fc.nat({ max: 700 }), { freq: 6 }),
  finish: fc.boolean(),
  name: fc.constantFrom(
    'omitted',
    'omitted',
    'omitted',
    'same',
    'metadata',
    'other upload',
    'other size',
  ),
});

/**
 * Steps that deliver the whole blob in order: chunks of random lengths, some of which start a
 * little before the bytes received (an overlap), the last one with finish_write.
 */
const honestArb: fc.Arbitrary<Step[]> = fc
  .array(fc.record({ length: fc.nat({ max: 700 }), back: fc.nat({ max: 300 }) }), { maxLength: 6 })
  .map((chunks) => [
    ...chunks.map(
      ({ length, back }): Step => ({
        from: back > 0 ? 'before' : 'at',
        delta: back - 1,
        length: length + back,
        clamp: true,
        corruptAt: undefined,
        finish: false,
        name: 'omitted',
      }),
    ),
    { from: 'at', delta: 0, length: 'rest', corruptAt: undefined, finish: true, name: 'omitted' },
  ]);

/** An honest stream with one step replaced by a random one. */
const spoiledArb = fc
  .tuple(honestArb, fc.nat(), stepArb)
  .map(([steps, at, step]) => steps.map((s, i) => (i === at % steps.length ? step : s)));

export const streamArb = fc.record({
  payload: fc.uint8Array({ maxLength: 2000 }),
  steps: fc.oneof(honestArb, spoiledArb, fc.array(stepArb, { maxLength: 8 })),
  /** Now and then a first message that names no resource. */
  firstNamed: fc.oneof(
    { arbitrary: fc.constant(true), weight: 9 },
    { arbitrary: fc.constant(false), weight: 1 },
  ),
});

export interface WriteMessage {
  readonly resourceName: string;
  readonly writeOffset: number;
  readonly data: Buffer;
  readonly finishWrite: boolean;
}

export type Expected =
  | { readonly kind: 'committed' }
  /** Refused; the session stays, resumable at `received`. */
  | { readonly kind: 'resumable'; readonly received: number }
  /** Refused; nothing of the upload stays. */
  | { readonly kind: 'dropped' };

export interface Names {
  readonly name: string;
  readonly withMetadata: string;
  readonly otherUpload: string;
  readonly otherSize: string;
}

/** Turns steps into messages for `blob`, and says what Tessera must answer to them. */
export function playSteps(
  blob: Buffer,
  steps: readonly Step[],
  names: Names,
  firstNamed: boolean,
): { messages: WriteMessage[]; expected: Expected } {
  const messages: WriteMessage[] = [];
  const kept: Buffer[] = [];
  let received = 0;
  let expected: Expected | undefined;

  for (const [i, step] of steps.entries()) {
    const offset = offsetOf(step, received);
    const data = bytesAt(blob, offset, step);
    const resourceName = nameOf(step, i, names, firstNamed);
    messages.push({ resourceName, writeOffset: offset, data, finishWrite: step.finish });
    if (expected) continue;

    if (i === 0 && resourceName === '') expected = { kind: 'dropped' };
    else if (i > 0 && (step.name === 'other upload' || step.name === 'other size')) {
      expected = { kind: 'dropped' };
    } else if (offset < 0 || offset > received) expected = { kind: 'resumable', received };
    else if (offset + data.length > blob.length) expected = { kind: 'dropped' };
    else {
      const end = offset + data.length;
      if (end > received) kept.push(data.subarray(received - offset));
      received = Math.max(received, end);
      if (step.finish) {
        const whole = received === blob.length && Buffer.concat(kept).equals(blob);
        expected = whole ? { kind: 'committed' } : { kind: 'dropped' };
      }
    }
  }
  if (!expected)
    expected = messages.length === 0 ? { kind: 'dropped' } : { kind: 'resumable', received };
  return { messages, expected };
}

function offsetOf(step: Step, received: number): number {
  switch (step.from) {
    case 'at':
      return received;
    case 'before':
      return Math.max(0, received - 1 - step.delta);
    case 'past':
      return received + 1 + step.delta;
    case 'negative':
      return -1 - step.delta;
    case 'start':
      return 0;
  }
}

/** The blob's bytes at `offset` (zeros where it has none), with one byte flipped if asked. */
function bytesAt(blob: Buffer, offset: number, step: Step): Buffer {
  const rest = Math.max(0, blob.length - offset);
  const length =
    step.length === 'rest' ? rest : step.clamp ? Math.min(step.length, rest) : step.length;
  const data = Buffer.alloc(length);
  if (offset >= 0 && offset < blob.length) blob.copy(data, 0, offset, offset + length);
  if (step.corruptAt !== undefined && step.corruptAt < data.length) {
    data[step.corruptAt] = (data[step.corruptAt] ?? 0) ^ 0x5a;
  }
  return data;
}

function nameOf(step: Step, index: number, names: Names, firstNamed: boolean): string {
  if (index === 0) return firstNamed ? names.name : '';
  switch (step.name) {
    case 'omitted':
      return '';
    case 'same':
      return names.name;
    case 'metadata':
      return names.withMetadata;
    case 'other upload':
      return names.otherUpload;
    case 'other size':
      return names.otherSize;
  }
}
