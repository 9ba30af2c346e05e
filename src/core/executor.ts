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
import { cancelStatement, releaseAfterCancel } from './cancels.js'
import type { ResolvedConfig } from './config.js'
import type { Engine, NodeQueryOutcome, PhysicalConnection } from './contracts/engine.js'
import {
  annotateNodeError,
  NodeUnreachableError,
  PoolWaitTimeoutError,
  PrimaryChangedError,
  ReadTimeoutError,
} from './contracts/errors.js'
import type { RouteReason } from './contracts/events.js'
import { type HedgePort, Hedging, runHedged } from './hedge.js'
import type { NodeRegistry } from './node-registry.js'
import { NodeRuntime } from './node-runtime.js'
import type { ReadPlanner } from './read-planner.js'
import { canRetry } from './retry-policy.js'
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
import { type ReserveHook, reserved, type Session } from './session.js'
import type { Topology } from './topology.js'

/** `#reach` re-planned the statement (its primary changed): reach again along the new route. */
const REPLANNED = Symbol('replanned')

/** A node and a connection on it, reached for one attempt of a statement. */
export interface Target {
  readonly node: NodeRuntime
  readonly connection: PhysicalConnection
  /** A replica connection checked out for this statement alone (released right after it). */
  readonly transient: boolean
  readonly reason: RouteReason
  /** Time spent waiting for the replica to catch up (causal reads). */
  readonly waitedMs: number | undefined
  /** Releases a primary fallback-read slot, when one was taken. */
  readonly leaveFallback: (() => void) | undefined
}

/** One attempt of a statement, started on its target. */
interface Attempt {
  readonly target: Target
  /** The statement as sent (with its query comment). */
  readonly sent: CompiledQuery
  readonly span: StatementSpan | undefined
  /** Clock reading at the start, for the latency sample. */
  readonly started: number
  /** The read timeout's timer, when one applies. */
  readonly timer: NodeJS.Timeout | undefined
}

/** One hedged read: what the {@link HedgePort} methods need of it. */
interface HedgedRead {
  readonly session: Session
  readonly statement: Statement
  readonly signal: AbortSignal | undefined
}

/** A connection reserved on the node of a hedge, not yet used. */
interface HedgeReservation {
  readonly node: NodeRuntime
  readonly connection: PhysicalConnection
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
  /** Follows the primary's role across switchovers and failovers. */
  readonly topology: Topology
  /** OpenTelemetry, once loaded at init. */
  readonly tracing: () => Tracing | undefined
  /** `onReserveConnection`, run on every replica connection a statement reserves. */
  readonly onReserveConnection: ReserveHook | undefined
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
  /** Hedged reads (`hedge` setting); `undefined` when off: then `execute` pays one branch. */
  readonly #hedging: Hedging | undefined

  constructor(options: ExecutorOptions) {
    this.#o = options
    this.#hedging =
      options.config.hedge === undefined ? undefined : new Hedging(options.config.hedge)
  }

  /** Runs a statement (one result) along the session's route, retrying reads on other nodes by the policy. */
  execute<R>(
    session: Session,
    statement: Statement,
    signal: AbortSignal | undefined,
  ): Promise<NodeQueryOutcome<R>> {
    if (this.#hedging !== undefined && session.route!.kind === 'replica') {
      return this.#hedged<R>(this.#hedging, { session, statement, signal })
    }
    return this.#run<R>(session, statement, signal, false) as Promise<NodeQueryOutcome<R>>
  }

  /**
   * {@link execute} for a statement whose result alone matters (a read): no frame to unwrap it.
   * `draft` holds only until this returns (the session's {@link StatementDraft}): a plain read
   * copies it into its read job, every other path keeps a copy of its own.
   */
  read<R>(
    session: Session,
    draft: Statement,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    const route = session.route!
    if (route.kind === 'replica') {
      if (this.#hedging !== undefined) {
        const read = { session, statement: keepStatement(draft), signal }
        return this.#hedged<R>(this.#hedging, read).then(resultOf)
      }
      if (this.#plainReads()) {
        const node = this.#select(route.candidates, session.plannedAtMs)
        if (node?.pool.checksOut === true) {
          return this.#readInline<R>(node, route, session, draft, signal)
        }
        // No replica (the primary then) or a pool without callbacks: the general path, on the
        // replica chosen (a second pick would skip a round-robin turn).
        return this.#run<R>(session, keepStatement(draft), signal, true, node ?? null) as Promise<
          QueryResult<R>
        >
      }
    } else if (route.kind === 'wait' && this.#inlineWaits(route)) {
      const node = this.#select(route.candidates, session.plannedAtMs)
      if (node !== undefined) return this.#readInline<R>(node, route, session, draft, signal)
    }
    return this.#run<R>(session, keepStatement(draft), signal, true) as Promise<QueryResult<R>>
  }

