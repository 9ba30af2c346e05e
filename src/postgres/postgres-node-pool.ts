import { performance } from 'node:perf_hooks'
import type { CompiledQuery, QueryResult } from 'kysely'
import { CompiledQuery as Query } from 'kysely'
import { ConnectionSetup, resolvePoolSource } from '../core/connection-setup.js'
import type {
  NodeEndpoint,
  NodeInfo,
  NodeQueryOutcome,
  PoolCounts,
} from '../core/contracts/engine.js'
import type {
  LifecycleConnection,
  LifecycleNodePool,
  LifecycleOwner,
} from '../core/contracts/lifecycle.js'
import type { NodePoolSetup, NodeSource } from '../core/contracts/node-setup.js'
import {
  isPostgresPool,
  type PostgresCursorConstructor,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
} from './postgres-pool-types.js'

/** `pg` pool members read (never written) for statistics; absent fields mean "unknown". */
interface PgPoolInternals {
  readonly totalCount?: number
  readonly idleCount?: number
  readonly waitingCount?: number
  readonly options?: {
    readonly max?: number
    readonly host?: string
    readonly port?: number | string
    readonly database?: string
  }
}

/**
 * Creates a `pg` pool from `{ connection, poolSize, idleTimeoutMs }` (`pg` is loaded only then):
 * `max` = `poolSize` (default 10), `idleTimeoutMillis` = `idleTimeoutMs` (default 60 000). Idle
 * clients of a node that goes away emit `'error'` on the pool; the pool made here ignores them
 * (the library sees the failure on the next checkout or query).
 */
export async function createPostgresPool(node: NodeSource): Promise<PostgresPool> {
  const pg = (await import('pg')) as unknown as {
    default?: { Pool: new (options: Record<string, unknown>) => PostgresPool }
    Pool?: new (options: Record<string, unknown>) => PostgresPool
  }
  const Pool = pg.default?.Pool ?? pg.Pool
  if (Pool === undefined) throw new Error("the 'pg' module has no Pool export")
  const pool = new Pool({
    ...(node.connection as Record<string, unknown>),
    max: node.poolSize ?? 10,
    idleTimeoutMillis: node.idleTimeoutMs ?? 60_000,
  })
  ;(pool as { on?: (event: 'error', listener: () => void) => unknown }).on?.('error', () => {})
  return pool
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
    this.#pool = source
  }

  endpoint(): NodeEndpoint | undefined {
    const o = (this.#pool as PgPoolInternals | undefined)?.options
    if (o === undefined) return undefined
    const port = o.port === undefined ? undefined : Number(o.port)
    return { host: o.host, port: Number.isFinite(port) ? port : undefined, database: o.database }
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

  willOpen(): boolean {
    const c = this.counts()
    return c !== undefined && c.idle === 0 && (c.limit === undefined || c.total < c.limit)
  }

  async acquire(signal?: AbortSignal): Promise<LifecycleConnection> {
    const pool = this.#pool
    if (pool === undefined) {
      throw new Error(`node "${this.#setup.node.name}": pool used before init`)
    }
    signal?.throwIfAborted()
    let client: PostgresPoolClient
    if (signal === undefined) {
      client = await pool.connect()
    } else {
      client = await new Promise<PostgresPoolClient>((resolve, reject) => {
        let settled = false
        const onAbort = () => {
          if (!settled) {
            settled = true
            reject(signal.reason)
          }
        }
        signal.addEventListener('abort', onAbort, { once: true })
        pool.connect().then(
          (c) => {
            signal.removeEventListener('abort', onAbort)
            if (settled) {
              // Aborted while waiting: hand the client straight back.
              c.release()
              return
            }
            settled = true
            resolve(c)
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
    return this.#prepare(client)
  }

  async end(): Promise<void> {
    const pool = this.#pool
    if (pool === undefined) return
    this.#pool = undefined
    await pool.end()
  }

  async #prepare(client: PostgresPoolClient): Promise<LifecycleConnection> {
    const node = this.#setup.node
    const createdAt = this.#connections.known(client)?.createdAtMs
    if (createdAt !== undefined) {
      return new PostgresPhysicalConnection(client, node, this.#cursor, createdAt, false)
    }
    const connection = new PostgresPhysicalConnection(
      client,
      node,
      this.#cursor,
      performance.now(),
      true,
    )
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
  cancelling: Promise<void> | undefined = undefined
  readonly #onError: (error: Error) => void
  #done = false
  #discard = false
  #broken: Error | undefined

  constructor(
    client: PostgresPoolClient,
    node: NodeInfo,
    cursor: PostgresCursorConstructor | undefined,
    createdAtMs: number,
    isNew: boolean,
  ) {
    this.#client = client
    this.node = node
    this.#cursor = cursor
    this.createdAtMs = createdAtMs
    this.isNew = isNew
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
      result = await this.#client.query<R>(query.sql, query.parameters)
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
    const cursor = this.#client.query(new Cursor<R>(query.sql, query.parameters.slice()))
    try {
      while (true) {
        const rows = await cursor.read(chunkSize)
        if (rows.length === 0) break
        yield { rows }
      }
    } finally {
      await cursor.close()
    }
  }

  release(): void {
    if (this.#done) return
    this.#done = true
    this.#client.removeListener?.('error', this.#onError)
    const retire = this.owner?.retire(this) === true
    this.#client.release(retire || this.#discard || this.#broken !== undefined)
  }

  destroy(): void {
    if (this.#done) return
    this.#done = true
    this.owner?.destroyed(this)
    this.#client.removeListener?.('error', this.#onError)
    try {
      this.#client.release(true)
    } catch {
      // already gone
    }
  }

  /** Runs SQL for the library's own purposes (setup, probes, waits, positions). */
  async run<R>(sql: string, parameters: ReadonlyArray<unknown> = []): Promise<R[]> {
    return (await this.execute<R>(Query.raw(sql, parameters as unknown[]))).result.rows
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
