import type { CompiledQuery, DatabaseConnection, QueryResult, TransactionSettings } from 'kysely'
import type { ReplicationPosition } from '../consistency/position.js'
import type { ConsistencyScope } from '../consistency/scope.js'
import type { Classification } from '../routing/classification.js'
import { READ } from '../routing/classification.js'
import type { ClassificationCache } from '../routing/classification-cache.js'
import { changesData } from '../routing/statement-effect.js'
import { releaseAfterCancel, sendCancel } from './cancels.js'
import type { ConsistencyMode } from './config.js'
import type { Engine, NodeQueryOutcome, PhysicalConnection } from './contracts/engine.js'
import { annotateNodeError } from './contracts/errors.js'
import type { RouteExplanation } from './contracts/events.js'
import type { Executor } from './executor.js'
import type { NodeRegistry } from './node-registry.js'
import type { ReadPlanner } from './read-planner.js'
import { readTimeoutOf, routeHintOf } from './route-hints.js'
import {
  copyStatementInto,
  keepStatement,
  newStatementRecord,
  type Route,
  type Router,
  type Statement,
  type StatementDraft,
} from './router.js'
import type { RoutingStatistics } from './routing-statistics.js'
import { type OpenTransaction, type ReserveHook, Session } from './session.js'

interface AbortOptions {
  readonly signal?: AbortSignal | undefined
}

/** What a routing connection needs from its cluster. */
export interface RoutingContext {
  readonly engine: Engine
  readonly consistency: ConsistencyMode
  /** The dialect's `readTimeoutMs`. */
  readonly readTimeoutMs: number | undefined
  readonly onReserveConnection: ReserveHook | undefined
  /** The cluster's classifications by SQL text (its engine's flavour and primary-only functions). */
  readonly classifier: ClassificationCache
  readonly registry: NodeRegistry
  readonly router: Router
  readonly executor: Executor
  readonly planner: ReadPlanner
  readonly statistics: RoutingStatistics
  now(): number
}

/** The `begin` of a read-only transaction, as the router sees it: a read. */
const READ_ONLY_BEGIN: Statement = Object.freeze({
  query: undefined as never,
  classification: READ,
  hint: undefined,
  readTimeoutMs: undefined,
  readReason: 'read-only-transaction',
})

/**
 * The connection Kysely gets from `acquireConnection`: the session state machine of one Kysely
 * connection (a single query, a `db.connection()` scope, a transaction). It holds no physical
 * connection until a statement arrives; each statement is classified, planned by the
 * {@link Router} and carried out by the {@link Executor}; this class keeps what the session
 * remembers between statements:
 *
 * - the primary session, held from first use until Kysely releases this connection, so a
 *   `db.connection()` scope keeps one primary session;
 * - pinning: once a statement creates session state, every later statement runs on it;
 * - the open builder transaction and the raw (`BEGIN` ... `COMMIT`) one;
 * - what was written, for read-your-writes.
 */
export class RoutingConnection implements DatabaseConnection {
  readonly #c: RoutingContext
  readonly #session: Session

  /** This connection, as `acquireConnection` hands it out (one settled promise, made once). */
  readonly acquired: Promise<this>

  constructor(context: RoutingContext, explicit: ConsistencyScope | undefined) {
    this.#c = context
    this.#session = new Session(context.registry, explicit, context.onReserveConnection)
    this.acquired = Promise.resolve(this)
  }

  /** Makes a released connection ready for its next acquisition (the driver reuses them). */
  reset(explicit: ConsistencyScope | undefined): void {
    this.#session.reset(explicit)
  }

  executeQuery<R>(query: CompiledQuery, options?: AbortOptions): Promise<QueryResult<R>> {
    const c = this.#c
    const session = this.#session
    const signal = options?.signal
    if (session.opening !== undefined && session.transaction === undefined) {
      return this.#open<R>(query, session.opening, signal)
    }
    let route: Route
    let statement: Statement
    try {
      statement = this.#statement(query, session.draft)
      route = this.#plan(statement)
    } catch (error) {
      return Promise.reject(error)
    }
    // A read returns the executor's own promise: no frame of this connection's around it (the
    // executor keeps what it needs of the draft).
    if (route.kind === 'replica' || route.kind === 'wait') {
      return c.executor.read<R>(session, statement, signal)
    }
    return route.kind === 'transaction'
      ? this.#inTransaction<R>(keepStatement(statement), signal)
      : this.#onPrimary<R>(keepStatement(statement), signal)
  }

