/**
 * Minimal structural types of the mysql2 callback API this library uses. The same shape Kysely's
 * `MysqlDialect` accepts, so `mysql2` stays an optional peer dependency.
 */
export interface MysqlPool {
  getConnection(callback: (error: unknown, connection: MysqlPoolConnection) => void): void
  end(callback: (error: unknown) => void): void
}

/** A `mysql2/promise` pool: accepted and unwrapped to its callback pool (`.pool`). */
export interface MysqlPromisePool {
  readonly pool: MysqlPool
}

export interface MysqlPoolConnection {
  query(
    sql: string,
    // `any`, as in Kysely's own MysqlPoolConnection: mysql2's overloads accept several shapes.
    parameters: any,
    callback?: (error: unknown, result: any) => void,
  ): { stream: (options: { objectMode?: true; highWaterMark?: number }) => MysqlStream }
  release(): void
  destroy(): void
  readonly threadId: number | null
  /** The connection's socket (mysql2 `Connection.stream`): destroyed when a statement is abandoned. */
  readonly stream?: unknown
  /** mysql2 connections emit `'error'` when their socket fails; without a listener Node throws it. */
  on?(event: 'error', listener: (error: Error) => void): unknown
}

/**
 * A mysql2 connection made outside any pool (`new Connection(...)`): the library's control
 * connections (cancels, probes of a node whose pool is exhausted).
 */
export interface MysqlStandaloneConnection extends Omit<MysqlPoolConnection, 'release'> {
  connect(callback: (error: unknown) => void): void
  /** `COM_QUIT`, then the server closes the connection. */
  end(callback?: (error?: unknown) => void): unknown
}

export interface MysqlStream {
  [Symbol.asyncIterator](): AsyncIterator<unknown>
}

/**
 * The OK packet fields mysql2 puts on the result of a statement that returns no rows.
 * `stateChanges` is not declared by mysql2's typings: it carries session tracking data
 * (MariaDB `last_gtid` among the system variables, MySQL `OWN_GTID` in `gtids`).
 */
export interface MysqlResultHeader {
  readonly affectedRows: number
  readonly insertId: number | bigint | string
  readonly changedRows?: number
  readonly stateChanges?: {
    readonly systemVariables?: Readonly<Record<string, string>>
    readonly gtids?: ReadonlyArray<string>
  } | null
}

/** Whether `value` is a result header (OK packet) rather than rows. */
export function isResultHeader(value: unknown): value is MysqlResultHeader {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    'affectedRows' in value &&
    'insertId' in value
  )
}

/** Typed access to the session-tracked GTID of a result header, if the server sent one. */
export function trackedGtid(
  header: MysqlResultHeader,
): { kind: 'mariadb' | 'mysql'; text: string } | undefined {
  const changes = header.stateChanges
  if (changes === null || changes === undefined) return undefined
  const lastGtid = changes.systemVariables?.last_gtid
  if (typeof lastGtid === 'string' && lastGtid !== '') {
    return { kind: 'mariadb', text: lastGtid }
  }
  const gtids = changes.gtids
  if (Array.isArray(gtids) && gtids.length > 0) {
    // OWN_GTID reports `uuid:n`. Require `uuid:1-n` instead: what the primary committed up to n.
    // Slightly stronger than needed, but it keeps a scope's position one interval per source
    // instead of a gap-riddled set that grows with every write.
    const text = gtids
      .join(',')
      .split(',')
      .map((g) => g.trim().replace(/:(\d+)$/, ':1-$1'))
      .filter((g) => g !== '')
      .join(',')
    if (text !== '') return { kind: 'mysql', text }
  }
  return undefined
}

export function isMysqlPool(value: unknown): value is MysqlPool {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as MysqlPool).getConnection === 'function' &&
    typeof (value as MysqlPool).end === 'function'
  )
}

/** Accepts a callback pool or a `mysql2/promise` pool and returns the callback pool. */
export function unwrapMysqlPool(value: unknown): MysqlPool | undefined {
  if (typeof value === 'object' && value !== null) {
    const inner = (value as Partial<MysqlPromisePool>).pool
    if (isMysqlPool(inner)) return inner
  }
  return isMysqlPool(value) ? value : undefined
}
