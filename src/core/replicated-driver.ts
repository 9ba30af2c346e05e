import type { DatabaseConnection, Driver, QueryCompiler, TransactionSettings } from 'kysely'
import { CompiledQuery, createQueryId, IdentifierNode, RawNode } from 'kysely'
import { explicitScope } from '../consistency/scope.js'
import type { Cluster } from './cluster.js'
import { RoutingConnection } from './routing-connection.js'

/** What `releaseConnection` returns: its work is synchronous, one settled promise serves all. */
const RELEASED: Promise<void> = Promise.resolve()

/** Released routing connections kept for reuse (they hold nothing but their settings). */
const MAX_IDLE_ROUTING_CONNECTIONS = 64

interface AbortOptions {
  readonly signal?: AbortSignal | undefined
}

/**
 * The Kysely `Driver` of the replicated dialects. `acquireConnection` hands out a lazy
 * {@link RoutingConnection}; nothing is checked out of a pool until a statement arrives.
 * Works with Kysely 0.28 (no options) and 0.29 (`{ signal }` options).
 */
export class ReplicatedDriver implements Driver {
  readonly #cluster: Cluster
  readonly #free: RoutingConnection[] = []

  readonly #eventual: boolean

  constructor(cluster: Cluster) {
    this.#cluster = cluster
    this.#eventual = cluster.routing.consistency === 'eventual'
  }

  async init(options?: AbortOptions): Promise<void> {
    await this.#cluster.init(options?.signal)
  }

  /**
   * Synchronous work in a promise made once per routing connection (and, for release, once for
   * all): Kysely awaits both around every query, so neither makes a promise of its own.
   */
  acquireConnection(_options?: AbortOptions): Promise<DatabaseConnection> {
    // Inside a consistencyScope the connection counts in it. Outside one, a connection (a single
    // query, a db.connection() scope, a transaction) gets its own scope, on first use.
    // Released connections are reused: one object per concurrent use, not one per query.
    // Eventual mode never reads a scope: no lookup of the current one.
    const explicit = this.#eventual ? undefined : explicitScope()
    const reused = this.#free.pop()
    if (reused !== undefined) {
      reused.reset(explicit)
      return reused.acquired
    }
    return new RoutingConnection(this.#cluster.routing, explicit).acquired
  }

  /** As Kysely's own drivers: the engine's statements, through the connection Kysely sees. */
  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    const routingConnection = routing(connection)
    routingConnection.opening(settings)
    try {
      for (const text of this.#cluster.engine.beginStatements(settings)) {
        await connection.executeQuery(CompiledQuery.raw(text))
      }
    } finally {
      routingConnection.opening(undefined)
    }
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    routing(connection).closing('commit')
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    routing(connection).closing('rollback')
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }

  async savepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await runSavepointCommand(connection, 'savepoint', savepointName, compileQuery)
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await runSavepointCommand(connection, 'rollback to', savepointName, compileQuery)
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await runSavepointCommand(connection, 'release savepoint', savepointName, compileQuery)
  }

  releaseConnection(connection: DatabaseConnection, _options?: AbortOptions): Promise<void> {
    try {
      const routingConnection = routing(connection)
      routingConnection.release()
      if (this.#free.length < MAX_IDLE_ROUTING_CONNECTIONS) this.#free.push(routingConnection)
    } catch (error) {
      return Promise.reject(error)
    }
    return RELEASED
  }

  async destroy(_options?: AbortOptions): Promise<void> {
    await this.#cluster.destroy()
  }
}

function routing(connection: DatabaseConnection): RoutingConnection {
  if (!(connection instanceof RoutingConnection)) {
    throw new TypeError('kysely-replicated: the driver was handed a connection it did not create')
  }
  return connection
}

/**
 * `savepoint "name"` (or `rollback to` / `release savepoint`) as Kysely's own drivers build it,
 * with the identifier quoted by the dialect's compiler, run in the connection's transaction.
 */
async function runSavepointCommand(
  connection: DatabaseConnection,
  command: string,
  savepointName: string,
  compileQuery: QueryCompiler['compileQuery'],
): Promise<void> {
  const node = RawNode.createWithChildren([
    RawNode.createWithSql(`${command} `),
    IdentifierNode.create(savepointName),
  ])
  routing(connection)
  await connection.executeQuery(compileQuery(node, createQueryId()))
}
