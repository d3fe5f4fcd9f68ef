// Marks the calls one region makes to another, so a region answering a peer never asks its own
// peers in turn: with two regions that peer each other, a miss would otherwise bounce between them
// until both deadlines ran out. The mark is a metadata entry; the server's handler wrappers run the
// handler inside `runMarked`, and the read-through asks `isPeerCall()` before going out.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Metadata } from '@grpc/grpc-js';

/** Metadata key a region sets on every call to a peer region; its value is the caller's region. */
export const PEER_CALL_HEADER = 'x-tessera-peer-region';

const marked = new AsyncLocalStorage<string>();

/** Runs `work` marked as serving a peer region when `metadata` says the caller is one. */
export function runMarked<T>(metadata: Metadata, work: () => Promise<T>): Promise<T> {
  const [caller] = metadata.get(PEER_CALL_HEADER);
  if (caller === undefined) return work();
  return marked.run(String(caller), work);
}

/** True while serving a call another region made: answer from this region alone. */
export function isPeerCall(): boolean {
  return marked.getStore() !== undefined;
}
