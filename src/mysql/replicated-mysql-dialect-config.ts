import type { EngineConfigKeys, ReplicatedDialectConfig } from '../core/config.js'
import type { MysqlPool, MysqlPromisePool } from './mysql-pool-types.js'

/**
 * Config of {@link ReplicatedMysqlDialect}: a primary and its replicas, each with a mysql2 pool
 * (`createPool` from `mysql2`, or from `mysql2/promise`), or an async factory returning one.
 *
 * @example
 * ```ts
 * import { createPool } from 'mysql2'
 * const config: ReplicatedMysqlDialectConfig = {
 *   primary: { pool: createPool({ host: 'primary.internal', user, password, database }) },
 *   replicas: [{ name: 'replica-1', pool: createPool({ host: 'replica1.internal', user, password, database }) }],
 * }
 * ```
 */
export type ReplicatedMysqlDialectConfig = ReplicatedDialectConfig<
  MysqlPool | MysqlPromisePool,
  MysqlConnectionOptions
>

/**
 * The settings only {@link ReplicatedMysqlDialectConfig} has (none yet), for the unknown-option
 * check; the compiler keeps the list in step with the type.
 *
 * @internal
 */
export const MYSQL_CONFIG_KEYS = Object.freeze(
  {} as const satisfies EngineConfigKeys<ReplicatedMysqlDialectConfig>,
)

/**
 * mysql2 pool options the library sets from a node's `poolSize` and `idleTimeoutMs` when it
 * creates the pool from `connection` (see `createMysqlPool`): given in `connection`, an error.
 *
 * @internal
 */
export const MYSQL_OWNED_CONNECTION_OPTIONS = Object.freeze({
  connectionLimit: 'poolSize',
  maxIdle: 'poolSize',
  idleTimeout: 'idleTimeoutMs',
} as const)

/** mysql2 connection options (`host`, `port`, `user`, `password`, `database`, ...), for pools the library creates. */
export type MysqlConnectionOptions = object
