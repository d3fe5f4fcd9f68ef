// ActionCache: GetActionResult and UpdateActionResult. Results are namespaced by instance name.
// A stored result is served only while everything it references is committed (a miss otherwise);
// an update that references blobs that are not committed is refused with FAILED_PRECONDITION, so a
// client learns at once that its uploads did not all land.
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { findMissingReferences } from '../cas/action-results.ts';
import type { Cas } from '../cas/cas.ts';
import { formatDigest, fromWireDigest } from '../cas/digest.ts';
import { CasError, invalidArgument, notFound } from '../cas/errors.ts';
import type { ActionCacheStore } from '../cas/store.ts';
import { annotate, type RpcContext, route, unary } from './handlers.ts';
import type {
  ActionResult,
  GetActionResultRequest,
  UpdateActionResultRequest,
} from './messages.ts';
import { decodeMessage, encodeMessage } from './proto.ts';
import { parseInstanceName } from './resource-name.ts';

const ACTION_RESULT_TYPE = 'build.bazel.remote.execution.v2.ActionResult';
/** Larger results are refused: they are held in Redis and in memory whole. */
const MAX_ACTION_RESULT_BYTES = 8 * 1024 * 1024;

export function createActionCacheService(
  cas: Cas,
  actions: ActionCacheStore,
  rpc: RpcContext,
): UntypedServiceImplementation {
  return {
    GetActionResult: unary(
      rpc,
      route('GetActionResult', 'read'),
      async (request: GetActionResultRequest, call, rpcLog): Promise<ActionResult> => {
        const instance = parseInstanceName(request.instanceName);
        const action = fromWireDigest(request.actionDigest, request.digestFunction);
        annotate(call, { digest: formatDigest(action) });
        const encoded = await actions.getActionResult(instance, action);
        const lookups = rpc.metrics.actionCacheLookups;
        if (!encoded) {
          lookups.inc({ result: 'miss' });
          throw notFound(`no action result for ${formatDigest(action)}`);
        }
        const result = decodeMessage<ActionResult>(ACTION_RESULT_TYPE, encoded);
        const missing = await findMissingReferences(cas, result, action.fn);
        if (missing.length > 0) {
          lookups.inc({ result: 'incomplete' });
          rpcLog.info(
            {
              action: formatDigest(action),
              missing: missing.slice(0, 5).map(formatDigest),
            },
            'action result withheld: outputs are not all committed',
          );
          throw notFound(
            `action result for ${formatDigest(action)} references ${missing.length} blob(s) that ` +
              'are not in the cache',
          );
        }
        lookups.inc({ result: 'hit' });
        return result;
      },
    ),

    UpdateActionResult: unary(
      rpc,
      route('UpdateActionResult', 'ac-write'),
      async (request: UpdateActionResultRequest, call): Promise<ActionResult> => {
        const instance = parseInstanceName(request.instanceName);
        const action = fromWireDigest(request.actionDigest, request.digestFunction);
        annotate(call, { digest: formatDigest(action) });
        const result = request.actionResult;
        if (!result) throw invalidArgument('UpdateActionResult carries no action_result');
        const missing = await findMissingReferences(cas, result, action.fn);
        if (missing.length > 0) {
          throw new CasError(
            'failed_precondition',
            `action result references ${missing.length} blob(s) that are not in the cache, ` +
              `first ${formatDigest(missing[0]!)}: upload outputs before the result`,
          );
        }
        const encoded = encodeMessage(ACTION_RESULT_TYPE, result);
        if (encoded.length > MAX_ACTION_RESULT_BYTES) {
          throw new CasError(
            'resource_exhausted',
            `action result is ${encoded.length} bytes; the limit is ${MAX_ACTION_RESULT_BYTES}`,
          );
        }
        await actions.putActionResult(instance, action, encoded);
        return result;
      },
    ),
  };
}