  /** Whether reads have nothing to await between their steps: no reserve hook, no tracing. */
  #plainReads(): boolean {
    return this.#o.onReserveConnection === undefined && this.#o.tracing() === undefined
  }

  /**
   * Whether a causal read can wait and run with callbacks: plain reads, an engine whose wait is
   * one statement, and replica pools with callbacks (the replicas share engine and hooks).
   */
  #inlineWaits(route: WaitRoute): boolean {
    const o = this.#o
    const first = route.candidates[0]
    return (
      first !== undefined &&
      this.#plainReads() &&
      o.engine.waitStatement !== undefined &&
      o.registry.replicaByIndex(first.index).pool.checksOut
    )
  }

  /**
   * A plain read on `node` (no hook, no tracing: nothing to await between its steps): the
   * checkout, the causal wait and the statement run with the callbacks of a {@link ReadJob}
   * inside one promise, the one await of this frame. A checkout or a statement that failed is
   * handled here, in the caller's async stack (which the error then shows), and goes on along
   * {@link #run}'s retry policy.
   */
  async #readInline<R>(
    node: NodeRuntime,
    route: ReplicaRoute | WaitRoute,
    session: Session,
    draft: Statement,
    signal: AbortSignal | undefined,
  ): Promise<QueryResult<R>> {
    const job = this.#jobFor(session)
    job.node = node
    job.route = route
    copyStatementInto(job.statement, draft)
    job.signal = signal
    const settled = await new Promise<unknown>(job.begin)
    if (!(settled instanceof ReadFailure)) {
      releaseJob(job)
      return settled as QueryResult<R>
    }
    const { error, target, started, waitedMs } = settled
    // The retry outlives the job: it keeps the statement of its own.
    const statement = keepStatement(job.statement)
    try {
      if (waitedMs !== undefined) {
        // The replica did not catch up in time: the read runs on the primary.
        session.route = { kind: 'primary', reason: 'causal-timeout', fallback: false, waitedMs }
      } else if (target === undefined) {
        if (!this.#unreachable(node, error, statement, signal)) {
          throw annotateNodeError(error, node.name)
        }
        this.#retryWithout(session, node, statement)
      } else {
        await this.#failed(session, target, error, started, false, statement, signal)
      }
    } finally {
      releaseJob(job)
    }
    return this.#run<R>(session, statement, signal, true) as Promise<QueryResult<R>>
  }

  /**
   * The session's read job when it is idle (a Kysely connection runs one statement at a time,
   * nearly always), else a new one for this read alone.
   */
  #jobFor(session: Session): ReadJob {
    const kept = session.readJob as ReadJob | undefined
    if (kept !== undefined && !kept.busy) {
      kept.busy = true
      return kept
    }
    const job = this.#newJob(session)
    job.busy = true
    if (kept === undefined) session.readJob = job
    return job
  }

  /** A read job: its callbacks are made once, here, and serve every read it carries out. */
  #newJob(session: Session): ReadJob {
    const o = this.#o
    const job = {
      busy: false,
      session,
      node: undefined,
      route: undefined,
      statement: newStatementRecord(),
      signal: undefined,
      connection: undefined,
      transient: true,
      reason: 'read',
      waitedMs: undefined,
      leaveFallback: undefined,
      sent: undefined,
      span: undefined,
      started: 0,
      timer: undefined,
      waitStartedAt: 0,
      resolve: undefined,
    } as unknown as ReadJob
    job.target = job
    const settle = (settled: unknown) => {
      const resolve = job.resolve!
      job.resolve = undefined
      resolve(settled)
    }
    job.begin = (resolve) => {
      job.resolve = resolve
      const node = job.node
      node.pool.checkout(this.#acquireSignal(node, job.signal), session.plannedAtMs, job.onCheckout)
    }
    job.onCheckout = (error, connection) => {
      if (connection === undefined) {
        settle(new ReadFailure(error))
        return
      }
      job.connection = connection
      const route = job.route!
      if (route.kind === 'replica') {
        this.#sendRead(job, route.reason, undefined, settle)
        return
      }
      // A causal read: the wait, sent like a statement (registered as running, so a rescue
      // abandons it), then the read; as `#reach` does on the async path.
      const wait = o.engine.waitStatement!(route.position, o.config.causalWaitTimeoutMs)
      job.waitStartedAt = o.now()
      if (wait === undefined || connection.send === undefined) {
        // Nothing to wait with (a position of another engine): the primary answers instead.
        connection.release()
        settle(new ReadFailure(undefined, undefined, 0, 0))
        return
      }
      job.node.running.add(connection)
      connection.send(wait, job.onWaited)
    }
    job.onWaited = (error, outcome) => {
      const node = job.node
      const connection = job.connection
      const route = job.route as WaitRoute
      node.running.delete(connection)
      let waitedMs: number
      try {
        if (outcome === undefined) {
          if (o.engine.isConnectionError(error)) connection.destroy()
          else connection.release()
          settle(new ReadFailure(error))
          return
        }
        const now = o.now()
        waitedMs = now - job.waitStartedAt
        o.statistics.recordCausalWait(waitedMs)
        if (!o.engine.waitReached!(outcome.result)) {
          o.planner.waitTimedOut(node, route.position, now)
          connection.release()
          settle(new ReadFailure(undefined, undefined, 0, waitedMs))
          return
        }
        o.planner.learnPosition(node, route.position)
      } catch (unexpected) {
        connection.release()
        settle(new ReadFailure(unexpected))
        return
      }
      this.#sendRead(job, 'causal-waited', waitedMs, settle)
    }
    job.onResult = (failure, outcome) => {
      job.session.running = undefined
      if (job.timer !== undefined) clearTimeout(job.timer)
      if (outcome === undefined) {
        settle(new ReadFailure(failure, job, job.started))
        return
      }
      try {
        this.#succeeded(job, job.started, job.statement)
      } finally {
        settle(outcome.result)
      }
    }
    return job
  }

  /** The read itself on the job's checked-out replica connection, accounted as in `#run`. */
  #sendRead(
    job: ReadJob,
    reason: RouteReason,
    waitedMs: number | undefined,
    settle: (settled: unknown) => void,
  ): void {
    const connection = job.connection
    const statement = job.statement
    try {
      job.reason = reason
      job.waitedMs = waitedMs
      this.#report(statement, job)
      // Right after the checkout, its clock reading is the statement's start; after a wait, not.
      this.#start(
        job.session,
        statement,
        job,
        waitedMs === undefined ? connection.checkedOutAtMs : undefined,
        job,
      )
    } catch (unexpected) {
      connection.release()
      settle(new ReadFailure(unexpected))
      return
    }
    if (connection.send !== undefined) connection.send(job.sent, job.onResult)
    else {
      connection.execute(job.sent, undefined).then(
        (outcome) => job.onResult(undefined, outcome),
        (failure: unknown) => job.onResult(failure),
      )
    }
  }

  /**
   * The one async frame of a statement. The common read (a replica route without a reserve hook)
   * is reached inline: a replica chosen, one await for its connection, one for the result.
   */
  async #run<R>(
    session: Session,
    statement: Statement,
    signal: AbortSignal | undefined,
    resultOnly: boolean,
    chosen?: NodeRuntime | null,
  ): Promise<NodeQueryOutcome<R> | QueryResult<R>> {
    // `chosen`: the replica the caller already picked for the first attempt (`null`: none).
    let picked = chosen
    for (;;) {
      let attempt: Attempt
      const route = session.route!
      const node =
        picked !== undefined
          ? (picked ?? undefined)
          : route.kind === 'replica' && this.#o.onReserveConnection === undefined
            ? this.#select(route.candidates, session.plannedAtMs)
            : undefined
      picked = undefined
      if (node !== undefined) {
        let connection: PhysicalConnection
        try {
          connection = await node.pool.acquire(
            this.#acquireSignal(node, signal),
            session.plannedAtMs,
          )
        } catch (error) {
          if (!this.#unreachable(node, error, statement, signal)) {
            throw annotateNodeError(error, node.name)
          }
          this.#retryWithout(session, node, statement)
          continue
        }
        attempt = this.#start(
          session,
          statement,
          this.#report(statement, replicaTarget(node, connection, (route as ReplicaRoute).reason)),
          connection.checkedOutAtMs,
        )
      } else {
        const reached = await (route.kind === 'primary'
          ? this.#primary(session, statement, route, signal, true)
          : this.#reach(session, statement, route, signal, session.tried))
        const started = this.#started(session, statement, reached)
        if (started === undefined) continue
        attempt = started
      }
      const { target, span, timer } = attempt
      let outcome: NodeQueryOutcome<R>
      try {
        outcome = await send<R>(attempt, signal)
      } catch (error) {
        // The read timeout's timer goes before the connection may go back to its pool: fired
        // later, it would abandon (and cancel) the next user's statement on it.
        if (timer !== undefined) clearTimeout(timer)
        session.running = undefined
        span?.end(error)
        await this.#failed(session, target, error, attempt.started, false, statement, signal)
        continue
      }
      if (timer !== undefined) clearTimeout(timer)
      session.running = undefined
      span?.end()
      this.#succeeded(target, attempt.started, statement)
      return resultOnly ? outcome.result : outcome
    }
  }

  /**
   * Streams a statement along the session's route. Retried elsewhere like {@link execute} while no row has
   * reached the caller; after that a failure ends the stream with the node's name on the error.
   */
  async *stream<R>(
    session: Session,
    statement: Statement,
    chunkSize: number,
    signal: AbortSignal | undefined,
  ): AsyncIterableIterator<QueryResult<R>> {
    for (;;) {
      const { target, sent, span, started, timer } = await this.#begin(session, statement, signal)
      let delivered = false
      let failed = false
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
        failed = true
        // Before the connection may go back to its pool (see `#run`).
        if (timer !== undefined) clearTimeout(timer)
        span?.end(error)
        await this.#failed(session, target, error, started, delivered, statement, signal)
        continue
      } finally {
        session.running = undefined
        if (timer !== undefined) clearTimeout(timer)
        if (!failed) {
          // Read to the end, or the caller stopped early: close the driver's stream.
          await iterator.return?.()
          span?.end()
          this.#succeeded(target, started, statement)
        }
      }
      return
    }
  }

  /**
   * Runs `operation` (the `begin` of a read-only transaction) along the session's (read) route and keeps the
   * connection it ran on: the target is returned, for the transaction to hold.
   */
  async hold(
    session: Session,
    statement: Statement,
    operation: (connection: PhysicalConnection) => Promise<unknown>,
    signal: AbortSignal | undefined,
  ): Promise<Target> {
    for (;;) {
      const { target, span, started } = await this.#begin(session, statement, signal)
      try {
        await (span === undefined
          ? operation(target.connection)
          : span.run(() => operation(target.connection)))
        span?.end()
        this.#o.monitor.succeeded(target.node, target.connection, started)
        this.#o.statistics.metrics?.statement(target, statement.query.sql, this.#o.now() - started) // Metrics
        target.leaveFallback?.()
        return target
      } catch (error) {
        span?.end(error)
        await this.#failed(session, target, error, started, false, statement, signal)
      } finally {
        session.running = undefined
      }
    }
  }

  // ---- hedged reads (core/hedge.ts orders the attempts; the rules stay here) ----------------

  /** `execute` of a plain replica read with `hedge` on: see {@link runHedged}. */
  async #hedged<R>(hedging: Hedging, read: HedgedRead): Promise<NodeQueryOutcome<R>> {
    try {
      return await runHedged(
        hedging,
        this.#hedgePort as HedgePort<HedgedRead, Attempt, NodeQueryOutcome<R>, HedgeReservation>,
        read,
      )
    } finally {
      read.session.running = undefined
    }
  }

  /** The executor's side of hedged reads, built once. */
  readonly #hedgePort: HedgePort<HedgedRead, Attempt, NodeQueryOutcome<unknown>, HedgeReservation> =
    {
      begin: (read) => this.#begin(read.session, read.statement, read.signal),
      hedgeable: (read, attempt) => {
        const route = read.session.route
        return attempt.target.transient && route?.kind === 'replica' && route.candidates.length > 1
          ? attempt.target.node
          : undefined
      },
      run: (read, attempt) => this.#runAttempt(attempt, read.signal),
      succeeded: (read, attempt) =>
        this.#succeeded(attempt.target, attempt.started, read.statement),
      failed: (read, attempt, error) =>
        this.#failed(
          read.session,
          attempt.target,
          error,
          attempt.started,
          false,
          read.statement,
          read.signal,
        ),
      reserve: (read, node, signal) => this.#reserveHedge(read, node, signal),
      unreserve: (reserved) => reserved.connection.release(),
      // Not the session's running statement: `cancelQuery` reaches the first attempt, and the
      // race then cancels this one (`gaveUp`).
      start: (read, { node, connection }) =>
        this.#start(
          undefined,
          read.statement,
          this.#report(read.statement, replicaTarget(node, connection, 'hedge')),
        ),
      p90: (read, node) => {
        // The lowest of the candidates' p90s: what the read would take on a replica in its normal
        // state. The chosen replica's own p90 is no guide once it slows down: it grows with it.
        let p90 = node.load.latencyP90Ms()
        const route = read.session.route
        if (route?.kind !== 'replica') return p90
        for (const candidate of route.candidates) {
          const other = this.#o.registry.replicaByIndex(candidate.index)?.load.latencyP90Ms()
          if (other !== undefined && (p90 === undefined || other < p90)) p90 = other
        }
        return p90
      },
      abandon: (read, attempt, running, graceMs) => {
        const { target, started } = attempt
        const { node, connection } = target
        let ended = false
        // One timer per lost race: the cancel is sent only if the statement outlives its grace.
        const grace = setTimeout(() => {
          if (ended) return
          const lost = new Error('hedged read: the other replica answered first')
          cancelStatement(this.#o.engine, node, connection, lost)
        }, graceMs)
        grace.unref()
        void running.then((outcome) => {
          ended = true
          clearTimeout(grace)
          if (outcome.ok) {
            // It answered before any cancel landed: a success like any other.
            this.#succeeded(target, started, read.statement)
            return
          }
          this.#o.monitor.cancelled(node, connection, started)
          releaseAfterCancel(
            connection,
            connection.killed ||
              this.#o.engine.isConnectionError(outcome.error) ||
              outcome.error instanceof ReadTimeoutError,
          )
        })
      },
      gaveUp: (read) => read.signal?.aborted === true,
      sent: () => this.#o.statistics.hedgeSent(),
      won: () => this.#o.statistics.hedgeWon(),
    }

  /** Runs a started attempt; ends its span and clears its read timeout either way. */
  async #runAttempt<R>(
    attempt: Attempt,
    signal: AbortSignal | undefined,
  ): Promise<NodeQueryOutcome<R>> {
    const { span } = attempt
    try {
      const outcome = await send<R>(attempt, signal)
      span?.end()
      return outcome
    } catch (error) {
      span?.end(error)
      throw error
    } finally {
      if (attempt.timer !== undefined) clearTimeout(attempt.timer)
    }
  }

  /**
   * A connection for a hedge, on the replica the selector picks among the route's candidates
   * other than `first`'s node (and those already failed). `undefined` when there is none or it
   * cannot be reached (accounted, as any failed checkout), or `signal` gave it up.
   */
  async #reserveHedge(
    read: HedgedRead,
    first: NodeRuntime,
    signal: AbortSignal,
  ): Promise<HedgeReservation | undefined> {
    const route = read.session.route
    if (route?.kind !== 'replica') return undefined
    const tried = read.session.tried
    const others = route.candidates.filter(
      (c) =>
        c.index !== first.candidate.index && !tried?.some((t) => t.candidate.index === c.index),
    )
    const node = this.#select(others, this.#o.now())
    if (node === undefined) return undefined
    const signals = [signal, node.rescue.signal]
    if (read.signal !== undefined) signals.push(read.signal)
    let connection: PhysicalConnection
    try {
      connection = await node.pool.acquire(AbortSignal.any(signals))
    } catch (error) {
      if (!signal.aborted && read.signal?.aborted !== true) this.#o.monitor.unreachable(node, error)
      return undefined
    }
    if (this.#o.onReserveConnection !== undefined) {
      try {
        await reserved(this.#o.onReserveConnection, node, connection)
      } catch {
        return undefined
      }
    }
    if (signal.aborted) {
      connection.release()
      return undefined
    }
    return { node, connection }
  }

  /** Plans the statement again without `node`, which failed it (the retry policy said so). */
  #retryWithout(session: Session, node: NodeRuntime, statement: Statement): void {
    const tried = session.tried === undefined ? [node] : [...session.tried, node]
    session.tried = tried
    const now = this.#o.now()
    session.route = this.#o.router.plan(statement, session, now, tried)
    session.plannedAtMs = now
  }

  /**
   * Reaches the next target of the statement planned in `session.route` (re-planning without
   * each replica that could not be reached, the retry policy's call, or for a new primary) and
   * starts the statement there: comment, span, accounting. One async frame for the common case.
   */
  async #begin(
    session: Session,
    statement: Statement,
    signal: AbortSignal | undefined,
  ): Promise<Attempt> {
    for (;;) {
      const reached = await this.#reach(session, statement, session.route!, signal, session.tried)
      const attempt = this.#started(session, statement, reached)
      if (attempt !== undefined) return attempt
    }
  }

  /**
   * What `#reach` returned: a target, where the statement starts; or `undefined` when the
   * statement was re-planned (for a new primary, or without the replica that could not be
   * reached), to be reached again.
   */
  #started(
    session: Session,
    statement: Statement,
    reached: Target | NodeRuntime | typeof REPLANNED,
  ): Attempt | undefined {
    if (reached === REPLANNED) return undefined
    if (reached instanceof NodeRuntime) {
      this.#retryWithout(session, reached, statement)
      return undefined
    }
    return this.#start(session, statement, reached)
  }

  /**
   * Starts the statement on `target`: comment, span, accounting, read timeout; it becomes the
   * session's running statement (what a cancel reaches) unless `session` is `undefined`.
   */
  #start(
    session: Session | undefined,
    statement: Statement,
    target: Target,
    nowMs?: number,
    into?: Mutable<Attempt>,
  ): Attempt {
    const sent = this.#decorate(statement.query, target)
    const span = this.#span(target, sent)
    if (session !== undefined) session.running = target
    const started = this.#o.monitor.started(target.node, target.connection, nowMs)
    const ms = statement.readTimeoutMs
    const timer = ms === undefined || !target.transient ? undefined : this.#readTimeout(target, ms)
    if (into === undefined) return { target, sent, span, started, timer }
    // A read job is its own attempt: nothing made per statement.
    into.sent = sent
    into.span = span
    into.started = started
    into.timer = timer
    return into
  }

  /**
   * Abandons the read on `target` after `ms`: a hard bound the caller asked for. The read fails at
   * once and its connection is closed. Closing it does not stop the statement on the server, which
   * runs on until it next writes to the socket (a long scan or a sleep, to their end): it is
   * cancelled there as well (best effort: from a control connection, as a hedge's loser is; a
   * failed cancel changes nothing here). The timer is cleared before the connection can go back
   * to its pool, so the cancel is sent by the session id of this statement's own session. (On
   * PostgreSQL, a backend that ended between the close and the cancel could in theory have its
   * pid reused by a new one at that instant.)
   */
  #readTimeout(target: Target, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const { node, connection } = target
      const error = new ReadTimeoutError(
        `a read on node "${node.name}" ran longer than its ${ms} ms read timeout and was abandoned`,
        node.name,
      )
      // Whether the cancel lands changes nothing here: the connection is closed either way.
      cancelStatement(this.#o.engine, node, connection, error)
      if (connection.abandon !== undefined) connection.abandon(error)
      else connection.destroy()
    }, ms)
    timer.unref()
    return timer
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
  ): Promise<Target | NodeRuntime | typeof REPLANNED> {
    const o = this.#o
    if (route.kind === 'transaction') {
      const transaction = session.transaction!
      return this.#report(statement, {
        node: transaction.node,
        connection: transaction.connection,
        transient: false,
        reason: route.reason,
        waitedMs: undefined,
        leaveFallback: undefined,
      })
    }
    if (route.kind === 'primary') return this.#primary(session, statement, route, signal, true)
    const node = this.#select(route.candidates, o.now())
    if (node === undefined) {
      const reason = tried === undefined ? 'no-replica' : 'retry'
      return this.#primary(
        session,
        statement,
        { kind: 'primary', reason, fallback: true },
        signal,
        false,
      )
    }
    let connection: PhysicalConnection
    try {
      connection = await node.pool.acquire(this.#acquireSignal(node, signal))
    } catch (error) {
      if (this.#unreachable(node, error, statement, signal)) return node
      throw annotateNodeError(error, node.name)
    }
    if (o.onReserveConnection !== undefined) await reserved(o.onReserveConnection, node, connection)
    const reason =
      route.kind === 'replica' ? route.reason : tried === undefined ? 'causal-waited' : 'retry'
    let waitedMs: number | undefined
    if (route.kind === 'wait') {
      // A causal read: wait for the replica to apply the scope's writes, at most causalWaitTimeoutMs.
      const started = o.now()
      let caughtUp: boolean
      // Registered as running: a rescue abandons a wait on a node found hung, like a statement.
      node.running.add(connection)
      try {
        caughtUp = await o.engine.waitForPosition(
          connection,
          route.position,
          o.config.causalWaitTimeoutMs,
          signal,
        )
        node.running.delete(connection)
      } catch (error) {
        node.running.delete(connection)
        if (o.engine.isConnectionError(error)) connection.destroy()
        else connection.release()
        if (this.#unreachable(node, error, statement, signal)) return node
        throw annotateNodeError(error, node.name)
      }
      waitedMs = o.now() - started
      o.statistics.recordCausalWait(waitedMs)
      if (!caughtUp) {
        o.planner.waitTimedOut(node, route.position, o.now())
        connection.release()
        const timedOut: PrimaryRoute = {
          kind: 'primary',
          reason: 'causal-timeout',
          fallback: false,
          waitedMs,
        }
        return this.#primary(session, statement, timedOut, signal, false)
      }
      o.planner.learnPosition(node, route.position)
    }
    return this.#report(statement, replicaTarget(node, connection, reason, waitedMs))
  }

  /**
   * The session's primary connection as the statement's target, checked out here on first use
   * (`#run` calls this directly for a primary route: no frame between). A `fallback` route takes
   * a slot of `maxPrimaryReads`. With `redirect`, a statement the primary refused follows a role
   * change (`REPLANNED`: `#redirect`) instead of failing.
   */
  async #primary(
    session: Session,
    statement: Statement,
    route: PrimaryRoute,
    signal: AbortSignal | undefined,
    redirect: boolean,
  ): Promise<Target | typeof REPLANNED> {
    const o = this.#o
    let connection = session.heldPrimary()
    // A session bound to a former primary holds a connection there: that node runs the statement
    // (accounting, the route report, and a cancel must reach it, not the new primary).
    const node = connection === undefined ? o.registry.primary : session.primaryNode!
    const leaveFallback =
      route.fallback && o.registry.replicas.length > 0 ? o.planner.enterFallbackRead() : undefined
    if (connection === undefined) {
      try {
        connection = await node.pool.acquire(signal)
        const holding = session.holdPrimary(node, connection)
        if (holding !== undefined) await holding
      } catch (error) {
        leaveFallback?.()
        const annotated = annotateNodeError(error, node.name)
        o.monitor.unreachable(node, annotated)
        if (redirect && (await this.#redirect(session, statement, node, annotated, true))) {
          return REPLANNED
        }
        throw annotated
      }
    }
    const { reason, waitedMs, detail } = route
    const target = { node, connection, transient: false, reason, waitedMs, leaveFallback }
    return this.#report(statement, target, detail)
  }

  /**
   * The signal of a checkout on `node`. Opening a connection can hang on a hung node: a checkout
   * that may get a new connection (the pool has no idle one: it opens one, or the checkout waits
   * in the pool's queue and may be handed one opened later) also ends when the node is found
   * dead. No cost when an idle connection is at hand, the common case.
   */
  #acquireSignal(node: NodeRuntime, signal: AbortSignal | undefined): AbortSignal | undefined {
    const rescue = node.pool.idleNone() ? node.rescue.signal : undefined
    return rescue === undefined
      ? signal
      : signal === undefined
        ? rescue
        : AbortSignal.any([signal, rescue])
  }

  #select(candidates: readonly ReplicaCandidate[], nowMs: number): NodeRuntime | undefined {
    if (candidates.length === 0) return undefined
    const context = this.#selection
    context.nowMs = nowMs
    const picked = this.#o.selector.select(candidates, context as SelectionContext)
    return picked === undefined ? undefined : this.#o.registry.replicaByIndex(picked.index)
  }

  /** Counts the decision and tells `onRoute` (the comment and the trace read the target). */
  #report(statement: Statement, target: Target, detail?: string): Target {
    this.#o.statistics.route(target, statement.query.sql, detail)
    return target
  }

  #succeeded(target: Target, started: number, statement: Statement): void {
    this.#o.monitor.succeeded(target.node, target.connection, started)
    this.#o.statistics.metrics?.statement(target, statement.query.sql, this.#o.now() - started) // Metrics
    target.leaveFallback?.()
    if (target.transient) releaseAfterCancel(target.connection, target.connection.killed)
  }

  /**
   * Accounts a failed statement and ends its connection's use: the one place for the rule that a
   * session this library killed on request says nothing about the node's health. Then either
   * re-plans the statement without the node (the retry policy allows it) or throws the error
   * with the node's name.
   */
  async #failed(
    session: Session,
    target: Target,
    error: unknown,
    started: number,
    rowsDelivered: boolean,
    statement: Statement,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const o = this.#o
    const killed = target.connection.killed
    const connectionLevel =
      !killed && (error instanceof NodeUnreachableError || o.engine.isConnectionError(error))
    o.monitor.failed(target.node, target.connection, error, started, connectionLevel)
    o.statistics.metrics?.statement(target, statement.query.sql, o.now() - started, error) // Metrics
    target.leaveFallback?.()
    if (target.transient) {
      releaseAfterCancel(
        target.connection,
        connectionLevel || killed || error instanceof ReadTimeoutError,
      )
    }
    const retry = canRetry(
      { connectionLevel, replicaRead: target.transient, rowsDelivered },
      { retryReads: o.config.retryReads, hint: statement.hint, signal },
    )
    if (retry) {
      this.#retryWithout(session, target.node, statement)
      return
    }
    // A statement the caller gave up on (its signal aborted, its session killed on request) is
    // over: never re-run on a new primary, whatever its error says of the node.
    if (
      !target.transient &&
      !killed &&
      signal?.aborted !== true &&
      (await this.#redirect(session, statement, target.node, error, false))
    ) {
      return
    }
    throw annotateNodeError(error, target.node.name)
  }

  /**
   * The primary refused a statement before running it: read-only (it was demoted or fenced), or
   * no connection could be made (`connecting`). Nothing ran, so it runs on the node that took
   * over, once exactly one does (the topology's call, at most `topology.writeWaitMs`): re-planned
   * with reason `'primary-changed'`. A statement whose connection died after it was sent has an
   * unknown outcome and is never re-run; a session bound to the old primary (a transaction,
   * session state) cannot move: `PrimaryChangedError`. Returns whether it was re-planned.
   */
  async #redirect(
    session: Session,
    statement: Statement,
    former: NodeRuntime,
    error: unknown,
    connecting: boolean,
  ): Promise<boolean> {
    const o = this.#o
    const route = session.route
    if (!o.topology.dynamic) return false
    // A read is safe to run again whatever happened to it; a write only if it never ran.
    const lost =
      (connecting || statement.classification.read) &&
      (error instanceof NodeUnreachableError ||
        (o.engine.isConnectError?.(error) ?? o.engine.isConnectionError(error)))
    const refused = o.engine.isWriteRefusal(error) || lost
    if (!refused) return false
    if (session.bound || route?.kind === 'transaction') {
      throw new PrimaryChangedError(
        `the primary "${former.name}" stopped taking writes under an open transaction or a session bound to it: retry the whole unit of work, it will run on the new primary`,
        former.name,
        { cause: error },
      )
    }
    await o.topology.awaitNewPrimary(former, error)
    session.dropPrimary()
    session.route = {
      kind: 'primary',
      reason: 'primary-changed',
      detail: route?.kind === 'primary' ? route.detail : undefined,
      fallback: route?.kind === 'primary' ? route.fallback : false,
    }
    return true
  }

  /**
   * Reaching a replica failed (checkout, causal wait): accounted; `true` when to re-plan. A pool
   * wait timeout (every connection busy) is not held against the node, but the read never ran, so
   * the retry policy may still run it elsewhere.
   */
  #unreachable(
    node: NodeRuntime,
    error: unknown,
    statement: Statement,
    signal: AbortSignal | undefined,
  ): boolean {
    const o = this.#o
    const connectionLevel = o.monitor.unreachable(node, error)
    return canRetry(
      {
        connectionLevel,
        poolExhausted: error instanceof PoolWaitTimeoutError,
        replicaRead: true,
        rowsDelivered: false,
      },
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
  #span(target: Target, query: CompiledQuery): StatementSpan | undefined {
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
      causalWaitMs: target.waitedMs,
      sql: query.sql,
    })
  }
}