  /** A statement on the primary session, with what it changed recorded for read-your-writes. */
  async #onPrimary<R>(
    statement: Statement,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    const session = this.#session
    // Pinned once it ran (a statement that failed left no session state, and a session not yet
    // bound to its primary can follow a switchover).
    this.#beforePrimary(statement.classification, false)
    let outcome: NodeQueryOutcome<R>
    try {
      outcome = await this.#c.executor.execute<R>(session, statement, signal)
    } catch (error) {
      if (this.#observes(statement, error)) await this.#recordObserved()
      throw error
    }
    if (statement.classification.pinsSession) session.pinned = true
    const recording = this.#afterPrimary(statement.classification, outcome)
    if (recording !== undefined) await recording
    return outcome.result
  }

  async *streamQuery<R>(
    query: CompiledQuery,
    chunkSize = 1,
    options?: AbortOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    const c = this.#c
    const session = this.#session
    const statement = this.#statement(query)
    const route = this.#plan(statement)
    if (route.kind === 'primary') this.#beforePrimary(statement.classification, true)
    yield* c.executor.stream<R>(session, statement, chunkSize, options?.signal)
  }

  /**
   * @internal Where `query` would run on this connection now, without running it (see
   * `explainRoute`): the routing rules, hints and session state, with the cluster's health and
   * the scope's writes as they are at this moment.
   */
  explain(query: CompiledQuery): RouteExplanation {
    const c = this.#c
    const session = this.#session
    const route = c.router.plan(this.#statement(query), session, c.now())
    switch (route.kind) {
      case 'transaction':
        return {
          role: session.transaction!.node.info.role,
          node: session.transaction!.node.name,
          reason: route.reason,
        }
      case 'primary':
        return { role: 'primary', node: c.registry.primary.name, reason: route.reason }
      default: {
        const candidates = route.candidates.map((candidate) => candidate.name)
        return {
          role: 'replica',
          node: candidates.length === 1 ? candidates[0] : undefined,
          reason: route.kind === 'wait' ? 'causal-waited' : route.reason,
          candidates,
        }
      }
    }
  }

  /** Cancels the running statement on the node that runs it (Kysely 0.29 `'cancel query'`). */
  async cancelQuery(_controlConnectionProvider?: unknown): Promise<void> {
    await this.#control('query')
  }

  /** Kills the session running the statement (Kysely 0.29 `'kill session'`). */
  async killSession(_controlConnectionProvider?: unknown): Promise<void> {
    await this.#control('session')
  }

  /**
   * Cancels (or kills) the running statement from a control connection to the node that runs it
   * (a `kill` routed like an ordinary statement would reach the primary instead), opened outside
   * the node's pool, so a pool full of aborted statements can always be cancelled. The
   * statement's connection is not released until the cancel is acknowledged, so the cancel can
   * only hit its own statement; a cancel that fails or times out closes that connection instead.
   */
  async #control(kind: 'query' | 'session'): Promise<void> {
    const running = this.#session.running
    const sessionId = running?.connection.sessionId
    if (running === undefined || sessionId === undefined) return
    const { node, connection } = running
    if (kind === 'session') connection.killed = true
    const work = sendCancel(this.#c.engine, node, connection, sessionId, kind)
    try {
      await work
    } catch (error) {
      // Whether the statement stopped is unknown: its session is not reused.
      connection.killed = true
      throw annotateNodeError(error, node.name)
    }
  }

  // ---- builder transactions -----------------------------------------------------------------
  // The driver runs Kysely's own transaction statements through this connection's executeQuery
  // (so Kysely's `log` and plugins see them), after saying what they are.

  /** @internal The next statements (`set transaction ...`, `begin`) open a transaction. */
  opening(settings: TransactionSettings | undefined): void {
    this.#session.opening = settings
  }

  /** @internal The next statement (`commit` or `rollback`) ends the open transaction. */
  closing(how: 'commit' | 'rollback'): void {
    this.#session.closing = how
  }

  /**
   * The first statement of a transaction: a read-only one (outside a pinned session) opens on a
   * replica, which the transaction then keeps; any other on the primary session.
   */
  async #open<R>(
    query: CompiledQuery,
    settings: TransactionSettings,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    const c = this.#c
    const session = this.#session
    if (settings.accessMode === 'read only' && !session.pinned) {
      const statement = copyStatementInto(newStatementRecord(), READ_ONLY_BEGIN)
      statement.query = query
      this.#plan(statement)
      let result: QueryResult<R> | undefined
      const target = await c.executor.hold(
        session,
        statement,
        async (connection) => {
          result = (await connection.execute<R>(query, signal)).result
        },
        signal,
      )
      session.transaction = {
        node: target.node,
        connection: target.connection,
        readOnly: true,
        wrote: false,
      }
      return result!
    }
    const connection = await session.primaryConnection(signal)
    session.transaction = { node: session.primaryNode!, connection, readOnly: false, wrote: false }
    return this.executeQuery<R>(query, { signal })
  }

