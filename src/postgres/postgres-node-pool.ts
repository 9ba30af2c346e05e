import { performance } from 'node:perf_hooks'
import type { CompiledQuery, QueryResult } from 'kysely'
import { CompiledQuery as Query } from 'kysely'
import { ConnectionSetup, resolvePoolSource } from '../core/connection-setup.js'
import type {
  NodeEndpoint,
  NodeInfo,
  NodeQueryOutcome,
  PhysicalConnection,
  PoolCounts,
} from '../core/contracts/engine.js'
import { PoolWaitTimeoutError } from '../core/contracts/errors.js'
import type {
  CheckoutOwner,
  LifecycleConnection,
  LifecycleNodePool,
  LifecycleOwner,
} from '../core/contracts/lifecycle.js'
import type { NodePoolSetup, NodeSource } from '../core/contracts/node-setup.js'
import { connectTimeoutError, openControlConnection } from '../core/control-connection.js'
import { InFlight } from '../core/in-flight.js'
import { destroySocket, destroySocketAfter, endPool, ignoreError } from '../core/pool-shutdown.js'
import {
  isPostgresPool,
  type PostgresCursorConstructor,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
} from './postgres-pool-types.js'

/**
 * `pg` pool members read for statistics, control connections and a bounded end; absent fields
 * mean "unknown". Written only by `end()`: the callers still waiting for a client of an ending
 * pool are failed (`pg-pool` would leave them waiting forever).
 */
interface PgPoolInternals {
  readonly totalCount?: number
  readonly idleCount?: number
  readonly waitingCount?: number
  /** The options every client of the pool is made with (`password` is not enumerable). */
  readonly options?: {
    readonly max?: number
    readonly host?: string
    readonly port?: number | string
    readonly database?: string
    readonly password?: unknown
    /** ms; none when absent or 0 (`pg`'s default). */
    readonly connectionTimeoutMillis?: number
  }
  /** The client class the pool makes clients with. */
  readonly Client?: new (
    options: Record<string, unknown>,
  ) => PostgresStandaloneClient
  /** Every client of the pool, those still connecting included. */
  readonly _clients?: readonly PostgresPoolClient[]
  /** Callers waiting for a client of a full pool (or for an idle one, until the next tick). */
  readonly _pendingQueue?: Array<{ callback?: (error: Error) => void }>
  /** Opens a client for a queue item (at once, or when a slot frees up for a queued one). */
  newClient?: (item: object) => unknown
}

/** A `pg` `Client` made outside the pool: the library's control connections. */
interface PostgresStandaloneClient extends Omit<PostgresPoolClient, 'release'> {
  connect(): Promise<unknown>
  /** `Terminate`, then the server closes the connection. */
  end(): Promise<void>
  release?: (destroy?: boolean) => void
}

/** How long a library-created pool waits for a new connection, unless `connection` says. */
const DEFAULT_CONNECT_TIMEOUT_MS = 3000

/** How long a politely closed connection (`Terminate`) may take to close before its socket is destroyed. */
const TERMINATE_GRACE_MS = 1000

/** pg-pool's error for a checkout that waited `connectionTimeoutMillis` in its queue. */
const QUEUE_TIMEOUT_MESSAGE = 'timeout exceeded when trying to connect'

/** Per `pg` pool: the queue items it began opening a client for (see {@link watchOpening}). */
const OPENING = new WeakMap<object, WeakSet<object>>()

/**
 * The queue items `pool` begins opening a client for, from now on. pg-pool times out a queued
 * checkout after `connectionTimeoutMillis` with one message whether it waited for a busy pool or
 * for a connection opened for it when a slot freed up (a hung node). Its `newClient` is wrapped,
 * once per pool, to tell them apart. `undefined` when the pool is not pg-pool's.
 */