type ReplicaRoute = Extract<Route, { readonly kind: 'replica' }>
type WaitRoute = Extract<Route, { readonly kind: 'wait' }>
type PrimaryRoute = Extract<Route, { readonly kind: 'primary' }>

/** A replica connection checked out for one statement. */
function replicaTarget(
  node: NodeRuntime,
  connection: PhysicalConnection,
  reason: RouteReason,
  waitedMs?: number,
): Target {
  return { node, connection, transient: true, reason, waitedMs, leaveFallback: undefined }
}

function resultOf<R>(outcome: NodeQueryOutcome<R>): QueryResult<R> {
  return outcome.result
}

/** How a read carried out with callbacks failed: at the checkout (no target) or on its target. */
class ReadFailure {
  constructor(
    readonly error: unknown,
    readonly target: Target | undefined = undefined,
    readonly started = 0,
    /** Set when a causal wait timed out (after this long): the primary answers instead. */
    readonly waitedMs: number | undefined = undefined,
  ) {}
}

/** Sends a started attempt's statement: in its span (active while the driver runs), when traced. */
function send<R>(attempt: Attempt, signal: AbortSignal | undefined): Promise<NodeQueryOutcome<R>> {
  const { target, span, sent } = attempt
  return span === undefined
    ? target.connection.execute<R>(sent, signal)
    : span.run(() => target.connection.execute<R>(sent, signal))
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/**
 * One plain read carried out with callbacks (`#readInline`): its target, its attempt and the
 * state between its callbacks, which are made once per job. A session keeps one and reuses it
 * for each read while it is idle, so such a read makes no object or closure of its own.
 */
interface ReadJob extends Mutable<Target>, Mutable<Omit<Attempt, 'target'>> {
  busy: boolean
  readonly session: Session
  route: ReplicaRoute | WaitRoute | undefined
  /** The read's statement, copied into this record of the job's own. */
  readonly statement: StatementDraft
  signal: AbortSignal | undefined
  target: ReadJob
  /** Clock reading when the causal wait was sent. */
  waitStartedAt: number
  resolve: ((settled: unknown) => void) | undefined
  /** The executor of the read's promise: starts the checkout. */
  begin: (resolve: (settled: unknown) => void) => void
  onCheckout: (error: unknown, connection?: PhysicalConnection) => void
  onWaited: (error: unknown, outcome?: NodeQueryOutcome<unknown>) => void
  onResult: (error: unknown, outcome?: NodeQueryOutcome<unknown>) => void
}

/** The read is over: the job forgets it (nothing of it stays reachable) and is idle again. */
function releaseJob(job: ReadJob): void {
  const idle = job as unknown as { node: undefined; connection: undefined }
  idle.node = undefined
  idle.connection = undefined
  job.route = undefined
  job.statement.query = undefined as never
  job.statement.hint = undefined
  job.signal = undefined
  ;(job as unknown as { sent: undefined }).sent = undefined
  job.span = undefined
  job.timer = undefined
  job.waitedMs = undefined
  job.busy = false
}
