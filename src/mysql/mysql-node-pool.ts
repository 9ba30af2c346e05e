import { performance } from 'node:perf_hooks'
import type { CompiledQuery, QueryResult } from 'kysely'
import { CompiledQuery as Query } from 'kysely'
import { parsePosition, type ReplicationPosition } from '../consistency/position.js'
import { ConnectionSetup, resolvePoolSource } from '../core/connection-setup.js'
import type {
  NodeEndpoint,
  NodeInfo,
  NodeQueryOutcome,
  PhysicalConnection,
  PoolCounts,
} from '../core/contracts/engine.js'
import { ConnectionSetupError, PoolWaitTimeoutError } from '../core/contracts/errors.js'
import type {
  CheckoutOwner,
  LifecycleConnection,
  LifecycleNodePool,
  LifecycleOwner,
} from '../core/contracts/lifecycle.js'
import type { NodePoolSetup, NodeSource } from '../core/contracts/node-setup.js'
import { openControlConnection } from '../core/control-connection.js'
import { InFlight } from '../core/in-flight.js'
import { destroySocket, destroySocketAfter, endPool, ignoreError } from '../core/pool-shutdown.js'
import {
  isResultHeader,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlStandaloneConnection,
  trackedGtid,
  unwrapMysqlPool,
} from './mysql-pool-types.js'

/**
 * mysql2 pool internals, read (never written) for statistics, control connections and a bounded
 * end; absent fields mean "unknown". `_allConnections` holds every connection of the pool, those
 * still connecting included (a `RingQueue` in mysql2 3.x, an array before).
 */
interface MysqlPoolInternals {
  readonly _allConnections?: ConnectionList
  readonly _freeConnections?: { readonly length: number }
  readonly _connectionQueue?: { readonly length: number }
  readonly config?: {
    readonly connectionLimit?: number
    /** mysql2 sends `COM_RESET_CONNECTION` on every release (it undoes the session set-up). */
    readonly resetOnRelease?: boolean
    /** The `ConnectionConfig` every pool connection is made from. */
    readonly connectionConfig?: {
      readonly host?: string
      readonly port?: number
      readonly database?: string
      /** ms; mysql2's default is 10 000, 0 means none. */
      readonly connectTimeout?: number
    }
  }
}

type ConnectionList = {
  readonly length: number
  get?(index: number): MysqlPoolConnection | undefined
  toArray?(): MysqlPoolConnection[]
}

/** The connections of a mysql2 pool list, whatever its type. */
function connectionsOf(list: ConnectionList | undefined): MysqlPoolConnection[] {
  if (list === undefined) return []
  if (Array.isArray(list)) return [...list]
  if (typeof list.toArray === 'function') return list.toArray()
  const connections: MysqlPoolConnection[] = []
  for (let i = 0; i < list.length; i++) {
    const connection = list.get?.(i)
    if (connection !== undefined) connections.push(connection)
  }
  return connections
}

/** How long a library-created pool waits for a new connection, unless `connection` says. */
const DEFAULT_CONNECT_TIMEOUT_MS = 3000

/** mysql2's refusals of a checkout by a full pool (`lib/base/pool.js`): the node is not at fault. */
const NO_CONNECTIONS_MESSAGE = 'No connections available.'
const QUEUE_LIMIT_MESSAGE = 'Queue limit reached.'

/** How long a politely closed connection (`COM_QUIT`) may take to close before its socket is destroyed. */
const QUIT_GRACE_MS = 1000

/**
 * Creates a mysql2 pool from `{ connection, poolSize, idleTimeoutMs }` (mysql2 is loaded only
 * then). Idle connections are closed after `idleTimeoutMs` (mysql2's `idleTimeout`; mysql2 only
 * runs its idle reaper when `maxIdle < connectionLimit`, and closes idle connections beyond
 * `maxIdle` at once, so `maxIdle` is one less than the pool size). A new connection that is not
 * made within 3 s fails (`connectTimeout`, unless `connection` sets it; mysql2's own default is
 * 10 s).
 */
