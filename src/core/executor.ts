import type { CompiledQuery, QueryResult } from 'kysely'
import type { HealthMonitor } from '../health/health-monitor.js'
import {
  appendSqlComment,
  currentQueryComment,
  formatSqlComment,
} from '../observability/query-comments.js'
import type { StatementSpan, Tracing } from '../observability/tracing.js'
import type {
  ReplicaCandidate,
  ReplicaSelector,
  SelectionContext,
} from '../selection/replica-selector.js'
import type { ResolvedConfig } from './config.js'
import type { Engine, NodeQueryOutcome, PhysicalConnection } from './contracts/engine.js'
import { annotateNodeError } from './contracts/errors.js'
import type { RouteReason } from './contracts/events.js'
import type { NodeRegistry } from './node-registry.js'
import { NodeRuntime } from './node-runtime.js'
import type { ReadPlanner } from './read-planner.js'
import { canRetry } from './retry-policy.js'
import type { Route, Router, Statement } from './router.js'
import type { RoutingStatistics } from './routing-statistics.js'
import type { Session } from './session.js'

/** A node and a connection on it, reached for one attempt of a statement. */
export interface Target {
  readonly node: NodeRuntime
  readonly connection: PhysicalConnection
  /** A replica connection checked out for this statement alone (released right after it). */
  readonly transient: boolean
  readonly reason: RouteReason
  /** Releases a primary fallback-read slot, when one was taken. */
  readonly leaveFallback: (() => void) | undefined
}

/** What the executor needs besides the router: the cluster's parts, by narrow reference. */
export interface ExecutorOptions {
  readonly engine: Engine
  readonly config: ResolvedConfig
  readonly registry: NodeRegistry
  readonly planner: ReadPlanner
  readonly monitor: HealthMonitor
  readonly statistics: RoutingStatistics
  readonly router: Router
  readonly selector: ReplicaSelector
  readonly now: () => number
  /** OpenTelemetry, once loaded at init. */
  readonly tracing: () => Tracing | undefined
}

/**
 * Carries out routes: reaches the node (pool checkout, causal wait), runs the statement, and
 * keeps in one place what must hold on every path: load and health accounting, the rule that a
 * session this library killed says nothing about its node, tracing, query comments, the route
 * report, and the retry policy ({@link canRetry}) with re-planning through the router.
 */
export class Executor {
  readonly #o: ExecutorOptions
  readonly #selection: { nowMs: number; random: () => number } = { nowMs: 0, random: Math.random }

  constructor(options: ExecutorOptions) {
    this.#o = options
  }

  /** Runs a statement (one result) along `route`, retrying reads on other nodes by the policy. */
  async execute<R>(
    session: Session,
    statement: Statement,
    route: Route,
    query: CompiledQuery,
    signal: AbortSignal | undefined,
  ): Promise<NodeQueryOutcome<R>> {
    let tried: NodeRuntime[] | undefined
    for (;;) {
      const reached = await this.#reach(session, statement, route, signal, tried)
      if (reached instanceof NodeRuntime) {
        tried = tried === undefined ? [reached] : [...tried, reached]
        route = this.#replan(statement, session, tried)
        continue
      }
      const target = reached
      const sent = this.#decorate(query, target)
      const span = this.#span(target, sent, session.waitedMs)
      const started = this.#o.monitor.started(target.node)
      session.running = target
      try {
        const outcome =
          span === undefined
            ? await target.connection.execute<R>(sent, signal)
            : await span.run(() => target.connection.execute<R>(sent, signal))
        span?.end()
        this.#succeeded(target, started)
        return outcome
      } catch (error) {
        span?.end(error)
        if (!this.#failed(target, error, started, false, statement, signal)) {
          throw annotateNodeError(error, target.node.name)
        }
        tried = tried === undefined ? [target.node] : [...tried, target.node]
        route = this.#replan(statement, session, tried)
      } finally {
        session.running = undefined
      }
    }
  }

