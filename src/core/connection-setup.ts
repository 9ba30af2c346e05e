import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely'
import type { PhysicalConnection } from './contracts/engine.js'
import { annotateNodeError, ConnectionSetupError } from './contracts/errors.js'
import type { LifecycleConnection } from './contracts/lifecycle.js'
import type { NodePoolSetup } from './contracts/node-setup.js'

/**
 * The part of an engine pool that is the same for every engine: recognising the physical
 * connections it has not seen before, setting them up once (engine settings, then the user's
 * `onCreateConnection`), and never letting a half-set-up connection
 * back into the pool.
 */
export class ConnectionSetup {
  readonly #setup: NodePoolSetup
  /** The connection object of each physical connection set up so far, keyed by the driver's object. */
  readonly #known = new WeakMap<object, LifecycleConnection>()
  #firstSeen = false

  constructor(setup: NodePoolSetup) {
    this.#setup = setup
  }

  /** The connection object made when `raw` was set up, or `undefined` for a new physical connection. */
  known(raw: object): LifecycleConnection | undefined {
    return this.#known.get(raw)
  }

  /**
   * Sets up a new physical connection: `engineSetUp` (session settings of the engine), then the
   * user's hooks. On failure `discard` closes the connection and the error is rethrown as is
   * (connection-level) or as a {@link ConnectionSetupError} naming the node.
   */
  async setUp(
    raw: object,
    connection: LifecycleConnection,
    engineSetUp: () => Promise<void>,
    discard: () => void,
  ): Promise<void> {
    const { node, onCreateConnection, isConnectionError } = this.#setup
    try {
      await engineSetUp()
      if (onCreateConnection !== undefined)
        await onCreateConnection(asDatabaseConnection(connection), node)
    } catch (error) {
      discard()
      if (isConnectionError(error)) throw error
      throw new ConnectionSetupError(
        `setting up a new connection on node "${node.name}" failed: ${error instanceof Error ? error.message : String(error)}`,
        node.name,
        { cause: error },
      )
    }
    this.#known.set(raw, connection)
    if (!this.#firstSeen) {
      this.#firstSeen = true
      await this.#setup.firstConnection(connection)
    }
  }
}

/** Wraps a physical connection as the `DatabaseConnection` Kysely's hooks expect. */
export function asDatabaseConnection(connection: PhysicalConnection): DatabaseConnection {
  return {
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      return (await connection.execute<R>(query)).result
    },
    streamQuery<R>(query: CompiledQuery, chunkSize = 1): AsyncIterableIterator<QueryResult<R>> {
      return connection.stream<R>(query, chunkSize)
    },
  }
}

/**
 * A node's configured pool: the value itself, or what its async factory returns. A factory's
 * error carries the node's name.
 */
export async function resolvePoolSource(source: unknown, node: string): Promise<unknown> {
  if (typeof source !== 'function') return source
  try {
    return await (source as () => Promise<unknown>)()
  } catch (error) {
    throw annotateNodeError(error, node)
  }
}