export async function createMysqlPool(node: NodeSource): Promise<MysqlPool> {
  const { createPool } = (await import('mysql2')) as unknown as {
    createPool(options: Record<string, unknown>): MysqlPool
  }
  const limit = node.poolSize ?? 10
  const connection = node.connection as Record<string, unknown>
  return createPool({
    connectTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
    ...connection,
    connectionLimit: limit,
    maxIdle: Math.max(1, limit - 1),
    idleTimeout: node.idleTimeoutMs ?? 60_000,
  })
}

/** mysql2's `Connection` class, for connections outside any pool. */
async function loadConnectionClass(): Promise<
  new (options: {
    config: object
  }) => MysqlStandaloneConnection
> {
  const mysql2 = (await import('mysql2')) as unknown as {
    Connection?: new (options: { config: object }) => MysqlStandaloneConnection
    default?: { Connection?: new (options: { config: object }) => MysqlStandaloneConnection }
  }
  const Connection = mysql2.Connection ?? mysql2.default?.Connection
  if (Connection === undefined) throw new Error("the 'mysql2' module has no Connection export")
  return Connection
}

/**
 * One node's mysql2 pool, seen through the engine-independent {@link NodePool} interface. Every
 * physical connection is set up once, the first time the pool hands it out (mysql2 has no async
 * connection hook): engine detection, GTID session tracking on the primary, read-only sessions
 * on replicas, then the user's `onCreateConnection`.
 *
 * A pool made with `resetOnRelease: true` sends `COM_RESET_CONNECTION` on every release, which
 * undoes that set-up: the engine's part (not the user's hook) is then applied again within the
 * reset, before the connection is free again, so a checkout costs no extra round trip.
 */