  /**
   * Streams a statement along `route`. Retried elsewhere like {@link execute} while no row has
   * reached the caller; after that a failure ends the stream with the node's name on the error.
   */
  async *stream<R>(
    session: Session,
    statement: Statement,
    route: Route,
    query: CompiledQuery,
    chunkSize: number,
    signal: AbortSignal | undefined,
  ): AsyncIterableIterator<QueryResult<R>> {
    let tried: NodeRuntime[] | undefined
    for (;;) {
      const reached = await this.#reach(session, statement, route, signal, tried)
      if (reached instanceof NodeRuntime) {
        tried = tried === undefined ? [reached] : [...tried, reached]
        route = this.#replan(statement, session, tried)
        continue
      }
      const target = reached
      const sent = this.#decorate(query, target)
      const span = this.#span(target, sent, session.waitedMs)
      const started = this.#o.monitor.started(target.node)
      session.running = target
      let delivered = false
      let settled = false
      const iterator = target.connection.stream<R>(sent, chunkSize, signal)
      try {
        for (;;) {
          const next =
            span === undefined ? await iterator.next() : await span.run(() => iterator.next())
          if (next.done === true) break
          delivered = true
          yield next.value
        }
      } catch (error) {
        settled = true
        span?.end(error)
        if (!this.#failed(target, error, started, delivered, statement, signal)) {
          throw annotateNodeError(error, target.node.name)
        }
        tried = tried === undefined ? [target.node] : [...tried, target.node]
        route = this.#replan(statement, session, tried)
        continue
      } finally {
        session.running = undefined
        if (!settled) {
          // Read to the end, or the caller stopped early: close the driver's stream.
          await iterator.return?.()
          span?.end()
          this.#succeeded(target, started)
        }
      }
      return
    }
  }

  /**
   * Runs `operation` (the `begin` of a read-only transaction) along a read `route` and keeps the
   * connection it ran on: the target is returned, for the transaction to hold.
   */
  async hold(
    session: Session,
    statement: Statement,
    route: Route,
    operation: (connection: PhysicalConnection) => Promise<unknown>,
    signal: AbortSignal | undefined,
  ): Promise<Target> {
    let tried: NodeRuntime[] | undefined
    for (;;) {
      const reached = await this.#reach(session, statement, route, signal, tried)
      if (reached instanceof NodeRuntime) {
        tried = tried === undefined ? [reached] : [...tried, reached]
        route = this.#replan(statement, session, tried, 'read-only-transaction')
        continue
      }
      const target = reached
      const started = this.#o.monitor.started(target.node)
      try {
        await operation(target.connection)
        this.#o.monitor.succeeded(target.node, started)
        target.leaveFallback?.()
        return target
      } catch (error) {
        if (!this.#failed(target, error, started, false, statement, signal)) {
          throw annotateNodeError(error, target.node.name)
        }
        tried = tried === undefined ? [target.node] : [...tried, target.node]
        route = this.#replan(statement, session, tried, 'read-only-transaction')
      }
    }
  }

