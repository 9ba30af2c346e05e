import { performance } from 'node:perf_hooks'
import type { CompiledQuery, QueryResult } from 'kysely'
import { CompiledQuery as Query } from 'kysely'
import { parsePosition, type ReplicationPosition } from '../consistency/position.js'
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
  isResultHeader,
  type MysqlPool,
  type MysqlPoolConnection,
  trackedGtid,
  unwrapMysqlPool,
} from './mysql-pool-types.js'

/** mysql2 pool internals read (never written) for statistics; absent fields mean "unknown". */
interface MysqlPoolInternals {
  readonly _allConnections?: { readonly length: number }
  readonly _freeConnections?: { readonly length: number }
  readonly _connectionQueue?: { readonly length: number }
  readonly config?: {
    readonly connectionLimit?: number
    readonly connectionConfig?: {
      readonly host?: string
      readonly port?: number
      readonly database?: string
    }
  }
}

/**
 * Creates a mysql2 pool from `{ connection, poolSize, idleTimeoutMs }` (mysql2 is loaded only
 * then). Idle connections are closed after `idleTimeoutMs` (mysql2's `idleTimeout`; mysql2 only
 * runs its idle reaper when `maxIdle < connectionLimit`, and closes idle connections beyond
 * `maxIdle` at once, so `maxIdle` is one less than the pool size).
 */
export async function createMysqlPool(node: NodeSource): Promise<MysqlPool> {
  const { createPool } = (await import('mysql2')) as unknown as {
    createPool(options: Record<string, unknown>): MysqlPool
  }
  const limit = node.poolSize ?? 10
  return createPool({
    ...(node.connection as Record<string, unknown>),
    connectionLimit: limit,
    maxIdle: Math.max(1, limit - 1),
    idleTimeout: node.idleTimeoutMs ?? 60_000,
  })
}

/**
 * One node's mysql2 pool, seen through the engine-independent {@link NodePool} interface. Every
 * physical connection is set up once, the first time the pool hands it out (mysql2 has no async
 * connection hook): engine detection, GTID session tracking on the primary, read-only sessions
 * on replicas, then the user's `onCreateConnection`.
 */
export class MysqlNodePool implements LifecycleNodePool {
  readonly #source: unknown
  readonly #setup: NodePoolSetup
  readonly #setUpSession: (
    connection: MysqlPhysicalConnection,
    raw: MysqlPoolConnection,
  ) => Promise<void>
  /** When each physical connection was first handed out. */
  readonly #connections: ConnectionSetup
  #pool: MysqlPool | undefined

  constructor(options: {
    /** The configured pool, or a factory of one. */
    readonly source: unknown
    readonly setup: NodePoolSetup
    /** The engine's own set-up of a new session (before the user's hook). */
    readonly setUpSession: (
      connection: MysqlPhysicalConnection,
      raw: MysqlPoolConnection,
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
  }

  endpoint(): NodeEndpoint | undefined {
    const c = (this.#pool as MysqlPoolInternals | undefined)?.config?.connectionConfig
    return c === undefined ? undefined : { host: c.host, port: c.port, database: c.database }
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

  willOpen(): boolean {
    const c = this.counts()
    return c !== undefined && c.idle === 0 && (c.limit === undefined || c.total < c.limit)
  }

  acquire(signal?: AbortSignal): Promise<LifecycleConnection> {
    const pool = this.#pool
    if (pool === undefined) {
      return Promise.reject(new Error(`node "${this.#setup.node.name}": pool used before init`))
    }
    return new Promise<MysqlPoolConnection>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason)
        return
      }
      let settled = false
      const onAbort = () => {
        if (!settled) {
          settled = true
          reject(signal?.reason)
        }
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      pool.getConnection((error, raw) => {
        signal?.removeEventListener('abort', onAbort)
        if (settled) {
          // Aborted while waiting: hand the connection straight back.
          if (!error) raw.release()
          return
        }
        settled = true
        if (error) reject(error)
        else resolve(raw)
      })
    }).then((raw) => this.#prepare(raw))
  }

  async end(): Promise<void> {
    const pool = this.#pool
    if (pool === undefined) return
    this.#pool = undefined
    await new Promise<void>((resolve, reject) => {
      pool.end((error) => (error ? reject(error) : resolve()))
    })
  }

  #prepare(raw: MysqlPoolConnection): LifecycleConnection | Promise<LifecycleConnection> {
    // One connection object per physical connection, reused for every checkout (hot path).
    const known = this.#connections.known(raw) as MysqlPhysicalConnection | undefined
    if (known !== undefined) {
      known.checkedOut()
      return known
    }
    return this.#setUpNew(raw)
  }

  async #setUpNew(raw: MysqlPoolConnection): Promise<LifecycleConnection> {
    const connection = new MysqlPhysicalConnection(
      raw,
      this.#setup.node,
      performance.now(),
      this.#setup.trackPositions,
    )
    await this.#connections.setUp(
      raw,
      connection,
      () => this.#setUpSession(connection, raw),
      () => raw.destroy(),
    )
    return connection
  }
}

/** A mysql2 pool connection, with results mapped exactly as Kysely's `MysqlDialect` maps them. */
export class MysqlPhysicalConnection implements LifecycleConnection {
  readonly #raw: MysqlPoolConnection
  readonly node: NodeInfo
  readonly createdAtMs: number
  isNew = true
  owner: LifecycleOwner | undefined
  killed = false
  cancelling: Promise<void> | undefined = undefined
  #done = false

  readonly #trackPositions: boolean

  constructor(
    raw: MysqlPoolConnection,
    node: NodeInfo,
    createdAtMs: number,
    trackPositions = true,
  ) {
    this.#raw = raw
    this.node = node
    this.createdAtMs = createdAtMs
    this.#trackPositions = trackPositions
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
      this.#raw.query(query.sql, query.parameters, (error, result) => {
        if (error) {
          reject(error)
          return
        }
        resolve(mapResult<R>(result, this.#trackPositions))
      })
    })
  }

  async *stream<R>(
    query: CompiledQuery,
    _chunkSize: number,
  ): AsyncIterableIterator<QueryResult<R>> {
    const stream = this.#raw.query(query.sql, query.parameters).stream({ objectMode: true })
    try {
      for await (const row of stream) {
        yield { rows: [row as R] }
      }
    } catch (error) {
      // mysql2 ends an early-closed stream with this code; the consumer stopped reading.
      if ((error as { code?: unknown })?.code === 'ERR_STREAM_PREMATURE_CLOSE') return
      throw error
    }
  }

  release(): void {
    if (this.#done) return
    this.#done = true
    if (this.owner?.retire(this) === true) {
      this.#raw.destroy()
      return
    }
    this.#raw.release()
  }

  destroy(): void {
    if (this.#done) return
    this.#done = true
    this.owner?.destroyed(this)
    try {
      this.#raw.destroy()
    } catch {
      // already gone
    }
  }

  /** Runs SQL for the library's own purposes (setup, probes, waits). */
  async run(sql: string, parameters: ReadonlyArray<unknown> = []): Promise<unknown> {
    return (await this.execute(Query.raw(sql, parameters as unknown[]))).result
  }
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
