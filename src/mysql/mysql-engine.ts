import type { QueryResult, TransactionSettings } from 'kysely'
import { CompiledQuery } from 'kysely'
import { formatPosition, parsePosition, type ReplicationPosition } from '../consistency/position.js'
import type {
  Engine,
  EngineContext,
  PhysicalConnection,
  ProbeResult,
} from '../core/contracts/engine.js'
import { ConnectionSetupError } from '../core/contracts/errors.js'
import type { NodePoolSetup } from '../core/contracts/node-setup.js'
import type { MysqlPhysicalConnection } from './mysql-node-pool.js'
import type { MysqlPoolConnection, MysqlStandaloneConnection } from './mysql-pool-types.js'

/**
 * The causal waits, compiled once (one per write a read waits for): each run copies one with its
 * parameters instead of building a Kysely raw query.
 */
const MARIADB_WAIT = CompiledQuery.raw('select master_gtid_wait(?, ?) as r')
const MYSQL_WAIT = CompiledQuery.raw('select wait_for_executed_gtid_set(?, ?) as r')

/**
 * mysql2 error codes that mean the connection or the server is gone or refuses new sessions —
 * as opposed to SQL errors (syntax, constraints, lock waits), which never mark a node down.
 */
const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'ER_CON_COUNT_ERROR', // 1040 too many connections
  'ER_TOO_MANY_USER_CONNECTIONS', // 1203
  'ER_SERVER_SHUTDOWN', // 1053
  'ER_NORMAL_SHUTDOWN', // 1077
  'ER_SHUTDOWN_COMPLETE', // 1079
  'ER_CONNECTION_KILLED', // 1927 (MariaDB)
  'ER_CLIENT_INTERACTION_TIMEOUT', // 4031 (MySQL 8)
  'ER_HOST_IS_BLOCKED', // 1129
  'ER_HOST_NOT_PRIVILEGED', // 1130
])

/**
 * Server errors (errno) of a login refused for its credentials, account or database: a node
 * problem when raised while connecting (see `isConnectError`), the caller's own as a statement's
 * error (`USE missing_db`).
 */
const CONNECT_REFUSAL_ERRNOS: ReadonlySet<number> = new Set([
  1044, // ER_DBACCESS_DENIED_ERROR: no access to the database
  1045, // ER_ACCESS_DENIED_ERROR: wrong user or password
  1049, // ER_BAD_DB_ERROR: unknown database
  1251, // ER_NOT_SUPPORTED_AUTH_MODE: the server asks for an auth protocol the client lacks
  1275, // ER_SERVER_IS_IN_SECURE_AUTH_MODE: an old-format password refused
  1524, // ER_PLUGIN_IS_NOT_LOADED: the account's authentication plugin is not loaded
  1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR: e.g. a unix_socket account over TCP
  1820, // ER_MUST_CHANGE_PASSWORD: expired password (sandbox mode: every statement fails)
  1862, // ER_MUST_CHANGE_PASSWORD_LOGIN: expired password, login refused
  3118, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
  3955, // ER_USER_ACCESS_DENIED_FOR_USER_ACCOUNT_BLOCKED_BY_PASSWORD_LOCK (MySQL)
  4151, // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB; mysql2 names 4151 after MySQL's meaning)
])

/** mysql2's names of {@link CONNECT_REFUSAL_ERRNOS}, for errors that carry only a code. */
const CONNECT_REFUSAL_CODES: ReadonlySet<string> = new Set([
  'ER_DBACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_ERROR',
  'ER_BAD_DB_ERROR',
  'ER_NOT_SUPPORTED_AUTH_MODE',
  'ER_SERVER_IS_IN_SECURE_AUTH_MODE',
  'ER_PLUGIN_IS_NOT_LOADED',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_MUST_CHANGE_PASSWORD',
  'ER_MUST_CHANGE_PASSWORD_LOGIN',
  'ER_ACCOUNT_HAS_BEEN_LOCKED',
  'ER_USER_ACCESS_DENIED_FOR_USER_ACCOUNT_BLOCKED_BY_PASSWORD_LOCK',
])

const BEGIN: readonly string[] = Object.freeze(['begin'])

/** MariaDB and MySQL: what differs from the engine-independent core. */
export class MysqlEngine implements Engine {
  readonly flavor = 'mysql' as const
  readonly positionsFromResults = true
  readonly lagResolutionMs = 1000
  #kind: 'mariadb' | 'mysql' = 'mariadb'
  readonly #context: EngineContext

  /** Known after the first connection: MariaDB (`domain-server-seq` GTIDs) or MySQL (GTID sets). */
  get positionKind(): 'mariadb' | 'mysql' {
    return this.#kind
  }

  get systemName(): string {
    return this.#kind
  }