function watchOpening(pool: PgPoolInternals): WeakSet<object> | undefined {
  const known = OPENING.get(pool)
  if (known !== undefined) return known
  const newClient = pool.newClient
  if (typeof newClient !== 'function' || !Array.isArray(pool._pendingQueue)) return undefined
  const opening = new WeakSet<object>()
  pool.newClient = function (this: unknown, item: object) {
    if (typeof item === 'object' && item !== null) opening.add(item)
    return newClient.call(this, item)
  }
  OPENING.set(pool, opening)
  return opening
}

/**
 * Creates a `pg` pool from `{ connection, poolSize, idleTimeoutMs }` (`pg` is loaded only then):
 * `max` = `poolSize` (default 10), `idleTimeoutMillis` = `idleTimeoutMs` (default 60 000),
 * `connectionTimeoutMillis` 3000 unless `connection` sets it (`pg` has none by default: a
 * connection attempt to a hung server would wait for TCP). Idle clients of a node that goes away
 * emit `'error'` on the pool; the pool made here ignores them (the library sees the failure on
 * the next checkout or query).
 */
export async function createPostgresPool(node: NodeSource): Promise<PostgresPool> {
  const pg = await loadPg()
  const Pool = pg.default?.Pool ?? pg.Pool
  if (Pool === undefined) throw new Error("the 'pg' module has no Pool export")
  const pool = new Pool({
    connectionTimeoutMillis: DEFAULT_CONNECT_TIMEOUT_MS,
    ...(node.connection as Record<string, unknown>),
    max: node.poolSize ?? 10,
    idleTimeoutMillis: node.idleTimeoutMs ?? 60_000,
  })
  ;(pool as { on?: (event: 'error', listener: () => void) => unknown }).on?.('error', ignoreError)
  return pool
}

type PgModule = {
  Pool?: new (options: Record<string, unknown>) => PostgresPool
  Client?: new (options: Record<string, unknown>) => PostgresStandaloneClient
}

async function loadPg(): Promise<PgModule & { default?: PgModule }> {
  return (await import('pg')) as unknown as PgModule & { default?: PgModule }
}

/**
 * One node's `pg` pool, seen through the engine-independent node pool interface. Every physical
 * client is set up once, the first time the pool hands it out (`pg` has no async connection
 * hook): read-only sessions on replicas, then the user's `onCreateConnection` and the
 * hook.
 */
export class PostgresNodePool implements LifecycleNodePool {
  readonly #source: unknown
  readonly #setup: NodePoolSetup
  readonly #setUpSession: (connection: PostgresPhysicalConnection) => Promise<void>
  readonly #cursor: PostgresCursorConstructor | undefined
  /** When each physical client was first handed out (set up once per client). */
  readonly #connections: ConnectionSetup
  #pool: PostgresPool | undefined
  /** The queue items the pool began opening a client for (`undefined`: cannot tell). */
  #opening: WeakSet<object> | undefined

  constructor(options: {
    /** The configured pool, or a factory of one. */
    readonly source: unknown
    readonly setup: NodePoolSetup
    /** The engine's own set-up of a new session (before the user's hook). */
    readonly setUpSession: (connection: PostgresPhysicalConnection) => Promise<void>
    /** `pg-cursor`, for streams, when installed. */
    readonly cursor: PostgresCursorConstructor | undefined
  }) {
    this.#source = options.source
    this.#setup = options.setup
    this.#connections = new ConnectionSetup(options.setup)
    this.#setUpSession = options.setUpSession
    this.#cursor = options.cursor
  }

