import type { CompiledQuery, QueryResult } from 'kysely'
import { CompiledQuery as Query } from 'kysely'
import { parsePosition, type ReplicationPosition } from '../consistency/position.js'
import type { NodeInfo, NodePool, NodeQueryOutcome, PhysicalConnection } from '../core/engine.js'
import { asDatabaseConnection } from '../core/engine.js'
import { ConnectionSetupError } from '../core/errors.js'
import type { MysqlEngine } from './mysql-engine.js'
import {
  isResultHeader,
  type MysqlPool,
  type MysqlPoolConnection,
  trackedGtid,
  unwrapMysqlPool,
} from './mysql-pool-types.js'

/** Per-node settings the pool applies to each new physical connection. */
export interface MysqlNodeSetup {
  readonly node: NodeInfo
  readonly replicaSessionReadOnly: boolean
  readonly onCreateConnection: ((connection: import('kysely').DatabaseConnection, node: NodeInfo) => Promise<void>) | undefined
}

/**
 * One node's mysql2 pool, seen through the engine-independent {@link NodePool} interface. Every
 * physical connection is set up once, the first time the pool hands it out (mysql2 has no async
 * connection hook): engine detection, GTID session tracking on the primary, read-only sessions
 * on replicas, then the user's `onCreateConnection`.
 */
export class MysqlNodePool implements NodePool {
  readonly #source: unknown
  readonly #setup: MysqlNodeSetup
  readonly #engine: MysqlEngine
  readonly #ready = new WeakSet<object>()
  #pool: MysqlPool | undefined

  constructor(source: unknown, setup: MysqlNodeSetup, engine: MysqlEngine) {
    this.#source = source
    this.#setup = setup
    this.#engine = engine
  }

  async init(): Promise<void> {
    if (this.#pool !== undefined) return
    const source = typeof this.#source === 'function' ? await (this.#source as () => Promise<unknown>)() : this.#source
    const pool = unwrapMysqlPool(source)
    if (pool === undefined) {
      throw new TypeError(
        `node "${this.#setup.node.name}": the pool factory did not return a mysql2 pool (createPool() from 'mysql2' or 'mysql2/promise')`,
      )
    }
    this.#pool = pool
  }

  acquire(signal?: AbortSignal): Promise<PhysicalConnection> {
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

  async #prepare(raw: MysqlPoolConnection): Promise<PhysicalConnection> {
    const connection = new MysqlPhysicalConnection(raw, this.#setup.node)
    if (this.#ready.has(raw)) return connection
    try {
      await this.#engine.setUpConnection(connection, raw, this.#setup)
      if (this.#setup.onCreateConnection !== undefined) {
        await this.#setup.onCreateConnection(asDatabaseConnection(connection), this.#setup.node)
      }
    } catch (error) {
      // Never leave a half-set-up connection in the pool.
      raw.destroy()
      if (this.#engine.isConnectionError(error)) throw error
      throw new ConnectionSetupError(
        `setting up a new connection on node "${this.#setup.node.name}" failed: ${error instanceof Error ? error.message : String(error)}`,
        this.#setup.node.name,
        { cause: error },
      )
    }
    this.#ready.add(raw)
    return connection
  }
}

/** A mysql2 pool connection, with results mapped exactly as Kysely's `MysqlDialect` maps them. */
export class MysqlPhysicalConnection implements PhysicalConnection {
  readonly #raw: MysqlPoolConnection
  readonly node: NodeInfo
  #done = false

  constructor(raw: MysqlPoolConnection, node: NodeInfo) {
    this.#raw = raw
    this.node = node
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
        resolve(mapResult<R>(result))
      })
    })
  }

  async *stream<R>(query: CompiledQuery, _chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
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
    this.#raw.release()
  }

  destroy(): void {
    if (this.#done) return
    this.#done = true
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

function mapResult<R>(result: unknown): NodeQueryOutcome<R> {
  if (!isResultHeader(result)) {
    return { result: { rows: (Array.isArray(result) ? result : []) as R[] } }
  }
  const { insertId, affectedRows, changedRows } = result
  const tracked = trackedGtid(result)
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
