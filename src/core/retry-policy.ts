import type { RouteHint } from './route-hints.js'

/** What went wrong with one attempt of a statement, as the retry policy needs to know it. */
export interface AttemptFailure {
  /**
   * The node or the connection is gone (connect refused, connection lost, server shutting down),
   * as opposed to an error of the statement itself, or a session this library killed on request.
   */
  readonly connectionLevel: boolean
  /**
   * The replica's pool had no free connection within its wait limit (`PoolWaitTimeoutError`): the
   * read never reached the node, which is busy, not gone. Safe to run elsewhere, like a failed
   * connect, but not a failure of the node.
   */
  readonly poolExhausted?: boolean
  /** The attempt was a read on a replica connection checked out for this statement alone. */
  readonly replicaRead: boolean
  /** A row (a stream chunk) already reached the caller: the statement cannot be re-run unseen. */
  readonly rowsDelivered: boolean
}

/** What the caller asked for, as the retry policy needs to know it. */
export interface RetryContext {
  /** `retry.reads` of the dialect config. */
  readonly retryReads: boolean
  readonly hint: RouteHint | undefined
  readonly signal: AbortSignal | undefined
}

/**
 * The one retry rule, for every path (execute, stream, the `begin` of a read-only transaction, a
 * failed acquire, a failed causal wait): a read is re-run elsewhere only when its replica
 * connection failed at connection level, or its replica's pool had no free connection in time
 * (the read never ran), before any row reached the caller, retries are on, the
 * read was not forced to a named replica, and the caller has not given up. Writes, statements on
 * the held primary session and statements in transactions are never re-run.
 *
 * @example
 * ```ts
 * canRetry(
 *   { connectionLevel: true, replicaRead: true, rowsDelivered: false },
 *   { retryReads: true, hint: undefined, signal: undefined },
 * ) // true
 * ```
 */
export function canRetry(failure: AttemptFailure, context: RetryContext): boolean {
  return (
    (failure.connectionLevel || failure.poolExhausted === true) &&
    failure.replicaRead &&
    !failure.rowsDelivered &&
    context.retryReads &&
    !(context.hint?.target === 'replica' && context.hint.name !== undefined) &&
    context.signal?.aborted !== true
  )
}