  async init(): Promise<void> {
    if (this.#pool !== undefined) return
    const source = await resolvePoolSource(this.#source, this.#setup.node.name)
    if (!isPostgresPool(source)) {
      throw new TypeError(
        `node "${this.#setup.node.name}": the pool factory did not return a pg pool (new Pool() from 'pg')`,
      )
    }
    // An idle client of a node that goes away emits 'error' on its pool; with no listener that
    // crashes the process. A pool without one gets a listener here: the failure reaches the
    // health checks through the next probe or query instead.
    const emitter = source as {
      listenerCount?: (event: string) => number
      on?: (event: 'error', listener: () => void) => unknown
    }
    if (emitter.listenerCount?.('error') === 0) emitter.on?.('error', () => {})
    this.#opening = watchOpening(source as PgPoolInternals)
    this.#pool = source
  }

  endpoint(): NodeEndpoint | undefined {
    const o = (this.#pool as PgPoolInternals | undefined)?.options
    if (o === undefined) return undefined
    const port = o.port === undefined ? undefined : Number(o.port)
    return { host: o.host, port: Number.isFinite(port) ? port : undefined, database: o.database }
  }

  /**
   * How long the pool waits for a new connection (`connectionTimeoutMillis`), or `undefined` when
   * it waits without limit (`pg`'s default) or cannot tell.
   */
  connectTimeoutMs(): number | undefined {
    const ms = (this.#pool as PgPoolInternals | undefined)?.options?.connectionTimeoutMillis
    return typeof ms === 'number' && ms > 0 ? ms : undefined
  }

  counts(): PoolCounts | undefined {
    const p = this.#pool as PgPoolInternals | undefined
    if (typeof p?.totalCount !== 'number' || typeof p.idleCount !== 'number') return undefined
    return {
      total: p.totalCount,
      idle: p.idleCount,
      waiting: p.waitingCount ?? 0,
      limit: p.options?.max,
    }
  }

  /** Asked before every replica checkout: read off the pool, no object made. */
  willOpen(): boolean {
    const p = this.#pool as PgPoolInternals | undefined
    const total = p?.totalCount
    if (typeof total !== 'number' || p!.idleCount !== 0) return false
    const limit = p!.options?.max
    return limit === undefined || total < limit
  }

  idleNone(): boolean {
    return (this.#pool as PgPoolInternals | undefined)?.idleCount === 0
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
    const failed = (error: unknown) => (owner === undefined ? error : owner.checkoutFailed(error))
    const pool = this.#pool
    if (pool === undefined) {
      return Promise.reject(
        failed(
          new Error(
            `node "${this.#setup.node.name}": its pool is not open (used before init, or after db.destroy())`,
          ),
        ),
      )
    }
    if (signal?.aborted) return Promise.reject(failed(signal.reason))
    const queue = (pool as PgPoolInternals)._pendingQueue
    const queued = queue?.length ?? 0
    const connecting = signal === undefined ? pool.connect() : connectUnlessAborted(pool, signal)
    // pg-pool queues a checkout (synchronously) unless it opens a client for it at once.
    const waiter =
      queue !== undefined && queue.length > queued ? queue[queue.length - 1] : undefined
    // Set-up and the owner's accounting run in one continuation of pg's promise.
    return connecting.then(
      (client) => {
        const prepared = this.#prepare(client)
        if (owner === undefined) return prepared
        if (!(prepared instanceof Promise)) return owner.checkedOut(prepared, sinceMs, signal)
        return prepared.then(
          (connection) => owner.checkedOut(connection, sinceMs, signal),
          (error: unknown) => {
            throw failed(error)
          },
        )
      },
      (error: unknown) => {
        throw failed(this.#waitTimeout(pool, error, waiter) ?? error)
      },
    )
  }

  /**
   * pg-pool's queue timeout of a checkout (`waiter`: its queue item) for which no client was being
   * opened: every connection of the pool was busy the whole time, the node is not at fault.
   * `undefined` for any other error, and when the pool's internals cannot tell.
   */
  #waitTimeout(
    pool: PostgresPool,
    error: unknown,
    waiter: object | undefined,
  ): PoolWaitTimeoutError | undefined {
    if (waiter === undefined || this.#opening === undefined || this.#opening.has(waiter)) {
      return undefined
    }
    if ((error as { message?: unknown } | null)?.message !== QUEUE_TIMEOUT_MESSAGE) return undefined
    const name = this.#setup.node.name
    const options = (pool as PgPoolInternals).options
    const max = options?.max === undefined ? '' : ` ${options.max}`
    const ms = options?.connectionTimeoutMillis
    const within = ms === undefined ? "the pool's wait limit" : `${ms} ms (connectionTimeoutMillis)`
    return new PoolWaitTimeoutError(
      `node "${name}": no connection of its pool was free within ${within}: all${max} were busy with other statements. The node answers and is not counted as failed; raise the pool's max (poolSize) or run fewer statements on it at once`,
      name,
      { cause: error },
    )
  }

  /**
   * A new connection to the node outside the pool (a `pg` `Client` made with the pool's options,
   * `connectionTimeoutMillis` = `connectTimeoutMs`), set up like pool connections without the
   * user's hook; `release()` and `destroy()` close it.
   */
  async openControl(connectTimeoutMs: number): Promise<LifecycleConnection> {
    const node = this.#setup.node
    const pool = this.#pool as PgPoolInternals | undefined
    const options = pool?.options
    if (options === undefined) {
      throw new Error(
        `node "${node.name}": ${pool === undefined ? 'its pool is not open (used before init, or after db.destroy())' : 'the pool has no pg options'}: cannot open a control connection`,
      )
    }
    const pg = pool?.Client === undefined ? await loadPg() : undefined
    const Client = pool?.Client ?? pg?.Client ?? pg?.default?.Client
    if (Client === undefined) throw new Error("the 'pg' module has no Client export")
    let client: PostgresStandaloneClient | undefined
    let connection: PostgresPhysicalConnection | undefined
    return openControlConnection({
      node,
      timeoutMs: connectTimeoutMs,
      isConnectionError: this.#setup.isConnectionError,
      connect: async () => {
        const made = new Client({
          ...options,
          // not enumerable in the pool's options
          password: options.password,
          connectionTimeoutMillis: connectTimeoutMs,
        })
        client = made
        made.on?.('error', ignoreError)
        // What PostgresPhysicalConnection calls to give a client back: close it.
        made.release = () => {
          made.end().catch(ignoreError)
        }
        try {
          await made.connect()
        } catch (error) {
          // `pg`'s own connect timeout: as the pools' ('Connection terminated ...'), a connection error.
          if ((error as Error)?.message === 'timeout expired') {
            throw Object.assign(connectTimeoutError(node.name, connectTimeoutMs), { cause: error })
          }
          throw error
        }
        connection = new PostgresPhysicalConnection(made as PostgresPoolClient, node, {
          cursor: this.#cursor,
          createdAtMs: performance.now(),
          isNew: true,
          control: true,
        })
        return connection
      },
      setUp: (made) => this.#setUpSession(made),
      discard: () => {
        if (connection !== undefined) connection.destroy()
        else if (client !== undefined) {
          client.end().catch(ignoreError)
          destroySocket(client.connection?.stream)
        }
      },
    })
  }

  /**
   * Ends the pool: `Terminate` on every client (once it is released), and waits up to `graceMs`
   * for them to close; then destroys the sockets left (a hung server never answers), connection
   * attempts in progress included. Callers waiting for a client of the full pool fail at once
   * (`pg-pool` never serves them once it ends).
   */
  async end(graceMs = 1000): Promise<void> {
    const pool = this.#pool
    if (pool === undefined) return
    this.#pool = undefined
    const internals = pool as PgPoolInternals
    const name = this.#setup.node.name
    await endPool({
      graceMs,
      connections: [...(internals._clients ?? [])],
      socketOf: (client) => client.connection?.stream,
      end: () => {
        const ended = pool.end()
        const waiting = internals._pendingQueue?.splice(0) ?? []
        if (waiting.length > 0) {
          const error = new Error(`node "${name}": the pool was ended while waiting for a client`)
          for (const item of waiting) item.callback?.(error)
        }
        return ended
      },
      forcedError: () =>
        new Error(
          `node "${name}": the pool was ended and its connection closed after ${graceMs} ms`,
        ),
    })
  }

  /** The connection object of a checked-out client: set up first when the client is new. */
  #prepare(client: PostgresPoolClient): LifecycleConnection | Promise<LifecycleConnection> {
    const node = this.#setup.node
    const createdAt = this.#connections.known(client)?.createdAtMs
    if (createdAt !== undefined) {
      return new PostgresPhysicalConnection(client, node, {
        cursor: this.#cursor,
        createdAtMs: createdAt,
        isNew: false,
      })
    }
    return this.#setUpNew(client)
  }

  async #setUpNew(client: PostgresPoolClient): Promise<LifecycleConnection> {
    const connection = new PostgresPhysicalConnection(client, this.#setup.node, {
      cursor: this.#cursor,
      createdAtMs: performance.now(),
      isNew: true,
    })
    await this.#connections.setUp(
      client,
      connection,
      () => this.#setUpSession(connection),
      () => connection.destroy(),
    )
    return connection
  }
}

/** A `pg` pool client, with results mapped exactly as Kysely's `PostgresDialect` maps them. */
export class PostgresPhysicalConnection implements LifecycleConnection {
  readonly #client: PostgresPoolClient
  readonly #cursor: PostgresCursorConstructor | undefined
  readonly node: NodeInfo
  readonly createdAtMs: number
  readonly isNew: boolean
  owner: LifecycleOwner | undefined
  killed = false
  runningSlot: number | undefined = undefined
  checkedOutAtMs: number | undefined = undefined
  cancelling: Promise<void> | undefined = undefined
  readonly #onError: (error: Error) => void
  /** Outside any pool: `release()` closes it too. */
  readonly #control: boolean
  readonly #inFlight = new InFlight()
  #done = false
  #discard = false
  #broken: Error | undefined

