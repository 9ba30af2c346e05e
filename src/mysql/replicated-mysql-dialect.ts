import {
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  type QueryCompiler,
} from 'kysely'
import { checkOwnedConnectionOptions } from '../core/config.js'
import { ReplicatedDialectBase } from '../core/replicated-dialect-base.js'
import { MysqlEngine } from './mysql-engine.js'
import { createMysqlPool, MysqlNodePool } from './mysql-node-pool.js'
import { isMysqlPool, unwrapMysqlPool } from './mysql-pool-types.js'
import {
  MYSQL_CONFIG_KEYS,
  MYSQL_OWNED_CONNECTION_OPTIONS,
  type ReplicatedMysqlDialectConfig,
} from './replicated-mysql-dialect-config.js'

/**
 * A Kysely dialect for a MySQL or MariaDB primary with read replicas: writes go to the primary,
 * reads to the replicas, with read-your-writes (GTID causal reads by default), health checks and
 * latency-aware replica selection. Queries need no change.
 *
 * @example
 * ```ts
 * import { Kysely } from 'kysely'
 * import { createPool } from 'mysql2'
 * import { ReplicatedMysqlDialect } from 'kysely-replicated'
 *
 * const db = new Kysely<DB>({
 *   dialect: new ReplicatedMysqlDialect({
 *     primary: { pool: createPool({ host: 'primary.internal', user, password, database }) },
 *     replicas: [
 *       { name: 'replica-1', pool: createPool({ host: 'replica1.internal', user, password, database }) },
 *       { name: 'replica-2', pool: createPool({ host: 'replica2.internal', user, password, database }) },
 *     ],
 *   }),
 * })
 * ```
 */
export class ReplicatedMysqlDialect extends ReplicatedDialectBase<MysqlEngine> implements Dialect {
  constructor(config: ReplicatedMysqlDialectConfig) {
    checkOwnedConnectionOptions(config, 'ReplicatedMysqlDialect', MYSQL_OWNED_CONNECTION_OPTIONS)
    super({
      config,
      dialectName: 'ReplicatedMysqlDialect',
      isPool: (value) => isMysqlPool(value) || unwrapMysqlPool(value) !== undefined,
      extraKeys: Object.keys(MYSQL_CONFIG_KEYS),
      createEngine: (context) => new MysqlEngine(context),
      createPool: (node, setup, engine) =>
        new MysqlNodePool({
          source: node.pool ?? (() => createMysqlPool(node)),
          setup,
          setUpSession: (connection, raw) => engine.setUpConnection(connection, raw, setup),
        }),
    })
  }

  createAdapter(): DialectAdapter {
    return new MysqlAdapter()
  }

  createDriver(): Driver {
    return this.createReplicatedDriver()
  }

  createQueryCompiler(): QueryCompiler {
    return new MysqlQueryCompiler()
  }

  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new MysqlIntrospector(db)
  }
}
