/**
 * Base class of every error this library throws itself. Errors from the database driver are
 * passed through unchanged, with the node's name added (see {@link annotateNodeError}).
 */
export class KyselyReplicatedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
  }
}

/** An error about one node, which it names (`node`). */
export class KyselyReplicatedNodeError extends KyselyReplicatedError {
  constructor(
    message: string,
    readonly node: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** The dialect configuration is invalid. Thrown by the dialect constructor. */
export class ReplicatedConfigError extends KyselyReplicatedError {}

/**
 * A dialect whose pool instances an earlier `db.destroy()` ended was given to a new `Kysely`.
 * Give pool factories (or `connection` options) to use one dialect for several `Kysely`
 * instances one after the other, or create a new dialect.
 */
export class DialectDestroyedError extends KyselyReplicatedError {}

/**
 * The node a statement ran on was found dead or hung (a failed probe, a refused connect): the
 * statement was abandoned and its connection closed. Reads are re-run on another node when no
 * row had reached the caller; otherwise this reaches the caller, naming the node.
 */
export class NodeUnreachableError extends KyselyReplicatedNodeError {
  readonly code = 'KR_NODE_UNREACHABLE'
}

/**
 * A read ran longer than its `readTimeoutMs` (dialect option or `withReadTimeout(db, ms)`): it was
 * abandoned and its connection closed. Not retried, and not held against the node.
 */
export class ReadTimeoutError extends KyselyReplicatedNodeError {
  readonly code = 'KR_READ_TIMEOUT'
}

/**
 * A checkout waited the pool's whole wait limit (`pg`'s `connectionTimeoutMillis`) in the queue of
 * a node's pool while every connection was busy, and no connection was being opened for it, or a
 * full mysql2 pool refused it at once (`waitForConnections: false`, or `queueLimit` checkouts
 * already waiting): the node answers, its pool is too small for the load. Not held against the
 * node's health; a read is
 * re-run on another replica (or the primary) by the retry policy, unless it was sent to a named
 * replica. The driver's error is the `cause`.
 *
 * @example
 * ```ts
 * try {
 *   await onReplica(db, 'replica-1').selectFrom('person').selectAll().execute()
 * } catch (error) {
 *   if (error instanceof PoolWaitTimeoutError) {
 *     // raise the replica pool's `max` (`poolSize`), or run fewer reads on it at once
 *   }
 * }
 * ```
 */
export class PoolWaitTimeoutError extends KyselyReplicatedNodeError {
  readonly code = 'KR_POOL_WAIT_TIMEOUT'
}

/**
 * The primary changed under an open transaction or a session pinned to it: its statements cannot
 * continue on another node. Retry the whole transaction (or unit of work): it will run on the new
 * primary.
 */
export class PrimaryChangedError extends KyselyReplicatedNodeError {
  readonly code = 'KR_PRIMARY_CHANGED'
  readonly retriable = true
}

/**
 * The primary refused a write (read-only, or gone) and no single node took over its role in
 * time (`topology.writeWaitMs`), or several nodes take writes (a split brain is refused, not
 * guessed). Nothing was written.
 */
export class PrimaryUnavailableError extends KyselyReplicatedNodeError {
  readonly code = 'KR_PRIMARY_UNAVAILABLE'
}

/** No replica was usable for a read and `fallback` is `'error'` (or the primary fallback cap was reached). */
export class NoReplicaAvailableError extends KyselyReplicatedError {}

/** A causal token given to `consistencyScope` is malformed, too large or of an unknown version. */
export class InvalidCausalTokenError extends KyselyReplicatedError {}

/** A statement that must run on the primary was sent through a read-only view (`readOnly(db)`) or to a named replica. */
export class ReadOnlyViolationError extends KyselyReplicatedError {
  constructor(
    message: string,
    readonly sql: string,
  ) {
    super(message)
  }
}

/** `onCreateConnection` failed on a new connection; the connection was closed and not reused. */
export class ConnectionSetupError extends KyselyReplicatedNodeError {}

/**
 * Adds the node's name to an error raised by the database driver and returns the same object,
 * so `code`, `errno`, `sqlState` and `instanceof` checks keep working. Never adds credentials.
 */
export function annotateNodeError<E>(error: E, node: string): E {
  // An abort (the caller's signal) is the caller's own reason, passed back untouched: Kysely
  // recognises it by identity, and a DOMException's message cannot be set.
  if (error instanceof Error && error.name !== 'AbortError' && error.name !== 'TimeoutError') {
    const e = error as Error & { node?: string }
    if (e.node === undefined) {
      e.node = node
      e.message = `${e.message} (node "${node}")`
    }
    // As Kysely's own drivers do: the caller's (async) stack after the driver's, so the stack
    // reaches the application line that ran the query, not only the library's internals. Once per
    // error, and also for the library's own errors that name their node from the start (made in
    // a pool's callback, such an error's stack has none of the caller's frames).
    if (!withCallerStack.has(e)) {
      withCallerStack.add(e)
      const caller = new Error().stack
      if (caller !== undefined && e.stack !== undefined) {
        e.stack += `\n${caller.slice(caller.indexOf('\n') + 1)}`
      }
    }
  }
  return error
}

/** Errors whose stack {@link annotateNodeError} extended with the caller's. */
const withCallerStack = new WeakSet<Error>()
