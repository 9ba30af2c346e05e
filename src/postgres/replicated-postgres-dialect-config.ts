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

/** `pg` client options (`host`, `port`, `user`, `password`, `database`, ...), for pools the library creates. */
export type PostgresConnectionOptions = object
