import type { DatabaseConnection, TransactionSettings } from 'kysely'
import { ConsistencyScope, processWideScope } from '../consistency/scope.js'
import { releaseAfterCancel } from './cancels.js'
import { asDatabaseConnection } from './connection-setup.js'
import type { NodeInfo, PhysicalConnection } from './contracts/engine.js'
import { annotateNodeError } from './contracts/errors.js'
import type { NodeRuntime } from './node-runtime.js'
import { newStatementRecord, type Route, type SessionView, type StatementDraft } from './router.js'

/** `onReserveConnection`. */
export type ReserveHook = (connection: DatabaseConnection, node: NodeInfo) => Promise<void>

/**
 * Runs `onReserveConnection` on a connection just reserved for a statement or a session; on
 * failure the connection is closed (the hook may have left it half set) and the error, with the
 * node's name, reaches the caller.
 */
export async function reserved(
  hook: ReserveHook,
  node: NodeRuntime,
  connection: PhysicalConnection,
): Promise<void> {
  try {
    await hook(asDatabaseConnection(connection), node.info)
  } catch (error) {
    connection.destroy()
    throw annotateNodeError(error, node.name)
  }
}

/** An open builder transaction: the node and the connection it runs on. */
export interface OpenTransaction {
  readonly node: NodeRuntime
  readonly connection: PhysicalConnection
  readonly readOnly: boolean
  /** A statement in it changed data (for read-your-writes at commit). */
  wrote: boolean
  /** A write in it failed on the primary: its end records what the failure observed. */
  failedWrite?: boolean
}

/** The statement running now, for `cancelQuery` / `killSession`. */
export interface RunningStatement {
  readonly node: NodeRuntime
  readonly connection: PhysicalConnection
}

/**
 * The state of one routing connection (one Kysely connection: a single query, a
 * `db.connection()` scope, a transaction): its scope, the primary session it holds, whether that
 * session is pinned, the open transaction, the statement running. The router reads it; the
 * executor and the routing connection change it. Reused across acquisitions ({@link reset}).
 */
export class Session implements SessionView {
  /** Where the primary is now (it moves with switchovers and failovers). */
  readonly #registry: { readonly primary: NodeRuntime }
  /** The node of {@link primary}. */
  primaryNode: NodeRuntime | undefined
  readonly #reserve: ReserveHook | undefined
  /** The innermost explicit `consistencyScope` when acquired, if any. */
  #explicit: ConsistencyScope | undefined
  /** This connection's scope, created on first use (eventual mode never needs one). */
  #scope: ConsistencyScope | undefined
  /** The primary session, held from first use until the connection is released. */
  primary: PhysicalConnection | undefined
  pinned = false
  /** A raw `BEGIN` ran on the primary session; `wrote` as for {@link OpenTransaction}. */
  rawTransaction: { wrote: boolean } | undefined
  transaction: OpenTransaction | undefined
  /** The driver is opening a transaction with these settings (its statements run next). */
  opening: TransactionSettings | undefined
  /** The driver is ending the open transaction: the next statement is its `commit` / `rollback`. */
  closing: 'commit' | 'rollback' | undefined
  running: RunningStatement | undefined
  /** The current statement's route, re-planned by the executor on a retry. */
  route: Route | undefined
  /** The record each statement is planned in (valid until `executeQuery` returns). */
  readonly draft: StatementDraft = newStatementRecord()
  /** The executor's state for this session's plain reads, kept between them (see `Executor`). */
  readJob: unknown = undefined
  /** The clock reading the route was planned at (selection and the checkout's wait count from it). */
  plannedAtMs = 0
  /** Replicas the current statement failed on (allocated only when one did). */
  tried: NodeRuntime[] | undefined

  constructor(
    registry: { readonly primary: NodeRuntime },
    explicit: ConsistencyScope | undefined,
    reserve: ReserveHook | undefined,
  ) {
    this.#registry = registry
    this.#explicit = explicit
    this.#reserve = reserve
  }

