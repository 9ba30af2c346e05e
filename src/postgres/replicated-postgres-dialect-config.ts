import type { EngineConfigKeys, ReplicatedDialectConfig } from '../core/config.js'
import type { PostgresCursorConstructor, PostgresPool } from './postgres-pool-types.js'

/**
 * Config of {@link ReplicatedPostgresDialect}: a primary and its replicas (streaming hot
 * standbys), each with a `pg` pool, an async factory returning one, or `connection` options from
 * which the library creates the pool, plus the settings every replicated dialect shares.
 *
 * @example
 * ```ts
 * import { Pool } from 'pg'
 * import Cursor from 'pg-cursor'
 * const config: ReplicatedPostgresDialectConfig = {
 *   primary: { pool: new Pool({ host: 'primary.internal', user, password, database }) },
 *   replicas: [{ name: 'replica-1', pool: new Pool({ host: 'replica1.internal', user, password, database }) }],
 *   cursor: Cursor,
 * }
 * ```
 */
export interface ReplicatedPostgresDialectConfig
  extends ReplicatedDialectConfig<PostgresPool, PostgresConnectionOptions> {
  /**
   * The `pg-cursor` constructor, as in Kysely's `PostgresDialect`: required for `.stream()`,
   * which reads rows in chunks of `chunkSize` through a cursor on the node the query runs on.
   */
  readonly cursor?: PostgresCursorConstructor
}

/**
 * The settings only {@link ReplicatedPostgresDialectConfig} has, for the unknown-option check; the
 * compiler keeps the list in step with the interface.
 *
 * @internal
 */
export const POSTGRES_CONFIG_KEYS = Object.freeze({
  cursor: true,
} as const satisfies EngineConfigKeys<ReplicatedPostgresDialectConfig>)

/**
 * `pg` pool options the library sets from a node's `poolSize` and `idleTimeoutMs` when it
 * creates the pool from `connection` (see `createPostgresPool`): given in `connection`, an error.
 *
 * @internal
 */
export const POSTGRES_OWNED_CONNECTION_OPTIONS = Object.freeze({
  max: 'poolSize',
  idleTimeoutMillis: 'idleTimeoutMs',
} as const)

/**
 * `pg` client and pool options for the pools the library creates from `connection` (the fields
 * of pg's `PoolConfig`, declared here so pg stays an optional peer). The pool's size and idle
 * timeout come from the node's `poolSize` and `idleTimeoutMs`. A misspelt option does not compile.
 *
 * @example
 * ```ts
 * const connection: PostgresConnectionOptions = { host: 'replica1.internal', user, password, database, connectionTimeoutMillis: 3000 }
 * ```
 */
export interface PostgresConnectionOptions {
  readonly host?: string
  readonly port?: number
  readonly user?: string
  readonly database?: string
  readonly password?: string | (() => string | Promise<string>)
  readonly connectionString?: string
  readonly ssl?: boolean | Readonly<Record<string, unknown>>
  /** Milliseconds to wait for a new connection (default here: 3000). */
  readonly connectionTimeoutMillis?: number
  readonly keepAlive?: boolean
  readonly keepAliveInitialDelayMillis?: number
  readonly statement_timeout?: false | number
  readonly query_timeout?: number
  readonly lock_timeout?: number
  readonly idle_in_transaction_session_timeout?: number
  readonly application_name?: string
  readonly fallback_application_name?: string
  readonly options?: string
  readonly client_encoding?: string
  readonly types?: unknown
  readonly binary?: boolean
  readonly stream?: unknown
  readonly enableChannelBinding?: boolean
  readonly min?: number
  readonly maxUses?: number
  readonly maxLifetimeSeconds?: number
  readonly allowExitOnIdle?: boolean
  readonly log?: (...messages: unknown[]) => void
  readonly Client?: unknown
}
