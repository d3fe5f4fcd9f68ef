// The client's RequestMetadata, sent by Bazel, Buck2 and BuildStream as the binary header
// `build.bazel.remote.execution.v2.requestmetadata-bin`: which tool, which build (invocation),
// which action and target a call is for. Tessera only logs it, so a header that is missing,
// repeated or does not decode never fails a call: it yields no fields, and the caller logs why at
// debug.
import type { Metadata } from '@grpc/grpc-js';
import type { RequestMetadata } from './messages.ts';
import { decodeMessage } from './proto.ts';

export const REQUEST_METADATA_HEADER = 'build.bazel.remote.execution.v2.requestmetadata-bin';
const REQUEST_METADATA_TYPE = 'build.bazel.remote.execution.v2.RequestMetadata';
/** Longer values are cut in the log; a client's ids are UUIDs and short names. */
const MAX_FIELD_CHARS = 256;

/** Log fields of the client's request metadata; empty ones are left out. */
export interface ClientFields {
  tool?: string;
  toolVersion?: string;
  invocationId?: string;
  correlatedInvocationsId?: string;
  actionId?: string;
  actionMnemonic?: string;
  targetId?: string;
  configurationId?: string;
}

export type DecodedMetadata =
  | { readonly ok: true; readonly fields: ClientFields }
  | { readonly ok: false; readonly problem: string };

/** The header's fields; `ok: false` says why they could not be read (never thrown). */
export function readRequestMetadata(metadata: Metadata): DecodedMetadata {
  const values = metadata.get(REQUEST_METADATA_HEADER);
  if (values.length === 0) return { ok: true, fields: {} };
  if (values.length > 1) {
    return {
      ok: false,
      problem: `${values.length} ${REQUEST_METADATA_HEADER} headers; expected 1`,
    };
  }
  const [value] = values;
  if (!Buffer.isBuffer(value)) return { ok: false, problem: 'the header is not binary' };

  let decoded: RequestMetadata;
  try {
    decoded = decodeMessage<RequestMetadata>(REQUEST_METADATA_TYPE, value);
  } catch (error) {
    return {
      ok: false,
      problem: `${value.length} bytes that are not a RequestMetadata: ${(error as Error).message}`,
    };
  }
  const candidates: [keyof ClientFields, string | undefined][] = [
    ['tool', decoded.toolDetails?.toolName],
    ['toolVersion', decoded.toolDetails?.toolVersion],
    ['invocationId', decoded.toolInvocationId],
    ['correlatedInvocationsId', decoded.correlatedInvocationsId],
    ['actionId', decoded.actionId],
    ['actionMnemonic', decoded.actionMnemonic],
    ['targetId', decoded.targetId],
    ['configurationId', decoded.configurationId],
  ];
  const fields: ClientFields = {};
  for (const [name, text] of candidates) {
    if (typeof text === 'string' && text !== '') fields[name] = text.slice(0, MAX_FIELD_CHARS);
  }
  return { ok: true, fields };
}