  /** The current statement is planned along `route` (its retries start from none tried). */
  plan(route: Route, nowMs: number): Route {
    this.route = route
    this.plannedAtMs = nowMs
    this.tried = undefined
    return route
  }

  /** Makes a released session ready for its next acquisition. */
  reset(explicit: ConsistencyScope | undefined): void {
    this.#explicit = explicit
    this.#scope = undefined
  }

  /**
   * The scope this connection's reads and writes count in: the explicit `consistencyScope` it was
   * acquired in, else a scope of its own nested in the process-wide one, so its writes count for
   * later code in no scope.
   */
  get scope(): ConsistencyScope {
    this.#scope ??= this.#explicit ?? new ConsistencyScope(processWideScope())
    return this.#scope
  }

  /**
   * The scope reads look up: {@link scope} once it exists. Before this connection wrote, a scope
   * of its own would hold nothing its parent does not, so a read creates none (no scope object
   * per statement).
   */
  get readScope(): ConsistencyScope {
    return this.#scope ?? this.#explicit ?? processWideScope()
  }

  get holdsPrimary(): boolean {
    return this.primary !== undefined
  }

  /**
   * Whether the session is bound to the node it holds: session state (pinning) or an open
   * transaction there cannot move to another primary.
   */
  get bound(): boolean {
    return this.pinned || this.transaction !== undefined || this.rawTransaction !== undefined
  }

  /**
   * The held primary session, checked out on first use. A session held on a former primary is
   * given up for the new one, unless the session is {@link bound} to it.
   */
  async primaryConnection(signal: AbortSignal | undefined): Promise<PhysicalConnection> {
    const held = this.heldPrimary()
    if (held !== undefined) return held
    const node = this.#registry.primary
    let connection: PhysicalConnection
    try {
      connection = await node.pool.acquire(signal)
    } catch (error) {
      throw annotateNodeError(error, node.name)
    }
    await this.holdPrimary(node, connection)
    return connection
  }

  /**
   * The primary session held, when it can still serve (step one of {@link primaryConnection},
   * for callers that check out the primary themselves): one held on a node that is no longer the
   * primary, or killed on request, is given up first, unless the session is {@link bound} to it.
   */
  heldPrimary(): PhysicalConnection | undefined {
    const held = this.primary
    // A session killed on request (an aborted statement, `'kill session'`) is gone too: one with
    // no state to lose is replaced by a new one.
    if (
      held !== undefined &&
      (this.primaryNode !== this.#registry.primary || held.killed) &&
      !this.bound
    ) {
      this.dropPrimary()
    }
    return this.primary
  }

  /**
   * Holds `connection`, just checked out of `node`'s pool, as the primary session (step two of
   * {@link primaryConnection}), after `onReserveConnection`: a promise only when there is one.
   */
  holdPrimary(node: NodeRuntime, connection: PhysicalConnection): Promise<void> | undefined {
    if (this.#reserve === undefined) {
      this.primary = connection
      this.primaryNode = node
      return undefined
    }
    return reserved(this.#reserve, node, connection).then(() => {
      this.primary = connection
      this.primaryNode = node
    })
  }

  /** Gives up the held primary session (its node is no longer the primary): it is closed. */
  dropPrimary(): void {
    const primary = this.primary
    this.primary = undefined
    this.primaryNode = undefined
    if (primary !== undefined) releaseAfterCancel(primary, true)
  }

  /** Returns everything held to the pools (the driver's `releaseConnection`). */
  release(): void {
    const transaction = this.transaction
    this.transaction = undefined
    if (transaction !== undefined && transaction.connection !== this.primary) {
      // Kysely always ends its transactions; a connection released mid-transaction is not reused.
      releaseAfterCancel(transaction.connection, true)
    }
    const primary = this.primary
    this.primary = undefined
    this.primaryNode = undefined
    this.pinned = false
    this.rawTransaction = undefined
    this.opening = undefined
    this.closing = undefined
    // An idle connection keeps no statement of its user's reachable.
    this.draft.query = undefined as never
    this.draft.hint = undefined
    if (primary !== undefined) {
      releaseAfterCancel(primary, transaction !== undefined || primary.killed)
    }
  }
}
