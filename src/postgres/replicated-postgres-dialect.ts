import {
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
} from 'kysely'
import { checkOwnedConnectionOptions, describeValue } from '../core/config.js'
import { ReplicatedConfigError } from '../core/contracts/errors.js'
import { ReplicatedDialectBase } from '../core/replicated-dialect-base.js'
import { PostgresEngine } from './postgres-engine.js'
import { createPostgresPool, PostgresNodePool } from './postgres-node-pool.js'
import { isPostgresPool } from './postgres-pool-types.js'
import {
  POSTGRES_CONFIG_KEYS,
  POSTGRES_OWNED_CONNECTION_OPTIONS,
  type ReplicatedPostgresDialectConfig,
} from './replicated-postgres-dialect-config.js'

/**
 * A Kysely dialect for a PostgreSQL primary with streaming replicas (hot standbys): writes go to
 * the primary, reads to the replicas, with read-your-writes (causal reads on the WAL replay LSN
 * by default), health checks and latency-aware replica selection. Queries need no change; results
 * are those of Kysely's `PostgresDialect`.
 *
 * @example
 * ```ts
 * import { Kysely } from 'kysely'
 * import { Pool } from 'pg'
 * import Cursor from 'pg-cursor'
 * import { ReplicatedPostgresDialect } from 'kysely-replicated'
 *
 * const db = new Kysely<DB>({
 *   dialect: new ReplicatedPostgresDialect({
 *     primary: { pool: new Pool({ host: 'primary.internal', user, password, database }) },
 *     replicas: [
 *       { name: 'replica-1', pool: new Pool({ host: 'replica1.internal', user, password, database }) },
 *       { name: 'replica-2', pool: async () => new Pool({ host: 'replica2.internal', user, password, database }) },
 *     ],
 *     cursor: Cursor, // for .stream()
 *   }),
 * })
 * ```
 */
export class ReplicatedPostgresDialect
  extends ReplicatedDialectBase<PostgresEngine>
  implements Dialect
{
  constructor(config: ReplicatedPostgresDialectConfig) {
    const cursor = checkCursor(config)
    checkOwnedConnectionOptions(
      config,
      'ReplicatedPostgresDialect',
      POSTGRES_OWNED_CONNECTION_OPTIONS,
    )
    super({
      config,
      dialectName: 'ReplicatedPostgresDialect',
      isPool: isPostgresPool,
      extraKeys: Object.keys(POSTGRES_CONFIG_KEYS),
      createEngine: (context) => new PostgresEngine(context),
      createPool: (node, setup, engine) =>
        new PostgresNodePool({
          source: node.pool ?? (() => createPostgresPool(node)),
          setup,
          setUpSession: (connection) => engine.setUpConnection(connection, setup),
          cursor,
        }),
    })
  }

  createAdapter(): DialectAdapter {
    return new PostgresAdapter()
  }

  createDriver(): Driver {
    return this.createReplicatedDriver()
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler()
  }

  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new PostgresIntrospector(db)
  }
}

function checkCursor(
  config: ReplicatedPostgresDialectConfig,
): ReplicatedPostgresDialectConfig['cursor'] {
  const cursor = typeof config === 'object' && config !== null ? config.cursor : undefined
  if (cursor !== undefined && typeof cursor !== 'function') {
    throw new ReplicatedConfigError(
      `ReplicatedPostgresDialect: \`cursor\` must be the pg-cursor constructor (import Cursor from 'pg-cursor'), got ${describeValue(cursor)}`,
    )
  }
  return cursor
}