  constructor(
    client: PostgresPoolClient,
    node: NodeInfo,
    options: {
      readonly cursor: PostgresCursorConstructor | undefined
      /** Clock reading when the physical client was first handed out. */
      readonly createdAtMs: number
      readonly isNew: boolean
      readonly control?: boolean
    },
  ) {
    this.#client = client
    this.node = node
    this.#cursor = options.cursor
    this.createdAtMs = options.createdAtMs
    this.isNew = options.isNew
    this.#control = options.control ?? false
    // While checked out, a broken connection (a killed server, a FATAL sent to every backend) is
    // an 'error' event on the client; pg-pool listens only while the client is idle. The failing
    // query (if any) reports it; the client is closed on release.
    this.#onError = (error) => {
      this.#broken = error
    }
    client.on?.('error', this.#onError)
  }

  /** The error that broke the connection while it was checked out, if one did. */
  get broken(): Error | undefined {
    return this.#broken
  }

  /** The backend pid. */
  get sessionId(): number | undefined {
    return this.#client.processID ?? undefined
  }

  async execute<R>(query: CompiledQuery): Promise<NodeQueryOutcome<R>> {
    let result: PostgresQueryResult<R>
    try {
      result = await this.#inFlight.run(() => this.#client.query<R>(query.sql, query.parameters))
    } catch (error) {
      // As Kysely's PostgresDriver: a session whose ROLLBACK failed may still be in a transaction,
      // so it is closed on release rather than reused. (Detected here: the core may hand the
      // engine a wrapper of this connection.)
      if (query.sql === 'rollback') this.#discard = true
      throw error
    }
    return { result: mapResult(result) }
  }