export class MysqlNodePool implements LifecycleNodePool {
  readonly #source: unknown
  readonly #setup: NodePoolSetup
  readonly #setUpSession: (
    connection: MysqlPhysicalConnection,
    raw: MysqlPoolConnection | MysqlStandaloneConnection,
  ) => Promise<void>
  /** When each physical connection was first handed out. */
  readonly #connections: ConnectionSetup
  #pool: MysqlPool | undefined
  #resetsOnRelease = false

  constructor(options: {
    /** The configured pool, or a factory of one. */
    readonly source: unknown
    readonly setup: NodePoolSetup
    /** The engine's own set-up of a new session (before the user's hook). */
    readonly setUpSession: (
      connection: MysqlPhysicalConnection,
      raw: MysqlPoolConnection | MysqlStandaloneConnection,
    ) => Promise<void>
  }) {
    this.#source = options.source
    this.#setup = options.setup
    this.#connections = new ConnectionSetup(options.setup)
    this.#setUpSession = options.setUpSession
  }

  async init(): Promise<void> {
    if (this.#pool !== undefined) return
    const source = await resolvePoolSource(this.#source, this.#setup.node.name)
    const pool = unwrapMysqlPool(source)
    if (pool === undefined) {
      throw new TypeError(
        `node "${this.#setup.node.name}": the pool factory did not return a mysql2 pool (createPool() from 'mysql2' or 'mysql2/promise')`,
      )
    }
    this.#pool = pool
    this.#resetsOnRelease = (pool as MysqlPoolInternals).config?.resetOnRelease === true
  }

  endpoint(): NodeEndpoint | undefined {
    const c = (this.#pool as MysqlPoolInternals | undefined)?.config?.connectionConfig
    return c === undefined ? undefined : { host: c.host, port: c.port, database: c.database }
  }

  /**
   * How long the pool waits for a new connection (mysql2 `connectTimeout`, 10 000 ms unless set),
   * or `undefined` when it waits without limit (`connectTimeout: 0`) or cannot tell.
   */
  connectTimeoutMs(): number | undefined {
    const c = (this.#pool as MysqlPoolInternals | undefined)?.config?.connectionConfig
    const ms = c?.connectTimeout
    return typeof ms === 'number' && ms > 0 ? ms : undefined
  }

  counts(): PoolCounts | undefined {
    const p = this.#pool as MysqlPoolInternals | undefined
    if (p?._allConnections === undefined || p._freeConnections === undefined) return undefined
    return {
      total: p._allConnections.length,
      idle: p._freeConnections.length,
      waiting: p._connectionQueue?.length ?? 0,
      limit: p.config?.connectionLimit,
    }
  }

  /** Asked before every replica checkout: read off the pool, no object made. */
  willOpen(): boolean {
    const p = this.#pool as MysqlPoolInternals | undefined
    const all = p?._allConnections
    const free = p?._freeConnections
    if (all === undefined || free === undefined || free.length > 0) return false
    const limit = p!.config?.connectionLimit
    return limit === undefined || all.length < limit
  }

  idleNone(): boolean {
    const free = (this.#pool as MysqlPoolInternals | undefined)?._freeConnections
    return free !== undefined && free.length === 0
  }

  acquire(signal?: AbortSignal): Promise<LifecycleConnection>
  acquire(
    signal: AbortSignal | undefined,
    owner: CheckoutOwner,
    sinceMs: number,
  ): Promise<PhysicalConnection>
  acquire(
    signal?: AbortSignal,
    owner?: CheckoutOwner,
    sinceMs = 0,
  ): Promise<LifecycleConnection | PhysicalConnection> {
    // One promise per checkout: set-up and the owner's accounting run in mysql2's callback.
    return new Promise<LifecycleConnection | PhysicalConnection>((resolve, reject) => {
      this.#checkOut(signal, owner, sinceMs, (error, connection) => {
        if (connection === undefined) reject(error)
        else resolve(connection)
      })
    })
  }

  checkout(
    signal: AbortSignal | undefined,
    owner: CheckoutOwner,
    sinceMs: number,
    callback: (error: unknown, connection?: PhysicalConnection) => void,
  ): void {
    this.#checkOut(signal, owner, sinceMs, callback)
  }

  /** A checkout, told to `done` once: the connection (set up, through `owner`), or the error. */
  #checkOut(
    signal: AbortSignal | undefined,
    owner: CheckoutOwner | undefined,
    sinceMs: number,
    done: (error: unknown, connection?: LifecycleConnection | PhysicalConnection) => void,
  ): void {
    const pool = this.#pool
    if (pool === undefined) {
      const error = new Error(
        `node "${this.#setup.node.name}": its pool is not open (used before init, or after db.destroy())`,
      )
      done(owner === undefined ? error : owner.checkoutFailed(error))
      return
    }
    if (signal === undefined) {
      // A request object from the free list carries the checkout: no closure per checkout.
      const request = this.#requests.pop() ?? this.#newRequest()
      request.done = done
      request.owner = owner
      request.sinceMs = sinceMs
      pool.getConnection(request.handOut)
      return
    }
    if (signal.aborted) {
      done(owner === undefined ? signal.reason : owner.checkoutFailed(signal.reason))
      return
    }
    let settled = false
    const onAbort = () => {
      if (settled) return
      settled = true
      done(owner === undefined ? signal.reason : owner.checkoutFailed(signal.reason))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    pool.getConnection((error, raw) => {
      signal.removeEventListener('abort', onAbort)
      if (settled) {
        // Aborted while waiting: hand the connection straight back.
        if (!error) raw.release()
        return
      }
      settled = true
      this.#handOut(error, raw, done, owner, sinceMs, signal)
    })
  }

  /**
   * mysql2's refusal of a checkout by a full pool (`waitForConnections: false`, or its queue at
   * `queueLimit`), which says nothing of the node: as a {@link PoolWaitTimeoutError}, so the read
   * runs elsewhere and the node keeps its state. `undefined` for any other error.
   */
  #refusal(error: unknown): PoolWaitTimeoutError | undefined {
    const message = (error as { message?: unknown } | null)?.message
    if (message !== NO_CONNECTIONS_MESSAGE && message !== QUEUE_LIMIT_MESSAGE) return undefined
    const name = this.#setup.node.name
    const config = (this.#pool as { config?: { connectionLimit?: number; queueLimit?: number } })
      .config
    const all = config?.connectionLimit === undefined ? 'all' : `all ${config.connectionLimit}`
    const why =
      message === NO_CONNECTIONS_MESSAGE
        ? `${all} connections were busy and the pool does not queue checkouts (waitForConnections: false)`
        : `${all} connections were busy and ${config?.queueLimit ?? 'queueLimit'} checkouts were already waiting (queueLimit)`
    return new PoolWaitTimeoutError(
      `node "${name}": its pool refused a checkout: ${why}. The node answers and is not counted as failed; raise the pool's connectionLimit (poolSize) or queueLimit, or run fewer statements on it at once`,
      name,
      { cause: error },
    )
  }

  /** Checkout requests not in use (see {@link #checkOut}). */
  readonly #requests: CheckoutRequest[] = []

  #newRequest(): CheckoutRequest {
    const request: CheckoutRequest = {
      done: undefined,
      owner: undefined,
      sinceMs: 0,
      handOut: (error, raw) => {
        const { done, owner, sinceMs } = request
        request.done = undefined
        request.owner = undefined
        if (this.#requests.length < MAX_IDLE_REQUESTS) this.#requests.push(request)
        this.#handOut(error, raw, done!, owner, sinceMs)
      },
    }
    return request
  }

  /** Settles a checkout with what mysql2 handed out: the set-up connection, through `owner`. */
  #handOut(
    error: unknown,
    raw: MysqlPoolConnection,
    done: (error: unknown, connection?: LifecycleConnection | PhysicalConnection) => void,
    owner: CheckoutOwner | undefined,
    sinceMs: number,
    signal?: AbortSignal,
  ): void {
    if (error) {
      const failure = this.#refusal(error) ?? error
      done(owner === undefined ? failure : owner.checkoutFailed(failure))
      return
    }
    let prepared: LifecycleConnection | Promise<LifecycleConnection>
    try {
      prepared = this.#prepare(raw)
    } catch (prepareError) {
      done(owner === undefined ? prepareError : owner.checkoutFailed(prepareError))
      return
    }
    if (!(prepared instanceof Promise)) {
      if (owner === undefined) done(undefined, prepared)
      else settleWith(owner.checkedOut(prepared, sinceMs, signal), done)
      return
    }
    prepared.then(
      (connection) => {
        if (owner === undefined) done(undefined, connection)
        else settleWith(owner.checkedOut(connection, sinceMs, signal), done)
      },
      (setUpError: unknown) =>
        done(owner === undefined ? setUpError : owner.checkoutFailed(setUpError)),
    )
  }

  /**
   * A new connection to the node outside the pool (mysql2 `Connection` made from the pool's
   * connection config, `connectTimeout` = `connectTimeoutMs`), set up like pool connections
   * without the user's hook; `release()` and `destroy()` close it.
   */
  async openControl(connectTimeoutMs: number): Promise<LifecycleConnection> {
    const node = this.#setup.node
    const config = (this.#pool as MysqlPoolInternals | undefined)?.config?.connectionConfig
    if (config === undefined) {
      throw new Error(
        `node "${node.name}": ${this.#pool === undefined ? 'its pool is not open (used before init, or after db.destroy())' : 'the pool has no mysql2 connection config'}: cannot open a control connection`,
      )
    }
    const Connection = await loadConnectionClass()
    // A copy, as mysql2 makes one for each pool connection (its commands may change it).
    const own = Object.create(
      Object.getPrototypeOf(config),
      Object.getOwnPropertyDescriptors(config),
    ) as Record<string, unknown>
    own.connectTimeout = connectTimeoutMs
    own.pool = undefined
    let raw: MysqlStandaloneConnection | undefined
    let connection: MysqlPhysicalConnection | undefined
    return openControlConnection({
      node,
      timeoutMs: connectTimeoutMs,
      isConnectionError: this.#setup.isConnectionError,
      connect: async () => {
        const made = new Connection({ config: own })
        raw = made
        made.on?.('error', ignoreError)
        await new Promise<void>((resolve, reject) => {
          made.connect((error) => (error ? reject(error) : resolve()))
        })
        connection = new MysqlPhysicalConnection(made, node, performance.now(), {
          trackPositions: this.#setup.trackPositions,
          control: true,
        })
        return connection
      },
      setUp: (made) => this.#setUpSession(made, raw!),
      discard: () => {
        if (connection !== undefined) connection.destroy()
        else if (raw !== undefined) closeHard(raw)
      },
    })
  }

  /**
   * Ends the pool: `COM_QUIT` on every connection (after the statement it runs), and waits up to
   * `graceMs` for them to close; then destroys the sockets left (a hung server never answers),
   * connection attempts in progress included. Callers waiting for a connection get mysql2's
   * `Pool is closed.`.
   */
  async end(graceMs = 1000): Promise<void> {
    const pool = this.#pool
    if (pool === undefined) return
    this.#pool = undefined
    await endPool({
      graceMs,
      connections: connectionsOf((pool as MysqlPoolInternals)._allConnections),
      socketOf: (raw) => raw.stream,
      end: () =>
        new Promise<void>((resolve, reject) => {
          pool.end((error) => (error ? reject(error) : resolve()))
        }),
      // With an error, mysql2 fails what the connection still runs or waits for.
      forcedError: () =>
        new Error(
          `node "${this.#setup.node.name}": the pool was ended and its connection closed after ${graceMs} ms`,
        ),
    })
  }

  #prepare(raw: MysqlPoolConnection): LifecycleConnection | Promise<LifecycleConnection> {
    // One connection object per physical connection, reused for every checkout (hot path).
    const known = this.#connections.known(raw) as MysqlPhysicalConnection | undefined
    if (known !== undefined) {
      known.checkedOut()
      // Reset on release without the set-up applied again (a mysql2 that resets another way).
      if (known.sessionReset) return this.#setUpAgain(known, raw)
      return known
    }
    return this.#setUpNew(raw)
  }

  async #setUpNew(raw: MysqlPoolConnection): Promise<LifecycleConnection> {
    const connection = new MysqlPhysicalConnection(raw, this.#setup.node, performance.now(), {
      trackPositions: this.#setup.trackPositions,
      resetsOnRelease: this.#resetsOnRelease,
    })
    await this.#connections.setUp(
      raw,
      connection,
      () => this.#setUpSession(connection, raw),
      () => connection.destroy(),
    )
    if (this.#resetsOnRelease) this.#setUpAfterReset(raw, connection)
    return connection
  }

  /**
   * Makes mysql2's `COM_RESET_CONNECTION` on release (`resetOnRelease`) apply the engine's session
   * set-up again before the connection is free again. A set-up that fails fails the reset: mysql2
   * then destroys the connection.
   */
  #setUpAfterReset(raw: MysqlPoolConnection, connection: MysqlPhysicalConnection): void {
    const resettable = raw as MysqlPoolConnection & {
      reset?: (callback: (error: unknown) => void) => unknown
    }
    const reset = resettable.reset
    if (typeof reset !== 'function') return
    resettable.reset = (callback) =>
      reset.call(raw, (error: unknown) => {
        if (error) {
          callback(error)
          return
        }
        this.#setUpSession(connection, raw).then(
          () => {
            connection.sessionReset = false
            callback(null)
          },
          (setUpError: unknown) => callback(setUpError),
        )
      })
  }

  async #setUpAgain(
    connection: MysqlPhysicalConnection,
    raw: MysqlPoolConnection,
  ): Promise<LifecycleConnection> {
    try {
      await this.#setUpSession(connection, raw)
    } catch (error) {
      // Not handed out by this checkout: its owner has nothing to count.
      connection.owner = undefined
      connection.destroy()
      const node = this.#setup.node.name
      if (this.#setup.isConnectionError(error)) throw error
      throw new ConnectionSetupError(
        `setting up a reset connection on node "${node}" failed: ${error instanceof Error ? error.message : String(error)}`,
        node,
        { cause: error },
      )
    }
    connection.sessionReset = false
    return connection
  }
}