  /** A statement in the open transaction; `commit` / `rollback` end it. */
  async #inTransaction<R>(
    statement: Statement,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    const session = this.#session
    const transaction: OpenTransaction = session.transaction!
    const executor = this.#c.executor
    const closing = session.closing
    session.closing = undefined
    if (closing === undefined) {
      let outcome: NodeQueryOutcome<R>
      try {
        outcome = await executor.execute<R>(session, statement, signal)
      } catch (error) {
        if (!transaction.readOnly && this.#observes(statement, error))
          transaction.failedWrite = true
        throw error
      }
      if (!transaction.readOnly && changesData(statement.classification, outcome.result)) {
        transaction.wrote = true
      }
      return outcome.result
    }
    let outcome: NodeQueryOutcome<R>
    try {
      outcome = await executor.execute<R>(session, statement, signal)
    } finally {
      session.transaction = undefined
      if (transaction.connection !== session.primary) {
        releaseAfterCancel(transaction.connection, transaction.connection.killed)
      }
    }
    // The transaction is over: the primary session can say what a failed write in it observed.
    if (transaction.failedWrite === true) await this.#recordObserved()
    if (closing === 'commit') {
      // A commit the server answered by rolling back (PostgreSQL) wrote nothing: say so first.
      this.#c.engine.checkCommit?.(outcome.result)
      if (!transaction.readOnly) {
        await this.#recordWrite(transaction.connection, outcome, transaction.wrote)
      }
    }
    return outcome.result
  }

  // ---- session bookkeeping ------------------------------------------------------------------

