import type {
  CompiledQuery,
  ControlConnectionProvider,
  DatabaseConnection,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from 'kysely'
import { ConsistencyScope, processWideScope } from '../consistency/scope.js'
import {
  appendSqlComment,
  currentQueryComment,
  formatSqlComment,
} from '../observability/query-comments.js'
import type { Classification } from '../routing/classification.js'
import { classifyNode } from '../routing/classify-node.js'
import type { ReplicaCandidate } from '../selection/replica-selector.js'
import type { ClusterRuntime, ReadPlan } from './cluster-runtime.js'
import type { NodeQueryOutcome, PhysicalConnection } from './engine.js'
import { annotateNodeError, ReadOnlyViolationError, ReplicatedConfigError } from './errors.js'
import type { RouteReason } from './events.js'
import type { NodeRuntime } from './node-runtime.js'
import { type RouteHint, routeHintOf } from './route-hints.js'

interface AbortOptions {
  readonly signal?: AbortSignal | undefined
}

/** A node and a physical connection on it, chosen for one statement. */
interface Target {
  readonly node: NodeRuntime
  readonly connection: PhysicalConnection
  /** `true` when the connection goes back to its pool right after the statement. */
  readonly transient: boolean
  readonly reason: RouteReason
  readonly detail?: string | undefined
  readonly waitedMs?: number | undefined
  /** Releases a primary fallback-read slot, when one was taken. */
  readonly leaveFallback?: (() => void) | undefined
}

interface OpenTransaction {
  readonly node: NodeRuntime
  readonly connection: PhysicalConnection
  readonly readOnly: boolean
  wrote: boolean
}

/**
 * The connection Kysely gets from `acquireConnection`. It holds no physical connection until a
 * statement arrives; then it classifies the statement and runs it on the primary or on a replica.
 *
 * - Primary connections are held from first use until Kysely releases this connection, so a
 *   `db.connection()` scope keeps one primary session.
 * - Replica connections are checked out per statement (per stream, per read-only transaction).
 * - Once a statement creates session state, every later statement runs on the held primary session.
 */
export class RoutingConnection implements DatabaseConnection {
  readonly #cluster: ClusterRuntime
  /** The innermost explicit `consistencyScope` when acquired, if any. */
  #explicit: ConsistencyScope | undefined
  /** This connection's scope, created on first use (eventual mode never needs one). */
  #scope: ConsistencyScope | undefined
  #primary: PhysicalConnection | undefined
  #pinned = false
  #rawTransaction: { wrote: boolean } | undefined
  #transaction: OpenTransaction | undefined
  #running: { node: NodeRuntime; connection: PhysicalConnection } | undefined
  /** The last routing decision, for the query comment and the trace of the statement it routed. */
  #lastRoute: { reason: RouteReason; waitedMs: number | undefined } = {
    reason: 'read',
    waitedMs: undefined,
  }

  constructor(cluster: ClusterRuntime, explicit: ConsistencyScope | undefined) {
    this.#cluster = cluster
    this.#explicit = explicit
  }

  /** Makes a released connection ready for its next acquisition (the driver reuses them). */
  reset(explicit: ConsistencyScope | undefined): void {
    this.#explicit = explicit
    this.#scope = undefined
  }

  /**
   * The scope this connection's reads and writes count in: the explicit `consistencyScope` it was
   * acquired in, else a scope of its own (a single query, a `db.connection()` scope, a
   * transaction) nested in the process-wide one, so its writes count for later code in no scope.
   */
  get scope(): ConsistencyScope {
    this.#scope ??= this.#explicit ?? new ConsistencyScope(processWideScope())
    return this.#scope
  }

  async executeQuery<R>(query: CompiledQuery, options?: AbortOptions): Promise<QueryResult<R>> {
    const signal = options?.signal
    const transaction = this.#transaction
    if (transaction !== undefined) {
      return this.#executeInTransaction<R>(transaction, query, signal)
    }
    const classification = this.#classify(query)
    const hint = routeHintOf(query.queryId)
    if (classification.read && !this.#pinned && hint?.target !== 'primary') {
      return this.#executeRead<R>(query, hint, signal)
    }
    return this.#executeOnPrimary<R>(query, classification, hint, signal)
  }

  async *streamQuery<R>(
    query: CompiledQuery,
    chunkSize = 1,
    options?: AbortOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    const signal = options?.signal
    const transaction = this.#transaction
    if (transaction !== undefined) {
      this.#route(
        transaction.node,
        transaction.readOnly ? 'read-only-transaction' : 'transaction',
        query.sql,
      )
      yield* this.#track(transaction.node, transaction.connection, () =>
        transaction.connection.stream<R>(
          this.#decorate(query, transaction.node),
          chunkSize,
          signal,
        ),
      )
      return
    }
    const classification = this.#classify(query)
    const hint = routeHintOf(query.queryId)
    if (!classification.read || this.#pinned || hint?.target === 'primary') {
      this.#checkHintAllowsWrite(hint, classification, query)
      const target = await this.#primaryTarget(classification, hint, signal)
      this.#route(target.node, target.reason, query.sql, target.detail)
      if (classification.pinsSession) this.#pinned = true
      yield* this.#track(target.node, target.connection, () =>
        target.connection.stream<R>(this.#decorate(query, target.node), chunkSize, signal),
      )
      return
    }
    let tried: NodeRuntime[] | undefined
    let retry = false
    for (;;) {
      const target = await this.#readTarget(query, hint, signal, tried, retry)
      let yielded = false
      const started = this.#cluster.now()
      target.node.load.start()
      this.#running = { node: target.node, connection: target.connection }
      let failed = false
      try {
        for await (const chunk of target.connection.stream<R>(
          this.#decorate(query, target.node),
          chunkSize,
          signal,
        )) {
          yielded = true
          yield chunk
        }
      } catch (error) {
        failed = true
        const now = this.#cluster.now()
        const connectionLevel = this.#cluster.engine.isConnectionError(error)
        this.#cluster.queryFailed(target.node, error, now - started, now, connectionLevel)
        this.#finishTarget(target, connectionLevel)
        const pinnedToReplica = hint?.target === 'replica' && hint.name !== undefined
        if (
          connectionLevel &&
          !yielded &&
          this.#cluster.config.retryReads &&
          target.transient &&
          !pinnedToReplica
        ) {
          // Replicas this statement has tried, allocated only on this rare path.
          tried = tried === undefined ? [target.node] : [...tried, target.node]
          retry = true
          continue
        }
        throw annotateNodeError(error, target.node.name)
      } finally {
        this.#running = undefined
        if (!failed) {
          const now = this.#cluster.now()
          this.#cluster.querySucceeded(target.node, now - started, now)
          this.#finishTarget(target, false)
        }
      }
      return
    }
  }

  /** Cancels the running statement on the node that runs it (Kysely 0.29 `'cancel query'`). */
  async cancelQuery(_controlConnectionProvider: ControlConnectionProvider): Promise<void> {
    await this.#control('query')
  }

  /** Kills the session running the statement (Kysely 0.29 `'kill session'`). */
  async killSession(_controlConnectionProvider: ControlConnectionProvider): Promise<void> {
    await this.#control('session')
  }

  async #control(kind: 'query' | 'session'): Promise<void> {
    const running = this.#running
    if (running === undefined || running.connection.sessionId === undefined) return
    if (kind === 'session') {
      ;(running.connection as { killed?: boolean }).killed = true
    }
    // A control connection from the same node's pool: the statement may run on a replica, and a
    // `kill` routed like an ordinary statement would reach the primary instead.
    const control = await running.node.pool.acquire()
    try {
      await this.#cluster.engine.cancel(control, running.connection.sessionId, kind)
    } finally {
      control.release()
    }
  }

  // ---- transactions -------------------------------------------------------------------------

  async beginTransaction(settings: TransactionSettings, signal?: AbortSignal): Promise<void> {
    const cluster = this.#cluster
    if (settings.accessMode === 'read only' && !this.#pinned) {
      let tried: NodeRuntime[] | undefined
      let retry = false
      for (;;) {
        const target = await this.#readTarget(
          undefined,
          undefined,
          signal,
          tried,
          retry,
          'read-only-transaction',
        )
        try {
          await cluster.engine.beginTransaction(target.connection, settings)
        } catch (error) {
          const connectionLevel = cluster.engine.isConnectionError(error)
          const now = cluster.now()
          cluster.queryFailed(target.node, error, 0, now, connectionLevel)
          this.#finishTarget(target, connectionLevel)
          if (connectionLevel && target.transient && cluster.config.retryReads) {
            // Replicas this statement has tried, allocated only on this rare path.
            tried = tried === undefined ? [target.node] : [...tried, target.node]
            retry = true
            continue
          }
          throw annotateNodeError(error, target.node.name)
        }
        target.leaveFallback?.()
        this.#route(
          target.node,
          target.reason === 'read' ? 'read-only-transaction' : target.reason,
          'begin',
        )
        this.#transaction = {
          node: target.node,
          connection: target.connection,
          readOnly: true,
          wrote: false,
        }
        return
      }
    }
    const connection = await this.#primaryConnection(signal)
    try {
      await cluster.engine.beginTransaction(connection, settings)
    } catch (error) {
      throw annotateNodeError(error, cluster.primary.name)
    }
    this.#route(cluster.primary, 'transaction', 'begin')
    this.#transaction = { node: cluster.primary, connection, readOnly: false, wrote: false }
  }

  async commitTransaction(): Promise<void> {
    const transaction = this.#requireTransaction('commit')
    this.#transaction = undefined
    const cluster = this.#cluster
    try {
      const outcome = await cluster.engine.commitTransaction(transaction.connection)
      if (!transaction.readOnly) {
        await this.#recordWrite(transaction.connection, outcome, transaction.wrote)
      }
    } catch (error) {
      throw annotateNodeError(error, transaction.node.name)
    } finally {
      this.#endTransaction(transaction)
    }
  }

  async rollbackTransaction(): Promise<void> {
    const transaction = this.#requireTransaction('rollback')
    this.#transaction = undefined
    try {
      await this.#cluster.engine.rollbackTransaction(transaction.connection)
    } catch (error) {
      throw annotateNodeError(error, transaction.node.name)
    } finally {
      this.#endTransaction(transaction)
    }
  }

  async runSavepointCommand(
    compile: (queryCompiler: QueryCompiler['compileQuery']) => CompiledQuery,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    const transaction = this.#requireTransaction('savepoint')
    await this.#executeInTransaction(transaction, compile(compileQuery), undefined)
  }

  #requireTransaction(what: string): OpenTransaction {
    const transaction = this.#transaction
    if (transaction === undefined) {
      throw new Error(`kysely-replicated: ${what} without an open transaction on this connection`)
    }
    return transaction
  }

  #endTransaction(transaction: OpenTransaction): void {
    if (transaction.connection !== this.#primary) {
      transaction.connection.release()
    }
  }

  async #executeInTransaction<R>(
    transaction: OpenTransaction,
    query: CompiledQuery,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    const classification = transaction.readOnly ? undefined : this.#classify(query)
    this.#route(
      transaction.node,
      transaction.readOnly ? 'read-only-transaction' : 'transaction',
      query.sql,
    )
    const outcome = await this.#run<R>(transaction.node, transaction.connection, query, signal)
    if (classification !== undefined && isEffectiveWrite(classification, outcome))
      transaction.wrote = true
    return outcome.result
  }

  // ---- statements outside transactions ------------------------------------------------------

  #route(
    node: NodeRuntime,
    reason: RouteReason,
    sqlText: string,
    detail?: string,
    waitedMs?: number,
  ): void {
    this.#lastRoute = { reason, waitedMs }
    this.#cluster.route(node, reason, sqlText, detail, waitedMs)
  }

  /**
   * The statement as sent: with the sqlcommenter comment appended when `queryComments` is on.
   * Appended after routing, so a comment never changes a decision.
   */
  #decorate(query: CompiledQuery, node: NodeRuntime): CompiledQuery {
    const comments = this.#cluster.config.queryComments
    if (!comments.enabled) return query
    const context = currentQueryComment()
    const tags = comments.route
      ? { ...context, db_node: node.name, db_route_reason: this.#lastRoute.reason }
      : context
    if (tags === undefined) return query
    const sqlText = appendSqlComment(query.sql, formatSqlComment(tags))
    return sqlText === query.sql ? query : Object.freeze({ ...query, sql: sqlText })
  }

  /** Runs `fn` inside the statement's trace span (or annotates the active span), when tracing is on. */
  #traced<T>(node: NodeRuntime, query: CompiledQuery, fn: () => Promise<T>): Promise<T> {
    const tracing = this.#cluster.tracing
    if (tracing === undefined) return fn()
    const endpoint = node.pool.endpoint?.()
    return tracing.trace(
      {
        system: this.#cluster.engine.systemName,
        namespace: endpoint?.database,
        serverAddress: endpoint?.host,
        serverPort: endpoint?.port,
        node: node.name,
        role: node.info.role,
        reason: this.#lastRoute.reason,
        causalWaitMs: this.#lastRoute.waitedMs,
        sql: query.sql,
      },
      fn,
    )
  }

  #classify(query: CompiledQuery): Classification {
    return classifyNode(query.query, query.sql, this.#cluster.classifyOptions)
  }

  #checkHintAllowsWrite(
    hint: RouteHint | undefined,
    classification: Classification,
    query: CompiledQuery,
  ): void {
    if (hint === undefined || classification.read) return
    if (hint.target === 'read-only' || hint.target === 'replica') {
      const via = hint.target === 'read-only' ? 'readOnly(db)' : 'onReplica(db)'
      throw new ReadOnlyViolationError(
        `a statement that must run on the primary (${classification.reason}${classification.detail ? `: ${classification.detail}` : ''}) was sent through ${via}; use the primary Kysely instance for it`,
        query.sql,
      )
    }
  }

  async #executeOnPrimary<R>(
    query: CompiledQuery,
    classification: Classification,
    hint: RouteHint | undefined,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    this.#checkHintAllowsWrite(hint, classification, query)
    const target = await this.#primaryTarget(classification, hint, signal)
    if (classification.pinsSession) this.#pinned = true
    const control = classification.transactionControl
    if (control === 'begin' || control === 'begin-read-only') {
      this.#rawTransaction = { wrote: false }
    }
    this.#route(target.node, target.reason, query.sql, target.detail)
    try {
      const outcome = await this.#run<R>(target.node, target.connection, query, signal)
      if (
        this.#rawTransaction !== undefined &&
        control === undefined &&
        isEffectiveWrite(classification, outcome)
      ) {
        this.#rawTransaction.wrote = true
      }
      if (control === 'end') {
        const raw = this.#rawTransaction
        this.#rawTransaction = undefined
        if (raw !== undefined) await this.#recordWrite(target.connection, outcome, raw.wrote)
      } else if (
        this.#rawTransaction === undefined &&
        (!classification.read || outcome.position !== undefined)
      ) {
        await this.#recordWrite(
          target.connection,
          outcome,
          isEffectiveWrite(classification, outcome),
        )
      }
      return outcome.result
    } finally {
      target.leaveFallback?.()
    }
  }

  /**
   * Records the scope's new write position: from the result (MySQL session tracking) or by asking
   * the primary (PostgreSQL). `wrote` says whether the statement changed anything when no
   * position came back; such a write makes the scope's reads sticky.
   */
  async #recordWrite(
    connection: PhysicalConnection,
    outcome: NodeQueryOutcome<unknown>,
    wrote: boolean,
  ): Promise<void> {
    const cluster = this.#cluster
    if (cluster.config.consistency === 'eventual') return
    let position = outcome.position
    // Only causal mode uses positions: sticky mode does not pay the extra round trip for them.
    if (
      position === undefined &&
      wrote &&
      cluster.config.consistency === 'causal' &&
      !cluster.engine.positionsFromResults &&
      cluster.engine.primaryPosition
    ) {
      position = await cluster.engine.primaryPosition(connection)
    }
    if (position !== undefined) {
      cluster.recordWrite(this.scope, position, cluster.now())
    } else if (wrote) {
      cluster.recordWrite(this.scope, undefined, cluster.now())
      if (cluster.config.consistency === 'causal')
        cluster.writeWithoutPosition(connection.node.name)
    }
  }

  async #executeRead<R>(
    query: CompiledQuery,
    hint: RouteHint | undefined,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    const cluster = this.#cluster
    let tried: NodeRuntime[] | undefined
    let retry = false
    for (;;) {
      const target = await this.#readTarget(query, hint, signal, tried, retry)
      try {
        const outcome = await this.#run<R>(target.node, target.connection, query, signal)
        this.#finishTarget(target, false)
        return outcome.result
      } catch (error) {
        const connectionLevel = cluster.engine.isConnectionError(error)
        this.#finishTarget(target, connectionLevel)
        // A read forced to a named replica is not moved elsewhere: the error reaches the caller.
        const pinnedToReplica = hint?.target === 'replica' && hint.name !== undefined
        if (
          connectionLevel &&
          target.transient &&
          cluster.config.retryReads &&
          !pinnedToReplica &&
          !isAborted(signal)
        ) {
          // Replicas this statement has tried, allocated only on this rare path.
          tried = tried === undefined ? [target.node] : [...tried, target.node]
          retry = true
          continue
        }
        throw error
      }
    }
  }

  /** Runs one statement, with load/health accounting and the node's name on errors. */
  async #run<R>(
    node: NodeRuntime,
    connection: PhysicalConnection,
    query: CompiledQuery,
    signal: AbortSignal | undefined,
  ): Promise<NodeQueryOutcome<R>> {
    const cluster = this.#cluster
    const started = cluster.now()
    node.load.start()
    this.#running = { node, connection }
    try {
      const sent = this.#decorate(query, node)
      const outcome = await this.#traced(node, sent, () => connection.execute<R>(sent, signal))
      const now = cluster.now()
      cluster.querySucceeded(node, now - started, now)
      return outcome
    } catch (error) {
      const now = cluster.now()
      // A session this library killed on request (Kysely's 'kill session') says nothing of the node's health.
      const killed = (connection as { killed?: boolean }).killed === true
      cluster.queryFailed(
        node,
        error,
        now - started,
        now,
        !killed && cluster.engine.isConnectionError(error),
      )
      throw annotateNodeError(error, node.name)
    } finally {
      this.#running = undefined
    }
  }

  async *#track<R>(
    node: NodeRuntime,
    connection: PhysicalConnection,
    open: () => AsyncIterableIterator<QueryResult<R>>,
  ): AsyncIterableIterator<QueryResult<R>> {
    const cluster = this.#cluster
    const started = cluster.now()
    node.load.start()
    this.#running = { node, connection }
    let ok = false
    try {
      yield* open()
      ok = true
    } catch (error) {
      const now = cluster.now()
      cluster.queryFailed(node, error, now - started, now, cluster.engine.isConnectionError(error))
      throw annotateNodeError(error, node.name)
    } finally {
      this.#running = undefined
      if (ok) {
        const now = cluster.now()
        cluster.querySucceeded(node, now - started, now)
      }
    }
  }

  #finishTarget(target: Target, broken: boolean): void {
    target.leaveFallback?.()
    if (!target.transient) return
    if (broken || (target.connection as { killed?: boolean }).killed) {
      target.connection.destroy()
    } else {
      target.connection.release()
    }
  }

  // ---- choosing nodes -----------------------------------------------------------------------

  async #primaryConnection(signal: AbortSignal | undefined): Promise<PhysicalConnection> {
    if (this.#primary === undefined) {
      try {
        this.#primary = await this.#cluster.primary.pool.acquire(signal)
      } catch (error) {
        throw annotateNodeError(error, this.#cluster.primary.name)
      }
    }
    return this.#primary
  }

  async #primaryTarget(
    classification: Classification,
    hint: RouteHint | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Target> {
    const connection = await this.#primaryConnection(signal)
    let reason: RouteReason
    if (this.#pinned && classification.read) reason = 'session-pinned'
    else if (hint?.target === 'primary' && classification.read) reason = 'hint'
    else reason = classification.reason === 'read' ? 'session-pinned' : classification.reason
    return {
      node: this.#cluster.primary,
      connection,
      transient: false,
      reason,
      detail: classification.detail,
    }
  }

  /**
   * Chooses where a read runs and checks a connection out there, waiting for the replica to catch
   * up in causal mode. `tried` collects replicas already tried by this statement; with `retry` the
   * plan is made again without them, ending on the primary.
   */
  async #readTarget(
    query: CompiledQuery | undefined,
    hint: RouteHint | undefined,
    signal: AbortSignal | undefined,
    tried: NodeRuntime[] | undefined,
    retry: boolean,
    readReason: RouteReason = 'read',
  ): Promise<Target> {
    const cluster = this.#cluster
    for (;;) {
      const now = cluster.now()
      let plan: ReadPlan
      if (hint?.target === 'replica') {
        plan = this.#hintPlan(hint.name, now)
      } else {
        plan = cluster.planRead(this, now)
      }
      if (plan.kind === 'primary') {
        const target = await this.#fallbackTarget(retry ? 'retry' : plan.reason, signal)
        if (query !== undefined) this.#route(target.node, target.reason, query.sql)
        return target
      }
      const candidates =
        tried === undefined
          ? plan.candidates
          : plan.candidates.filter((c) => !tried!.includes(cluster.replicaByIndex(c.index)))
      const node = cluster.select(candidates, now)
      if (node === undefined) {
        const target = await this.#fallbackTarget(retry ? 'retry' : 'no-replica', signal)
        if (query !== undefined) this.#route(target.node, target.reason, query.sql)
        return target
      }
      let connection: PhysicalConnection
      try {
        connection = await node.pool.acquire(signal)
      } catch (error) {
        const connectionLevel = cluster.engine.isConnectionError(error)
        cluster.queryFailed(node, error, 0, cluster.now(), connectionLevel)
        if (
          connectionLevel &&
          cluster.config.retryReads &&
          hint?.target !== 'replica' &&
          !isAborted(signal)
        ) {
          // Replicas this statement has tried, allocated only on this rare path.
          tried = tried === undefined ? [node] : [...tried, node]
          retry = true
          continue
        }
        throw annotateNodeError(error, node.name)
      }
      let reason: RouteReason = retry
        ? 'retry'
        : hint?.target === 'replica'
          ? 'hint'
          : plan.kind === 'replica'
            ? plan.reason
            : 'causal-waited'
      if (reason === 'read') reason = readReason
      let waitedMs: number | undefined
      if (plan.kind === 'wait') {
        const started = cluster.now()
        let caughtUp: boolean
        try {
          caughtUp = await cluster.engine.waitForPosition(
            connection,
            plan.position,
            cluster.config.causalWaitTimeoutMs,
            signal,
          )
        } catch (error) {
          const connectionLevel = cluster.engine.isConnectionError(error)
          if (connectionLevel) connection.destroy()
          else connection.release()
          cluster.queryFailed(node, error, 0, cluster.now(), connectionLevel)
          if (connectionLevel && cluster.config.retryReads && !isAborted(signal)) {
            // Replicas this statement has tried, allocated only on this rare path.
            tried = tried === undefined ? [node] : [...tried, node]
            retry = true
            continue
          }
          throw annotateNodeError(error, node.name)
        }
        waitedMs = cluster.now() - started
        cluster.recordCausalWait(waitedMs)
        if (!caughtUp) {
          cluster.waitTimedOut(node, plan.position, cluster.now())
          connection.release()
          const target = await this.#fallbackTarget('causal-timeout', signal)
          if (query !== undefined)
            this.#route(target.node, 'causal-timeout', query.sql, undefined, waitedMs)
          return { ...target, waitedMs }
        }
        cluster.learnPosition(node, plan.position)
        if (!retry) reason = 'causal-waited'
      }
      if (query !== undefined) this.#route(node, reason, query.sql, undefined, waitedMs)
      return { node, connection, transient: true, reason, waitedMs }
    }
  }

  #hintPlan(name: string | undefined, now: number): ReadPlan {
    const cluster = this.#cluster
    if (name === undefined) {
      const usable = cluster.usableReplicas(now)
      return usable.length > 0
        ? { kind: 'replica', candidates: usable, reason: 'hint' }
        : { kind: 'primary', reason: 'no-replica' }
    }
    const node = cluster.node(name)
    if (node === undefined || node.info.role !== 'replica') {
      throw new ReplicatedConfigError(
        `onReplica(db, "${name}"): no replica of that name (replicas: ${cluster.replicas.map((r) => r.name).join(', ') || 'none'})`,
      )
    }
    return {
      kind: 'replica',
      candidates: [node.candidate] as readonly ReplicaCandidate[],
      reason: 'hint',
    }
  }

  /** A read the primary runs: on the held primary session, or on one checked out for it. */
  async #fallbackTarget(reason: RouteReason, signal: AbortSignal | undefined): Promise<Target> {
    const cluster = this.#cluster
    const onBehalfOfReplicas = reason === 'no-replica' || reason === 'retry'
    const leaveFallback =
      onBehalfOfReplicas && cluster.replicas.length > 0 ? cluster.enterFallbackRead() : undefined
    try {
      const connection = await this.#primaryConnection(signal)
      return { node: cluster.primary, connection, transient: false, reason, leaveFallback }
    } catch (error) {
      leaveFallback?.()
      throw error
    }
  }

  // ---- release -------------------------------------------------------------------------------

  /** Returns everything held to the pools (called by the driver's `releaseConnection`). */
  release(): void {
    const transaction = this.#transaction
    this.#transaction = undefined
    if (transaction !== undefined && transaction.connection !== this.#primary) {
      // Kysely always ends its transactions; a connection released mid-transaction is not reused.
      transaction.connection.destroy()
    }
    const primary = this.#primary
    this.#primary = undefined
    this.#pinned = false
    this.#rawTransaction = undefined
    if (primary !== undefined) {
      if (transaction !== undefined || (primary as { killed?: boolean }).killed) {
        primary.destroy()
      } else {
        primary.release()
      }
    }
  }
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/**
 * Whether a statement that ran on the primary changed data, so that later reads must observe it.
 * Locking reads, primary-only function calls, session statements and transaction control change
 * no data (on MariaDB they come back without a GTID, and counting them as writes of unknown
 * position would make the scope's reads sticky for nothing). Neither does DML that matched or
 * changed no row. Unclassified statements count as writes: when unsure, it is a write.
 */
function isEffectiveWrite(
  classification: Classification,
  outcome: NodeQueryOutcome<unknown>,
): boolean {
  if (classification.read) return false
  switch (classification.reason) {
    case 'locking-read':
    case 'primary-function':
    case 'session-state':
    case 'transaction-control':
      return false
  }
  const detail = classification.detail
  if (detail === 'create temporary table') return false
  const { numAffectedRows, numChangedRows } = outcome.result
  if (detail === 'insert' || detail === 'update' || detail === 'delete' || detail === 'merge') {
    // DML that matched nothing, or an update that changed nothing (MySQL reports found rows as
    // affected): nothing was written, and the server reports no GTID for it.
    if (numAffectedRows === 0n) return false
    if (detail === 'update' && numChangedRows === 0n) return false
  }
  return true
}