/** Closes a mysql2 connection now: socket destroyed, nothing sent, nothing left to throw. */
function closeHard(raw: MysqlPoolConnection | MysqlStandaloneConnection, error?: Error): void {
  raw.on?.('error', ignoreError)
  try {
    // A pool connection also leaves its pool here (mysql2 `_removeFromPool`).
    raw.destroy()
  } catch {
    // already gone
  }
  // mysql2's destroy() only half-closes: a hung server would keep the socket open. With an error,
  // mysql2 fails what the connection still runs or waits for.
  destroySocket(raw.stream, error)
}

/** A mysql2 pool connection, with results mapped exactly as Kysely's `MysqlDialect` maps them. */
export class MysqlPhysicalConnection implements LifecycleConnection {
  readonly #raw: MysqlPoolConnection | MysqlStandaloneConnection
  readonly node: NodeInfo
  readonly createdAtMs: number
  isNew = true
  owner: LifecycleOwner | undefined
  killed = false
  runningSlot: number | undefined = undefined
  checkedOutAtMs: number | undefined = undefined
  cancelling: Promise<void> | undefined = undefined
  /**
   * The pool reset the session on release (`resetOnRelease`) and its set-up is not applied again
   * yet: the next checkout applies it.
   */
  sessionReset = false
  #done = false
  #inFlight = new InFlight()