  /** Plans `statement` on this session now (the session keeps the route and its clock reading). */
  #plan(statement: Statement): Route {
    const c = this.#c
    const now = c.now()
    return this.#session.plan(c.router.plan(statement, this.#session, now), now)
  }

  /** `query` as the router sees it, in `into` (the session's draft) or a record of its own. */
  #statement(query: CompiledQuery, into: StatementDraft = newStatementRecord()): Statement {
    into.query = query
    into.classification =
      this.#session.transaction?.readOnly === true ? READ : this.#c.classifier.classify(query)
    into.hint = routeHintOf(query)
    into.readTimeoutMs = readTimeoutOf(query) ?? this.#c.readTimeoutMs
    into.readReason = undefined
    return into
  }

  /** Before a statement on the primary session: pinning and the start of a raw transaction. */
  #beforePrimary(classification: Classification, pin: boolean): void {
    const session = this.#session
    if (pin && classification.pinsSession) session.pinned = true
    const control = classification.transactionControl
    if (control === 'begin' || control === 'begin-read-only')
      session.rawTransaction = { wrote: false }
  }

  /**
   * After a statement on the primary session: what it wrote, for read-your-writes. A promise only
   * when a position must be read from the primary (PostgreSQL in causal mode).
   */
  #afterPrimary(
    classification: Classification,
    outcome: NodeQueryOutcome<unknown>,
  ): Promise<void> | undefined {
    const session = this.#session
    const control = classification.transactionControl
    const raw = session.rawTransaction
    if (raw !== undefined && control === undefined) {
      if (changesData(classification, outcome.result)) raw.wrote = true
    } else if (control === 'end') {
      session.rawTransaction = undefined
      if (raw !== undefined) return this.#recordWrite(session.primary!, outcome, raw.wrote)
    } else if (raw === undefined && (!classification.read || outcome.position !== undefined)) {
      return this.#recordWrite(
        session.primary!,
        outcome,
        changesData(classification, outcome.result),
      )
    }
    return undefined
  }

  /**
   * Whether a failed statement observed the primary's state: a write the primary refused on its
   * own terms (a duplicate key a concurrent writer caused, a constraint, a lock timeout), not a
   * lost connection, which observed nothing. Reads in the scope must then see that state.
   */
  #observes(statement: Statement, error: unknown): boolean {
    const c = this.#c
    return (
      c.consistency !== 'eventual' &&
      !statement.classification.read &&
      this.#session.primary !== undefined &&
      !c.engine.isConnectionError(error)
    )
  }

  /**
   * Records, as a write of the scope, the primary's position after a failed write: later reads in
   * the scope wait for it (causal) or run on the primary (sticky, or when it cannot be read).
   */
  async #recordObserved(): Promise<void> {
    const c = this.#c
    const primary = this.#session.primary
    if (primary === undefined) return
    const position =
      c.consistency === 'causal' ? await c.engine.observedPosition?.(primary) : undefined
    c.planner.recordWrite(this.#session.scope, position, c.now())
  }

  /**
   * Records the scope's new write position: from the result (MySQL session tracking) or by asking
   * the primary (PostgreSQL). `wrote` says whether the statement changed anything when no
   * position came back; such a write makes the scope's reads sticky.
   */
  #recordWrite(
    connection: PhysicalConnection,
    outcome: NodeQueryOutcome<unknown>,
    wrote: boolean,
  ): Promise<void> | undefined {
    const c = this.#c
    if (c.consistency === 'eventual') return undefined
    const position = outcome.position
    // Only causal mode uses positions: sticky mode does not pay the extra round trip for them.
    if (
      position === undefined &&
      wrote &&
      c.consistency === 'causal' &&
      !c.engine.positionsFromResults &&
      c.engine.primaryPosition
    ) {
      return c.engine
        .primaryPosition(connection)
        .then((read) => this.#record(connection, read, wrote))
    }
    this.#record(connection, position, wrote)
    return undefined
  }

  /** Records the write (at `position`, when known) in the connection's scope. */
  #record(
    connection: PhysicalConnection,
    position: ReplicationPosition | undefined,
    wrote: boolean,
  ): void {
    const c = this.#c
    if (position !== undefined) {
      // Recorded where this connection's reads look: a scope of its own would only repeat it.
      c.planner.recordWrite(this.#session.readScope, position, c.now())
    } else if (wrote) {
      // A write of unknown position keeps this connection's reads sticky even after a later
      // write elsewhere reports a position: it needs a scope of its own.
      c.planner.recordWrite(this.#session.scope, undefined, c.now())
      // Only a write whose result should have carried a position says the server reports none
      // (binary log or GTIDs off). A position that could not be read (PostgreSQL's primary died
      // right after the write) says nothing of the kind: the engine reports real refusals itself.
      if (c.consistency === 'causal' && c.engine.positionsFromResults) {
        c.planner.writeWithoutPosition(connection.node.name)
      }
    }
  }

  // ---- release -------------------------------------------------------------------------------

  /** Returns everything held to the pools (called by the driver's `releaseConnection`). */
  release(): void {
    this.#session.release()
  }
}