  #replan(
    statement: Statement,
    session: Session,
    tried: readonly NodeRuntime[],
    readReason?: RouteReason,
  ): Route {
    return this.#o.router.plan(statement, session, this.#o.now(), tried, readReason)
  }

  /**
   * Reaches the node of `route`: a connection and, for a causal read, the replica's catching up.
   * Returns the node instead when reaching it failed in a way the retry policy re-plans.
   */
  async #reach(
    session: Session,
    statement: Statement,
    route: Route,
    signal: AbortSignal | undefined,
    tried: readonly NodeRuntime[] | undefined,
  ): Promise<Target | NodeRuntime> {
    const o = this.#o
    switch (route.kind) {
      case 'transaction': {
        const transaction = session.transaction!
        return this.#report(session, statement, {
          node: transaction.node,
          connection: transaction.connection,
          transient: false,
          reason: route.reason,
          leaveFallback: undefined,
        })
      }
      case 'primary':
        return this.#report(
          session,
          statement,
          await this.#primary(session, route.reason, route.fallback, signal),
          route.detail,
        )
      default:
        break
    }
    const node = this.#select(route.candidates)
    if (node === undefined) {
      const reason = tried === undefined ? 'no-replica' : 'retry'
      return this.#report(session, statement, await this.#primary(session, reason, true, signal))
    }
    let connection: PhysicalConnection
    try {
      connection = await node.pool.acquire(signal)
    } catch (error) {
      if (this.#unreachable(node, error, statement, signal)) return node
      throw annotateNodeError(error, node.name)
    }
    if (route.kind === 'replica') {
      return this.#report(session, statement, {
        node,
        connection,
        transient: true,
        reason: route.reason,
        leaveFallback: undefined,
      })
    }
    // A causal read: wait for the replica to apply the scope's writes, at most causalWaitTimeoutMs.
    const started = o.now()
    let caughtUp: boolean
    try {
      caughtUp = await o.engine.waitForPosition(
        connection,
        route.position,
        o.config.causalWaitTimeoutMs,
        signal,
      )
    } catch (error) {
      const connectionLevel = o.engine.isConnectionError(error)
      if (connectionLevel) connection.destroy()
      else connection.release()
      if (this.#unreachable(node, error, statement, signal)) return node
      throw annotateNodeError(error, node.name)
    }
    const waitedMs = o.now() - started
    o.statistics.recordCausalWait(waitedMs)
    if (!caughtUp) {
      o.planner.waitTimedOut(node, route.position, o.now())
      connection.release()
      const fallback = await this.#primary(session, 'causal-timeout', false, signal)
      return this.#report(session, statement, fallback, undefined, waitedMs)
    }
    o.planner.learnPosition(node, route.position)
    const reason = tried === undefined ? 'causal-waited' : 'retry'
    return this.#report(
      session,
      statement,
      { node, connection, transient: true, reason, leaveFallback: undefined },
      undefined,
      waitedMs,
    )
  }

  /** The held primary session as a target; `fallback` takes a slot of `maxPrimaryReads`. */
  async #primary(
    session: Session,
    reason: RouteReason,
    fallback: boolean,
    signal: AbortSignal | undefined,
  ): Promise<Target> {
    const o = this.#o
    const node = o.registry.primary
    const leaveFallback =
      fallback && o.registry.replicas.length > 0 ? o.planner.enterFallbackRead() : undefined
    try {
      const connection = await session.primaryConnection(signal)
      return { node, connection, transient: false, reason, leaveFallback }
    } catch (error) {
      leaveFallback?.()
      o.monitor.failed(node, error, undefined, o.engine.isConnectionError(error))
      throw error
    }
  }

  #select(candidates: readonly ReplicaCandidate[]): NodeRuntime | undefined {
    if (candidates.length === 0) return undefined
    const context = this.#selection
    context.nowMs = this.#o.now()
    const picked = this.#o.selector.select(candidates, context as SelectionContext)
    return picked === undefined ? undefined : this.#o.registry.replicaByIndex(picked.index)
  }

  /** Counts the decision, tells `onRoute`, and remembers it for the comment and the trace. */
  #report(
    session: Session,
    statement: Statement,
    target: Target,
    detail?: string,
    waitedMs?: number,
  ): Target {
    session.reason = target.reason
    session.waitedMs = waitedMs
    this.#o.statistics.route(target.node, target.reason, statement.sql, detail, waitedMs)
    return target
  }

  #succeeded(target: Target, started: number): void {
    this.#o.monitor.succeeded(target.node, started)
    target.leaveFallback?.()
    if (target.transient) target.connection.release()
  }

  /**
   * Accounts a failed statement and ends its connection's use: the one place for the rule that a
   * session this library killed on request says nothing about the node's health. Returns whether
   * the retry policy re-runs the statement elsewhere.
   */
  #failed(
    target: Target,
    error: unknown,
    started: number,
    rowsDelivered: boolean,
    statement: Statement,
    signal: AbortSignal | undefined,
  ): boolean {
    const o = this.#o
    const killed = target.connection.killed
    const connectionLevel = !killed && o.engine.isConnectionError(error)
    o.monitor.failed(target.node, error, started, connectionLevel)
    target.leaveFallback?.()
    if (target.transient) {
      if (connectionLevel || killed) target.connection.destroy()
      else target.connection.release()
    }
    return canRetry(
      { connectionLevel, replicaRead: target.transient, rowsDelivered },
      { retryReads: o.config.retryReads, hint: statement.hint, signal },
    )
  }

  /** Reaching a replica failed (checkout, causal wait): accounted; `true` when to re-plan. */
  #unreachable(
    node: NodeRuntime,
    error: unknown,
    statement: Statement,
    signal: AbortSignal | undefined,
  ): boolean {
    const o = this.#o
    const connectionLevel = o.engine.isConnectionError(error)
    o.monitor.failed(node, error, undefined, connectionLevel)
    return canRetry(
      { connectionLevel, replicaRead: true, rowsDelivered: false },
      { retryReads: o.config.retryReads, hint: statement.hint, signal },
    )
  }

  /**
   * The statement as sent: with the sqlcommenter comment appended when `queryComments` is on.
   * Appended after routing, so a comment never changes a decision.
   */
  #decorate(query: CompiledQuery, target: Target): CompiledQuery {
    const comments = this.#o.config.queryComments
    if (!comments.enabled) return query
    const context = currentQueryComment()
    const tags = comments.route
      ? { ...context, db_node: target.node.name, db_route_reason: target.reason }
      : context
    if (tags === undefined) return query
    const sqlText = appendSqlComment(query.sql, formatSqlComment(tags))
    return sqlText === query.sql ? query : Object.freeze({ ...query, sql: sqlText })
  }

  /** The statement's span, when tracing is on. */
  #span(
    target: Target,
    query: CompiledQuery,
    waitedMs: number | undefined,
  ): StatementSpan | undefined {
    const tracing = this.#o.tracing()
    if (tracing === undefined) return undefined
    const endpoint = target.node.pool.endpoint()
    return tracing.start({
      system: this.#o.engine.systemName,
      namespace: endpoint?.database,
      serverAddress: endpoint?.host,
      serverPort: endpoint?.port,
      node: target.node.name,
      role: target.node.info.role,
      reason: target.reason,
      causalWaitMs: waitedMs,
      sql: query.sql,
    })
  }
}