  readonly #trackPositions: boolean
  /** Outside any pool: `release()` closes it too. */
  readonly #control: boolean
  readonly #resetsOnRelease: boolean

  constructor(
    raw: MysqlPoolConnection | MysqlStandaloneConnection,
    node: NodeInfo,
    createdAtMs: number,
    options: {
      readonly trackPositions?: boolean
      readonly control?: boolean
      readonly resetsOnRelease?: boolean
    } = {},
  ) {
    this.#raw = raw
    this.node = node
    this.createdAtMs = createdAtMs
    this.#trackPositions = options.trackPositions ?? true
    this.#control = options.control ?? false
    this.#resetsOnRelease = options.resetsOnRelease ?? false
  }

  /** Handed out again by the pool. */
  checkedOut(): void {
    this.#done = false
    this.isNew = false
    this.killed = false
  }

  get sessionId(): number | undefined {
    return this.#raw.threadId ?? undefined
  }

  execute<R>(query: CompiledQuery): Promise<NodeQueryOutcome<R>> {
    return new Promise((resolve, reject) => {
      this.send<R>(query, (error, outcome) => {
        if (outcome === undefined) reject(error)
        else resolve(outcome)
      })
    })
  }

  send<R>(
    query: CompiledQuery,
    callback: (error: unknown, outcome?: NodeQueryOutcome<R>) => void,
  ): void {
    if (this.#sending !== undefined) {
      // Another statement of this connection is in flight (mysql2 queues it): callbacks of its own.
      this.#sendAlongside(query, callback)
      return
    }
    this.#sending = callback as (error: unknown, outcome?: NodeQueryOutcome<unknown>) => void
    if (!this.#inFlight.start(this.#onFail)) return
    this.#raw.query(query.sql, query.parameters, this.#onQuery)
  }

  /** The statement in flight through {@link send}'s own callbacks, told once. */
  #sending: ((error: unknown, outcome?: NodeQueryOutcome<unknown>) => void) | undefined

  /** `abandon` fails the statement at once; mysql2's late callback then finds nothing to tell. */
  readonly #onFail = (reason: Error): void => {
    const callback = this.#sending
    this.#sending = undefined
    callback?.(reason)
  }

