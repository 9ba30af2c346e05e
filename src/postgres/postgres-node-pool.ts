import type { CompiledQuery, QueryResult } from 'kysely'
import { CompiledQuery as Query } from 'kysely'
import type { NodeInfo, NodePool, NodeQueryOutcome, PhysicalConnection } from '../core/engine.js'
import { asDatabaseConnection } from '../core/engine.js'
import { ConnectionSetupError } from '../core/errors.js'
import type { NodePoolSetup } from '../core/replicated-dialect-base.js'
import type { PostgresEngine } from './postgres-engine.js'
import {
  isPostgresPool,
  type PostgresCursorConstructor,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
} from './postgres-pool-types.js'

/**
 * One node's `pg` pool, seen through the engine-independent {@link NodePool} interface. Every
 * physical client is set up once, the first time the pool hands it out (`pg` has no async
 * connection hook): read-only sessions on replicas, then the user's `onCreateConnection`.
 */
export class PostgresNodePool implements NodePool {
  readonly #source: unknown
  readonly #setup: NodePoolSetup
  readonly #engine: PostgresEngine
  readonly #cursor: PostgresCursorConstructor | undefined
  readonly #ready = new WeakSet<object>()
  #pool: PostgresPool | undefined

  constructor(
    source: unknown,
    setup: NodePoolSetup,
    engine: PostgresEngine,
    cursor: PostgresCursorConstructor | undefined,
  ) {
    this.#source = source
    this.#setup = setup
    this.#engine = engine
    this.#cursor = cursor
  }

  async init(): Promise<void> {
    if (this.#pool !== undefined) return
    const source =
      typeof this.#source === 'function'
        ? await (this.#source as () => Promise<unknown>)()
        : this.#source
    if (!isPostgresPool(source)) {
      throw new TypeError(
        `node "${this.#setup.node.name}": the pool factory did not return a pg pool (new Pool() from 'pg')`,
      )
    }
    this.#pool = source
  }

  async acquire(signal?: AbortSignal): Promise<PhysicalConnection> {
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

  async #prepare(client: PostgresPoolClient): Promise<PhysicalConnection> {
    const node = this.#setup.node
    const connection = new PostgresPhysicalConnection(client, node, this.#cursor)
    if (this.#ready.has(client)) return connection
    try {
      await this.#engine.setUpConnection(connection, this.#setup)
      if (this.#setup.onCreateConnection !== undefined) {
        await this.#setup.onCreateConnection(asDatabaseConnection(connection), node)
      }
    } catch (error) {
      // Never leave a half-set-up client in the pool.
      connection.destroy()
      if (this.#engine.isConnectionError(error)) throw error
      throw new ConnectionSetupError(
        `setting up a new connection on node "${node.name}" failed: ${error instanceof Error ? error.message : String(error)}`,
        node.name,
        { cause: error },
      )
    }
    this.#ready.add(client)
    return connection
  }
}

/** A `pg` pool client, with results mapped exactly as Kysely's `PostgresDialect` maps them. */
export class PostgresPhysicalConnection implements PhysicalConnection {
  readonly #client: PostgresPoolClient
  readonly #cursor: PostgresCursorConstructor | undefined
  readonly node: NodeInfo
  #done = false
  #discard = false

  constructor(
    client: PostgresPoolClient,
    node: NodeInfo,
    cursor: PostgresCursorConstructor | undefined,
  ) {
    this.#client = client
    this.node = node
    this.#cursor = cursor
  }

  /** The backend pid. */
  get sessionId(): number | undefined {
    return this.#client.processID ?? undefined
  }

  async execute<R>(query: CompiledQuery): Promise<NodeQueryOutcome<R>> {
    const result = await this.#client.query<R>(query.sql, query.parameters)
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

  /** After a failed rollback the session may still be in a transaction: close it on release. */
  markForDiscard(): void {
    this.#discard = true
  }

  release(): void {
    if (this.#done) return
    this.#done = true
    this.#client.release(this.#discard)
  }

  destroy(): void {
    if (this.#done) return
    this.#done = true
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
      (command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE') &&
      rowCount != null
        ? BigInt(rowCount)
        : undefined,
    rows: rows ?? [],
  }
}
