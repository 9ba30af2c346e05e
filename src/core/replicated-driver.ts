import type { DatabaseConnection, Driver, QueryCompiler, TransactionSettings } from 'kysely'
import { createQueryId, IdentifierNode, RawNode } from 'kysely'
import { ConsistencyScope, explicitScope, processWideScope } from '../consistency/scope.js'
import type { ClusterRuntime } from './cluster-runtime.js'
import { RoutingConnection } from './routing-connection.js'

interface AbortOptions {
  readonly signal?: AbortSignal | undefined
}

/**
 * The Kysely `Driver` of the replicated dialects. `acquireConnection` hands out a lazy
 * {@link RoutingConnection}; nothing is checked out of a pool until a statement arrives.
 * Works with Kysely 0.28 (no options) and 0.29 (`{ signal }` options).
 */
export class ReplicatedDriver implements Driver {
  readonly #cluster: ClusterRuntime

  constructor(cluster: ClusterRuntime) {
    this.#cluster = cluster
  }

  async init(options?: AbortOptions): Promise<void> {
    await this.#cluster.init(options?.signal)
  }

  async acquireConnection(_options?: AbortOptions): Promise<DatabaseConnection> {
    // Inside a consistencyScope the connection counts in it. Outside one, a connection (a single
    // query, a db.connection() scope, a transaction) is its own scope, nested in the process-wide
    // one: its writes count for later code in no scope too.
    const scope = explicitScope() ?? new ConsistencyScope(processWideScope())
    return new RoutingConnection(this.#cluster, scope)
  }

  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    await routing(connection).beginTransaction(settings)
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await routing(connection).commitTransaction()
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await routing(connection).rollbackTransaction()
  }

  async savepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await routing(connection).runSavepointCommand(
      (compile) => compile(savepointNode('savepoint', savepointName), createQueryId()),
      compileQuery,
    )
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await routing(connection).runSavepointCommand(
      (compile) => compile(savepointNode('rollback to', savepointName), createQueryId()),
      compileQuery,
    )
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await routing(connection).runSavepointCommand(
      (compile) => compile(savepointNode('release savepoint', savepointName), createQueryId()),
      compileQuery,
    )
  }

  async releaseConnection(connection: DatabaseConnection, _options?: AbortOptions): Promise<void> {
    routing(connection).release()
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

/** `savepoint "name"` as Kysely's own drivers build it (identifier quoted by the dialect's compiler). */
function savepointNode(command: string, savepointName: string): RawNode {
  return RawNode.createWithChildren([
    RawNode.createWithSql(`${command} `),
    IdentifierNode.create(savepointName),
  ])
}