  /** mysql2's answer to the statement sent with {@link send}: made once per connection. */
  readonly #onQuery = (error: unknown, result: unknown): void => {
    this.#inFlight.settled(this.#onFail)
    const callback = this.#sending
    if (callback === undefined) return
    this.#sending = undefined
    answer(callback, error, result, this.#trackPositions)
  }

  /** {@link send} beside a statement already in flight on this connection. */
  #sendAlongside<R>(
    query: CompiledQuery,
    callback: (error: unknown, outcome?: NodeQueryOutcome<R>) => void,
  ): void {
    const inFlight = this.#inFlight
    let done = false
    const fail = (reason: Error) => {
      if (done) return
      done = true
      callback(reason)
    }
    if (!inFlight.start(fail)) return
    this.#raw.query(query.sql, query.parameters, (error, result) => {
      inFlight.settled(fail)
      if (done) return
      done = true
      answer(callback, error, result, this.#trackPositions)
    })
  }

  async *stream<R>(
    query: CompiledQuery,
    _chunkSize: number,
  ): AsyncIterableIterator<QueryResult<R>> {
    const inFlight = this.#inFlight
    if (inFlight.abandoned !== undefined) throw inFlight.abandoned
    const rows = this.#raw.query(query.sql, query.parameters).stream({ objectMode: true })
    const iterator = rows[Symbol.asyncIterator]()
    let finished = false
    inFlight.streamOpened()
    try {
      for (;;) {
        const step = await inFlight.run(() => iterator.next())
        if (step.done) {
          finished = true
          return
        }
        yield { rows: [step.value as R] }
      }
    } catch (error) {
      finished = true
      // mysql2 ends an early-closed stream with this code; the consumer stopped reading.
      if ((error as { code?: unknown })?.code === 'ERR_STREAM_PREMATURE_CLOSE') return
      throw error
    } finally {
      // The consumer stopped early: close the rows stream, as `for await` would.
      await inFlight.streamEnded(finished ? undefined : async () => iterator.return?.())
    }
  }

  /**
   * Gives up on the running statement: it rejects with `reason` now, and the connection leaves
   * its pool and its socket is destroyed (mysql2 would wait for TCP on a hung server). Nothing
   * when no statement runs or the connection was released.
   */
  abandon(reason: Error): void {
    if (this.#done || !this.#inFlight.abandon(reason)) return
    this.#done = true
    this.owner?.destroyed(this)
    closeHard(this.#raw, new Error(`statement abandoned: ${reason.message}`, { cause: reason }))
  }

  release(): void {
    if (this.#done) return
    this.#done = true
    if (this.#control) {
      this.#quit()
      return
    }
    if (this.owner?.retire(this) === true) {
      closeHard(this.#raw)
      return
    }
    if (this.#resetsOnRelease) this.sessionReset = true
    ;(this.#raw as MysqlPoolConnection).release()
  }

  /** Closes the connection now; a statement still running on it fails (it would wait forever). */
  destroy(): void {
    if (this.#done) return
    this.#done = true
    this.owner?.destroyed(this)
    const closed = new Error(`node "${this.node.name}": the connection was closed`)
    this.#inFlight.abandon(closed)
    closeHard(this.#raw, closed)
  }

  /** Runs SQL for the library's own purposes (setup, probes, waits). */
  async run(sql: string, parameters: ReadonlyArray<unknown> = []): Promise<unknown> {
    return (await this.execute(Query.raw(sql, parameters as unknown[]))).result
  }

  /** Closes a control connection politely (`COM_QUIT`), its socket at the latest after a grace. */
  #quit(): void {
    const raw = this.#raw as MysqlStandaloneConnection
    try {
      raw.end()
    } catch {
      // already closed
    }
    destroySocketAfter(raw.stream, QUIT_GRACE_MS)
  }
}

/** Tells `callback` mysql2's answer to a statement: its error, or its result as Kysely maps it. */
function answer<R>(
  callback: (error: unknown, outcome?: NodeQueryOutcome<R>) => void,
  error: unknown,
  result: unknown,
  trackPositions: boolean,
): void {
  if (error) {
    callback(error)
    return
  }
  let outcome: NodeQueryOutcome<R>
  try {
    outcome = mapResult<R>(result, trackPositions)
  } catch (mapError) {
    callback(mapError)
    return
  }
  callback(undefined, outcome)
}

function mapResult<R>(result: unknown, trackPositions: boolean): NodeQueryOutcome<R> {
  if (!isResultHeader(result)) {
    return { result: { rows: (Array.isArray(result) ? result : []) as R[] } }
  }
  const { insertId, affectedRows, changedRows } = result
  const tracked = trackPositions ? trackedGtid(result) : undefined
  let position: ReplicationPosition | undefined
  if (tracked !== undefined) {
    try {
      position = parsePosition(tracked.kind, tracked.text)
    } catch {
      position = undefined
    }
  }
  return {
    result: {
      insertId: insertId != null && insertId.toString() !== '0' ? BigInt(insertId) : undefined,
      numAffectedRows: affectedRows != null ? BigInt(affectedRows) : undefined,
      numChangedRows: changedRows != null ? BigInt(changedRows) : undefined,
      rows: [],
    },
    position,
  }
}

/** Tells `done` the owner's answer: a connection now, or one (or an error) later. */
function settleWith(
  answer: PhysicalConnection | Promise<PhysicalConnection>,
  done: (error: unknown, connection?: PhysicalConnection) => void,
): void {
  if (!(answer instanceof Promise)) {
    done(undefined, answer)
    return
  }
  answer.then(
    (connection) => done(undefined, connection),
    (error: unknown) => done(error),
  )
}

/** Checkout requests kept for reuse per pool (as many as checkouts ever waited at once, up to this). */
const MAX_IDLE_REQUESTS = 64

/** One checkout waiting for mysql2's callback: its callback is made once per request object. */
interface CheckoutRequest {
  done:
    | ((error: unknown, connection?: LifecycleConnection | PhysicalConnection) => void)
    | undefined
  owner: CheckoutOwner | undefined
  sinceMs: number
  readonly handOut: (error: unknown, raw: MysqlPoolConnection) => void
}