  constructor(context: EngineContext) {
    this.#context = context
  }

  /** Prepares a new physical connection (called once per connection by the node pool). */
  async setUpConnection(
    connection: MysqlPhysicalConnection,
    raw: MysqlPoolConnection | MysqlStandaloneConnection,
    setup: NodePoolSetup,
  ): Promise<void> {
    const handshake = (raw as { _handshakePacket?: { serverVersion?: unknown } })._handshakePacket
    let version = typeof handshake?.serverVersion === 'string' ? handshake.serverVersion : undefined
    if (version === undefined) {
      const rows = (await connection.run('select version() as v')) as Array<{ v: string }>
      version = String(rows[0]?.v ?? '')
    }
    this.#kind = /mariadb/i.test(version) ? 'mariadb' : 'mysql'
    if (setup.node.role === 'primary') {
      if (setup.trackPositions) await this.#trackGtids(connection, setup.node.name)
    } else if (setup.replicaSessionReadOnly) {
      await connection.run('set session transaction read only')
    }
  }

  async #trackGtids(connection: MysqlPhysicalConnection, node: string): Promise<void> {
    try {
      if (this.#kind === 'mariadb') {
        // Keep whatever the session tracked before; add last_gtid.
        await connection.run(
          `set session session_track_system_variables = if(
             @@session.session_track_system_variables = '*'
               or find_in_set('last_gtid', @@session.session_track_system_variables) > 0,
             @@session.session_track_system_variables,
             concat_ws(',', nullif(@@session.session_track_system_variables, ''), 'last_gtid'))`,
        )
      } else {
        await connection.run('set session session_track_gtids = OWN_GTID')
      }
    } catch (error) {
      if (this.isConnectionError(error)) throw error
      this.#context.causalUnsupported(
        node,
        `the server does not report GTIDs of writes (${error instanceof Error ? error.message : String(error)}); causal consistency falls back to 'sticky'`,
      )
    }
  }

  /** As Kysely's `MysqlDriver`: `set transaction ...` (for the next transaction only), then `begin`. */
  beginStatements(settings: TransactionSettings): readonly string[] {
    if (!settings.isolationLevel && !settings.accessMode) return BEGIN
    const parts: string[] = []
    if (settings.isolationLevel) parts.push(`isolation level ${settings.isolationLevel}`)
    if (settings.accessMode) parts.push(settings.accessMode)
    return [`set transaction ${parts.join(', ')}`, 'begin']
  }

  async waitForPosition(
    connection: PhysicalConnection,
    position: ReplicationPosition,
    timeoutMs: number,
  ): Promise<boolean> {
    const statement = this.waitStatement(position, timeoutMs)
    if (statement === undefined) return false
    const { result } = await connection.execute(statement)
    return this.waitReached(result)
  }

  /**
   * `MASTER_GTID_WAIT` (MariaDB: 0 when reached, -1 on timeout; never run on the primary, it
   * would wait the whole timeout) or `WAIT_FOR_EXECUTED_GTID_SET` (MySQL: 0 when reached, 1 on
   * timeout; a timeout of 0 would wait forever, hence the 1 ms floor).
   */
  waitStatement(position: ReplicationPosition, timeoutMs: number): CompiledQuery | undefined {
    const seconds = Math.max(timeoutMs, 1) / 1000
    if (position.kind === 'mariadb') {
      return { ...MARIADB_WAIT, parameters: [formatPosition(position), seconds] }
    }
    if (position.kind === 'mysql') {
      return { ...MYSQL_WAIT, parameters: [formatPosition(position), seconds] }
    }
    return undefined
  }

  waitReached(result: QueryResult<unknown>): boolean {
    return Number((result.rows[0] as { r?: unknown } | undefined)?.r) === 0
  }

  async observedPosition(connection: PhysicalConnection): Promise<ReplicationPosition | undefined> {
    const mariadb = this.#kind === 'mariadb'
    try {
      const { result } = await connection.execute<{ pos: string | null }>(
        CompiledQuery.raw(
          mariadb ? 'select @@gtid_binlog_pos as pos' : 'select @@global.gtid_executed as pos',
        ),
      )
      const pos = result.rows[0]?.pos
      return pos == null || pos === '' ? undefined : parsePosition(this.#kind, String(pos))
    } catch {
      return undefined
    }
  }

  async probe(connection: PhysicalConnection): Promise<ProbeResult> {
    const mariadb = this.#kind === 'mariadb'
    const { result } = await connection.execute<{
      pos: string | null
      ro: number | string
      sro: number | string
    }>(
      CompiledQuery.raw(
        mariadb
          ? 'select @@gtid_slave_pos as pos, @@read_only as ro, 0 as sro'
          : 'select @@gtid_executed as pos, @@read_only as ro, @@super_read_only as sro',
      ),
    )
    const row = result.rows[0]
    let position: ReplicationPosition | undefined
    if (row?.pos != null) {
      try {
        position = parsePosition(mariadb ? 'mariadb' : 'mysql', String(row.pos))
      } catch {
        position = undefined
      }
    }
    const readOnly = row === undefined ? undefined : Number(row.ro) === 1
    let lagMs: number | null | undefined
    let replicating: boolean | undefined
    try {
      const status = await connection.execute<Record<string, unknown>>(
        CompiledQuery.raw(mariadb ? 'show slave status' : 'show replica status'),
      )
      const s = status.result.rows[0]
      replicating = s !== undefined
      if (s !== undefined) {
        const seconds = s.Seconds_Behind_Master ?? s.Seconds_Behind_Source
        const sqlRunning = s.Slave_SQL_Running ?? s.Replica_SQL_Running
        const ioRunning = s.Slave_IO_Running ?? s.Replica_IO_Running
        if (sqlRunning === 'No' || ioRunning === 'No') {
          // Replication stopped (by an operator or an error): the replica falls further behind
          // with every write.
          lagMs = null
        } else if (seconds === null || seconds === undefined) {
          // The receiver is reconnecting ('Connecting': the primary is down or unreachable). The
          // replica holds everything it received; its lag is unknown, not "stopped": excluding
          // it would send reads to a primary that may be gone.
          lagMs = undefined
        } else {
          lagMs = Number(seconds) * 1000
        }
      }
    } catch (error) {
      if (this.isConnectionError(error)) throw error
      // No privilege for SHOW SLAVE STATUS: lag stays unknown.
    }
    const writable =
      row === undefined || replicating === undefined
        ? undefined
        : !readOnly && Number(row.sro) !== 1 && !replicating
    return { position, lagMs, readOnly, writable }
  }

  /**
   * 1290 ER_OPTION_PREVENTS_STATEMENT (`--read-only`), 1836 ER_READ_ONLY_MODE, and 1053
   * ER_SERVER_SHUTDOWN (the server aborted the statement while stopping: rolled back).
   */
  isWriteRefusal(error: unknown): boolean {
    const { errno, code } = (error ?? {}) as { errno?: unknown; code?: unknown }
    return (
      errno === 1290 ||
      errno === 1836 ||
      errno === 1053 ||
      // mysql2 refused to send it: the connection had died while idle in the pool.
      code === 'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR' ||
      code === 'PROTOCOL_ENQUEUE_AFTER_QUIT'
    )
  }

  async cancel(
    control: PhysicalConnection,
    sessionId: number,
    kind: 'query' | 'session',
  ): Promise<void> {
    if (!Number.isSafeInteger(sessionId) || sessionId <= 0) return
    await control.execute(
      CompiledQuery.raw(`kill ${kind === 'query' ? 'query' : 'connection'} ${sessionId}`),
    )
  }

  async serverCapacity(connection: PhysicalConnection): Promise<{ max: number; used: number }> {
    // Threads_connected is readable without the PROCESS privilege, unlike the process list.
    const { result } = await connection.execute<{ max: number | string; used: number | string }>(
      CompiledQuery.raw(
        "select @@max_connections as max, (select variable_value from information_schema.global_status where variable_name = 'THREADS_CONNECTED') as used",
      ),
    )
    const row = result.rows[0]
    return { max: Number(row?.max ?? 0), used: Number(row?.used ?? 0) }
  }

  /**
   * {@link isConnectionError}, or a login refused for its credentials, account or database (1044,
   * 1045, 1049, 1698, an expired password, a locked account, a missing auth plugin ...). mysql2's
   * own authentication failures (`AUTH_SWITCH_PLUGIN_ERROR`, TLS handshake errors) are fatal, so
   * connection-level already.
   */
  isConnectError(error: unknown): boolean {
    if (this.isConnectionError(error)) return true
    if (error instanceof ConnectionSetupError) return this.isConnectError(error.cause)
    if (typeof error !== 'object' || error === null) return false
    const { errno, code } = error as { errno?: unknown; code?: unknown }
    if (typeof errno === 'number') return CONNECT_REFUSAL_ERRNOS.has(errno)
    return typeof code === 'string' && CONNECT_REFUSAL_CODES.has(code)
  }

  isConnectionError(error: unknown): boolean {
    if (error instanceof ConnectionSetupError) {
      return this.isConnectionError(error.cause)
    }
    if (typeof error !== 'object' || error === null) return false
    const e = error as { fatal?: unknown; code?: unknown }
    if (e.fatal === true) return true
    return typeof e.code === 'string' && CONNECTION_ERROR_CODES.has(e.code)
  }
}