  async *stream<R>(query: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
    const Cursor = this.#cursor
    if (Cursor === undefined) {
      throw new Error(
        "ReplicatedPostgresDialect: `.stream()` needs `cursor` in the dialect config (import Cursor from 'pg-cursor'; new ReplicatedPostgresDialect({ cursor: Cursor, ... }))",
      )
    }
    const inFlight = this.#inFlight
    if (inFlight.abandoned !== undefined) throw inFlight.abandoned
    const cursor = this.#client.query(new Cursor<R>(query.sql, query.parameters.slice()))
    inFlight.streamOpened()
    try {
      while (true) {
        const rows = await inFlight.run(() => cursor.read(chunkSize))
        if (rows.length === 0) break
        yield { rows }
      }
    } finally {
      await inFlight.streamEnded(() => cursor.close())
    }
  }

  /**
   * Gives up on the running statement: it rejects with `reason` now, and the client leaves its
   * pool (freeing its slot) and its socket is destroyed (`pg` would wait for TCP on a hung
   * server). Nothing when no statement runs or the client was released.
   */
  abandon(reason: Error): void {
    if (this.#done || !this.#inFlight.abandon(reason)) return
    this.#done = true
    this.owner?.destroyed(this)
    this.#close()
    // Ending the client (in #close) destroys its socket while a query runs; not between a
    // stream's steps.
    destroySocket(this.#client.connection?.stream)
  }

  release(): void {
    if (this.#done) return
    this.#done = true
    const retire = this.owner?.retire(this) === true
    if (retire || this.#discard || this.#broken !== undefined || this.#control) {
      this.#close()
      return
    }
    this.#client.removeListener?.('error', this.#onError)
    this.#client.release()
  }

  /** Closes the client now; a statement still running on it fails. */
  destroy(): void {
    if (this.#done) return
    this.#done = true
    this.owner?.destroyed(this)
    this.#inFlight.abandon(new Error(`node "${this.node.name}": the connection was closed`))
    this.#close()
  }

  /** Runs SQL for the library's own purposes (setup, probes, waits, positions). */
  async run<R>(sql: string, parameters: ReadonlyArray<unknown> = []): Promise<R[]> {
    return (await this.execute<R>(Query.raw(sql, parameters as unknown[]))).result.rows
  }

  /**
   * Closes the client: out of its pool (`release(true)`: `pg` ends it, `Terminate`), its socket
   * destroyed if the server has not closed it in time (a hung server never does).
   */
  #close(): void {
    const client = this.#client
    // pg-pool listens again once the client is back (`release(true)`); its end sends no error.
    client.removeListener?.('error', this.#onError)
    try {
      client.release(true)
    } catch {
      // already gone
    }
    destroySocketAfter(client.connection?.stream, TERMINATE_GRACE_MS)
  }
}

/** Kysely's `PostgresConnection.executeQuery` mapping. */
function mapResult<R>(result: PostgresQueryResult<R>): QueryResult<R> {
  // A multi-statement text yields an array of results; Kysely reads no fields from it either.
  const { command, rowCount, rows } = result
  if (command === 'ROLLBACK' || command === 'COMMIT') {
    return { rows: [{ command } as R] }
  }
  return {
    numAffectedRows:
      (command === 'INSERT' ||
        command === 'UPDATE' ||
        command === 'DELETE' ||
        command === 'MERGE') &&
      rowCount != null
        ? BigInt(rowCount)
        : undefined,
    rows: rows ?? [],
  }
}

/** `pool.connect()` that gives up when `signal` aborts (a client that comes later goes straight back). */
function connectUnlessAborted(
  pool: PostgresPool,
  signal: AbortSignal,
): Promise<PostgresPoolClient> {
  return new Promise<PostgresPoolClient>((resolve, reject) => {
    let settled = false
    const onAbort = () => {
      if (!settled) {
        settled = true
        reject(signal.reason)
      }
    }
    signal.addEventListener('abort', onAbort, { once: true })
    pool.connect().then(
      (client) => {
        signal.removeEventListener('abort', onAbort)
        if (settled) {
          // Aborted while waiting: hand the client straight back.
          client.release()
          return
        }
        settled = true
        resolve(client)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        if (!settled) {
          settled = true
          reject(error)
        }
      },
    )
  })
}
