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

/**
 * mysql2 connection and pool options for the pools the library creates from `connection` (the
 * fields of mysql2's `PoolOptions`, declared here so mysql2 stays an optional peer). The pool's
 * size and idle timeout come from the node's `poolSize` and `idleTimeoutMs`. A misspelt option
 * does not compile.
 *
 * @example
 * ```ts
 * const connection: MysqlConnectionOptions = { host: 'replica1.internal', user, password, database, connectTimeout: 3000 }
 * ```
 */
export interface MysqlConnectionOptions {
  readonly host?: string
  readonly port?: number
  readonly localAddress?: string
  readonly socketPath?: string
  readonly user?: string
  readonly password?: string
  readonly password1?: string
  readonly password2?: string
  readonly password3?: string
  readonly passwordSha1?: string
  readonly database?: string
  readonly charset?: string
  readonly charsetNumber?: number
  readonly compress?: boolean
  /** Milliseconds to wait for a new connection (default here: 3000). */
  readonly connectTimeout?: number
  readonly timezone?: string
  readonly dateStrings?: boolean | ReadonlyArray<'TIMESTAMP' | 'DATETIME' | 'DATE'>
  readonly supportBigNumbers?: boolean
  readonly bigNumberStrings?: boolean
  readonly decimalNumbers?: boolean
  readonly jsonStrings?: boolean
  readonly insecureAuth?: boolean
  readonly typeCast?: boolean | ((field: unknown, next: () => unknown) => unknown)
  readonly queryFormat?: (query: string, values: unknown) => string
  readonly debug?: unknown
  readonly trace?: boolean
  readonly multipleStatements?: boolean
  readonly flags?: string | ReadonlyArray<string>
  readonly ssl?: string | Readonly<Record<string, unknown>>
  readonly enableKeepAlive?: boolean
  readonly keepAliveInitialDelay?: number
  readonly namedPlaceholders?: boolean
  readonly nestTables?: boolean | string
  readonly rowsAsArray?: boolean
  readonly authPlugins?: Readonly<Record<string, unknown>>
  readonly authSwitchHandler?: unknown
  readonly connectAttributes?: Readonly<Record<string, unknown>>
  readonly infileStreamFactory?: (path: string) => unknown
  readonly stream?: unknown
  readonly disableEval?: boolean
  readonly gracefulEnd?: boolean
  readonly maxPreparedStatements?: number
  readonly waitForConnections?: boolean
  readonly queueLimit?: number
  readonly resetOnRelease?: boolean
  readonly enableOptimizedPreparedStatements?: boolean
}
