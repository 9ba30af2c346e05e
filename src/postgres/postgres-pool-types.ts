/**
 * Minimal structural types of the `pg` and `pg-cursor` APIs this library uses: the same shape
 * Kysely's `PostgresDialect` accepts (a `pg` `Pool`, a `pg-cursor` constructor), so `pg` stays an
 * optional peer dependency and a pool typed for `PostgresDialect` fits here too.
 */

/**
 * The subset of `pg`'s `Pool` this library needs.
 *
 * @example
 * ```ts
 * import { Pool } from 'pg'
 * const pool: PostgresPool = new Pool({ host: 'primary.internal', database: 'app' })
 * ```
 */
export interface PostgresPool {
  connect(): Promise<PostgresPoolClient>
  end(): Promise<void>
}

/** The subset of a `pg` client checked out of a pool (`PoolClient`) this library needs. */
export interface PostgresPoolClient {
  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>
  /** Back to the pool; `release(true)` closes the connection instead. */
  release(destroy?: boolean): void
  /** The backend pid (an undocumented member of `pg`'s `Client`). */
  readonly processID?: number | null
  /**
   * `pg` clients emit `'error'` when the connection breaks (server killed, network lost), also
   * while checked out and idle; without a listener Node throws it as an uncaught exception. The
   * library listens while it holds the client.
   */
  on?(event: 'error', listener: (error: Error) => void): unknown
  removeListener?(event: 'error', listener: (error: Error) => void): unknown
  /**
   * `pg`'s connection of the client (undocumented), whose `stream` is the socket: destroyed when
   * a statement is abandoned or a closed connection does not close in time (a hung server).
   */
  readonly connection?: { readonly stream?: unknown } | null
}

/** The subset of `pg`'s result this library needs. */
export interface PostgresQueryResult<R> {
  readonly command: string
  readonly rowCount: number | null
  readonly rows: R[]
}

/** A `pg-cursor` cursor. */
export interface PostgresCursor<T> {
  read(rowsCount: number): Promise<T[]>
  close(): Promise<void>
}

/**
 * The `pg-cursor` constructor, needed for `.stream()` (as in Kysely's `PostgresDialect`).
 *
 * @example
 * ```ts
 * import Cursor from 'pg-cursor'
 * const cursor: PostgresCursorConstructor = Cursor
 * ```
 */
export type PostgresCursorConstructor = new <T>(
  sql: string,
  parameters: unknown[],
) => PostgresCursor<T>

/** Whether `value` looks like a `pg` pool (`connect()` and `end()`). */
export function isPostgresPool(value: unknown): value is PostgresPool {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PostgresPool).connect === 'function' &&
    typeof (value as PostgresPool).end === 'function'
  )
}
