import * as kysely from 'kysely'
import { CompiledQuery, type QueryResult, type TransactionSettings } from 'kysely'
import { formatLsn, parseLsn } from '../consistency/pg-lsn.js'
import type { ReplicationPosition } from '../consistency/position.js'
import type {
  Engine,
  EngineContext,
  PhysicalConnection,
  ProbeResult,
} from '../core/contracts/engine.js'
import { ConnectionSetupError, PoolWaitTimeoutError } from '../core/contracts/errors.js'
import type { NodePoolSetup } from '../core/contracts/node-setup.js'
import type { PostgresPhysicalConnection } from './postgres-node-pool.js'

/** Node.js socket and DNS error codes: the connection or the server is gone. */
const SOCKET_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
])

/**
 * SQLSTATEs outside class 08 (connection exception) that mean the server is going away or takes
 * no new sessions: admin shutdown (also `pg_terminate_backend`), crash shutdown, cannot connect
 * now (starting up, shutting down), too many connections.
 */
const CONNECTION_SQLSTATES: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03', '53300'])

/** Errors `pg` and `pg-pool` raise themselves (no code) when the socket is gone or never came. */
const CONNECTION_MESSAGES: readonly RegExp[] = [
  // 'Connection terminated', '... unexpectedly', '... due to connection timeout'
  /^Connection terminated/,
  // pg-pool's timeout of a checkout that waited in its queue: a connection error only when a
  // connection was being opened for it (a hung node); the node pool turns the wait for a busy
  // pool into `PoolWaitTimeoutError` (see `PostgresNodePool.acquire`).
  /^timeout exceeded when trying to connect$/,
  /^Client has encountered a connection error and is not queryable$/,
  /^Client was closed and is not queryable$/,
]

const SQLSTATE = /^[0-9A-Z]{5}$/

/**
 * SQLSTATEs of a login refused for its credentials or database: a node problem when raised while
 * connecting (see `isConnectError`). Class 28 (invalid authorization: no `pg_hba.conf` entry, a
 * role that may not log in, a wrong password) and 3D000 (the database does not exist).
 */
const CONNECT_REFUSAL_SQLSTATES: ReadonlySet<string> = new Set(['28000', '28P01', '3D000'])

/**
 * Errors `pg` raises itself when it cannot authenticate or secure a connection: no password (or
 * not a string) for SCRAM or a password function, a SCRAM exchange the server does not complete,
 * a server without TLS when TLS is required, a failed TLS negotiation.
 */
const CONNECT_REFUSAL_MESSAGES: readonly RegExp[] = [
  /^SASL: /,
  /^Password must be a string$/,
  /^The server does not support SSL connections$/,
  /^There was an error establishing an SSL connection$/,
]

/** Node.js TLS errors of a server certificate that cannot be trusted (`ssl.rejectUnauthorized`). */
const TLS_REFUSAL_CODES: ReadonlySet<string> = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
])

/** SQLSTATEs of a server that cannot report or wait for LSNs: causal reads fall back to sticky. */
const UNSUPPORTED_SQLSTATES: ReadonlySet<string> = new Set([
  '42883', // undefined_function (a PostgreSQL-compatible server without pg_current_wal_insert_lsn)
  '0A000', // feature_not_supported
  '55000', // object_not_in_prerequisite_state ("recovery is in progress": the primary is a standby)
])

/** `MAXALIGN(sizeof(XLogPageHeaderData))` and `MAXALIGN(sizeof(XLogLongPageHeaderData))`. */
const SHORT_PAGE_HEADER = 24n
const LONG_PAGE_HEADER = 40n

/** PostgreSQL 19 added `WAIT FOR LSN`. */
const WAIT_FOR_VERSION_NUM = 190000

/** Sleeps between replay-LSN polls: starts at 0.2 ms, doubles, at most 5 ms. */
const FIRST_POLL_DELAY_MS = 0.2
const MAX_POLL_DELAY_MS = 5

/**
 * Kysely 0.29's `AbortedTransactionError`, when this Kysely version has it (0.28 does not: its
 * `PostgresDriver` ignores a COMMIT that the server answered with ROLLBACK, and so does this).
 */
const AbortedTransactionError = (
  kysely as unknown as { AbortedTransactionError?: new (options?: { cause?: unknown }) => Error }
).AbortedTransactionError

/** PostgreSQL: what differs from the engine-independent core. */
export class PostgresEngine implements Engine {
  readonly flavor = 'postgres' as const
  readonly systemName = 'postgresql'
  readonly positionKind = 'postgres' as const
  /**
   * `false`: PostgreSQL reports no WAL position with a command's result, so after a write (or a
   * COMMIT) the core calls {@link primaryPosition} on the same primary session: one extra round
   * trip per write (none in `eventual` mode).
   *
   * The alternative, reading the primary's position when the scope next reads, would save that
   * round trip for writes that are never followed by a read, but it needs a primary connection at
   * read time (a pool checkout, possibly a wait, on the read path meant to spare the primary) and
   * it could only return the primary's position at that later moment, which is newer than the
   * write and so waits longer on the replica. Asking right after the write, on the connection
   * already held, is cheaper where it matters and exact.
   */
  readonly positionsFromResults = false
  readonly lagResolutionMs = 0
  /** Per node: whether the server has `WAIT FOR LSN` (PostgreSQL 19+), learned on first wait. */
  readonly #waitFor = new Map<string, boolean>()
  readonly #context: EngineContext

  constructor(context: EngineContext) {
    this.#context = context
  }

  /** Prepares a new physical connection (called once per connection by the node pool). */
  async setUpConnection(
    connection: PostgresPhysicalConnection,
    setup: NodePoolSetup,
  ): Promise<void> {
    if (setup.node.role === 'replica' && setup.replicaSessionReadOnly) {
      // A hot standby refuses writes anyway; this also covers "replicas" that are not standbys
      // (a logical replica, a promoted node, a development setup pointing at the primary).
      await connection.run('SET default_transaction_read_only = on')
    }
  }

  /** As Kysely's `PostgresDriver`: `begin`, or `start transaction isolation level ... read only`. */
  beginStatements(settings: TransactionSettings): readonly string[] {
    let sql = 'begin'
    if (settings.isolationLevel || settings.accessMode) {
      sql = 'start transaction'
      if (settings.isolationLevel) sql += ` isolation level ${settings.isolationLevel}`
      if (settings.accessMode) sql += ` ${settings.accessMode}`
    }
    return [sql]
  }

  /** PostgreSQL completes COMMIT with a ROLLBACK tag when an earlier error aborted the transaction. */
  checkCommit(result: QueryResult<unknown>): void {
    const row = result.rows[0] as { command?: unknown } | undefined
    if (row?.command === 'ROLLBACK' && AbortedTransactionError !== undefined) {
      throw new AbortedTransactionError()
    }
  }

  /**
   * The primary's WAL insert position, read on the session that just wrote or committed: at or
   * past the end of its commit record, also with `synchronous_commit = off` (where the write and
   * flush positions may still be behind it).
   *
   * When the last record ends exactly on a WAL page boundary, `pg_current_wal_insert_lsn()`
   * points past the next page's header while a standby's replay position stops at the boundary;
   * waiting for that LSN would last until the primary writes again (seen on a fresh cluster:
   * `0/4000028` on the primary, `0/4000000` replayed). The header is subtracted here.
   *
   * Errors never fail the write that already succeeded: the position is then unknown and the
   * scope's reads go to the primary (sticky); a server that cannot report positions at all
   * switches causal reads to sticky (reported once as `causal-unsupported`).
   */
  /** After a failed statement: the WAL insert position, as after a write. */
  observedPosition(connection: PhysicalConnection): Promise<ReplicationPosition | undefined> {
    return this.primaryPosition(connection)
  }

  async primaryPosition(connection: PhysicalConnection): Promise<ReplicationPosition | undefined> {
    let row: { lsn: string | null; block: string | null; segment: string | null } | undefined
    try {
      const { result } = await connection.execute<NonNullable<typeof row>>(
        CompiledQuery.raw(
          `select pg_current_wal_insert_lsn()::text as lsn,
            current_setting('wal_block_size') as block,
            pg_size_bytes(current_setting('wal_segment_size'))::text as segment`,
        ),
      )
      row = result.rows[0]
    } catch (error) {
      const code = sqlState(error)
      if (code !== undefined && UNSUPPORTED_SQLSTATES.has(code)) {
        this.#context.causalUnsupported(
          connection.node.name,
          `the server cannot report its WAL position (${error instanceof Error ? error.message : String(error)}); causal consistency falls back to 'sticky'`,
        )
      }
      return undefined
    }
    if (row?.lsn == null) return undefined
    let lsn: bigint
    try {
      lsn = parseLsn(row.lsn)
    } catch {
      return undefined
    }
    return {
      kind: 'postgres',
      lsn: withoutPageHeader(lsn, toBigInt(row.block), toBigInt(row.segment)),
    }
  }

  /**
   * Waits on the replica `connection` until it has replayed `position`. With `WAIT FOR LSN`
   * (PostgreSQL 19+) the server waits; otherwise polls `pg_last_wal_replay_lsn()` on the same
   * connection with short sleeps (0.2 ms, doubling up to 5 ms). A server not in recovery (replay
   * LSN `NULL`) is never waited on: `false` at once.
   */
  async waitForPosition(
    connection: PhysicalConnection,
    position: ReplicationPosition,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    if (position.kind !== 'postgres') return false
    const lsn = formatLsn(position.lsn)
    if (timeoutMs >= 1 && (await this.#hasWaitFor(connection))) {
      const status = await this.#waitForLsn(connection, lsn, timeoutMs)
      if (status !== undefined) return status
    }
    return this.#pollReplay(connection, lsn, timeoutMs, signal)
  }

  async #hasWaitFor(connection: PhysicalConnection): Promise<boolean> {
    const node = connection.node.name
    const known = this.#waitFor.get(node)
    if (known !== undefined) return known
    const { result } = await connection.execute<{ v: string | number }>(
      CompiledQuery.raw("select current_setting('server_version_num') as v"),
    )
    const supported = Number(result.rows[0]?.v) >= WAIT_FOR_VERSION_NUM
    this.#waitFor.set(node, supported)
    return supported
  }

  /** `true`/`false` from `WAIT FOR LSN`; `undefined` when the server rejected the command. */
  async #waitForLsn(
    connection: PhysicalConnection,
    lsn: string,
    timeoutMs: number,
  ): Promise<boolean | undefined> {
    // A timeout of 0 (or below 0.5 ms, rounded) means "forever": at least 1 ms. The LSN text is
    // formatted by formatLsn (hex digits and '/'), safe to inline: WAIT takes no parameters.
    const ms = Math.max(1, Math.ceil(timeoutMs))
    try {
      const { result } = await connection.execute<{ status: string }>(
        CompiledQuery.raw(`WAIT FOR LSN '${lsn}' WITH (TIMEOUT '${ms}ms', NO_THROW)`),
      )
      return result.rows[0]?.status === 'success'
    } catch (error) {
      if (this.isConnectionError(error)) throw error
      // Not the command this library expects (a fork, a changed syntax): poll from now on.
      this.#waitFor.set(connection.node.name, false)
      return undefined
    }
  }

  async #pollReplay(
    connection: PhysicalConnection,
    lsn: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const deadline = performance.now() + timeoutMs
    const query = CompiledQuery.raw('select pg_last_wal_replay_lsn() >= $1::pg_lsn as reached', [
      lsn,
    ])
    let delay = FIRST_POLL_DELAY_MS
    for (;;) {
      signal?.throwIfAborted()
      const { result } = await connection.execute<{ reached: boolean | null }>(query)
      const reached = result.rows[0]?.reached
      if (reached === true) return true
      // NULL: not in recovery (a primary, a promoted standby) — nothing to wait for there.
      if (reached == null) return false
      const remaining = deadline - performance.now()
      if (remaining <= 0) return false
      await pause(Math.min(delay, remaining), signal)
      delay = Math.min(delay * 2, MAX_POLL_DELAY_MS)
    }
  }

  /**
   * One query: applied position (replay LSN), read-only (in recovery) and lag:
   *
   * - not in recovery (a primary, a promoted standby): lag `undefined` — replication lag does not
   *   apply; the core reports the node as `not-read-only`;
   * - replay paused: `null`, replication stopped;
   * - no WAL receiver running (`pg_stat_wal_receiver` empty: the upstream is unreachable, e.g. a
   *   primary outage, or the standby restores from an archive): `undefined`, unknown — the
   *   standby keeps serving what it has rather than sending reads to a primary that may be gone
   *   (MySQL: an I/O thread in 'Connecting' likewise);
   * - everything received is replayed (receive LSN <= replay LSN): `0`, nothing pending — even
   *   though `pg_last_xact_replay_timestamp()` keeps aging while the primary is idle;
   * - WAL pending: `now() - pg_last_xact_replay_timestamp()`, clamped at 0 (clocks may differ).
   *   An upper bound: right after an idle period it counts the idle time until the pending WAL
   *   is replayed. `undefined` when no transaction was replayed yet (timestamp `NULL`).
   */
  async probe(connection: PhysicalConnection): Promise<ProbeResult> {
    const { result } = await connection.execute<{
      in_recovery: boolean
      replay: string | null
      receive: string | null
      receiver: boolean
      paused: boolean | null
      lag_ms: number | string | null
      fenced: boolean
    }>(
      CompiledQuery.raw(
        `select pg_is_in_recovery() as in_recovery,
          pg_last_wal_replay_lsn()::text as replay,
          pg_last_wal_receive_lsn()::text as receive,
          exists (select 1 from pg_stat_wal_receiver) as receiver,
          case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused,
          (extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 as lag_ms,
          (select reset_val = 'on' from pg_settings where name = 'default_transaction_read_only') as fenced`,
      ),
    )
    const row = result.rows[0]
    if (row === undefined) return {}
    const readOnly = row.in_recovery === true
    const replay = parseLsnOrUndefined(row.replay)
    const position: ReplicationPosition | undefined =
      replay === undefined ? undefined : { kind: 'postgres', lsn: replay }
    // A primary fenced for a switchover (`default_transaction_read_only` in its configuration,
    // not only this session's) is not in recovery yet refuses writes.
    if (!readOnly) return { position, readOnly, lagMs: undefined, writable: row.fenced !== true }
    // Replay paused: the standby falls further behind with every write.
    if (row.paused === true) return { position, readOnly, lagMs: null }
    // No WAL receiver: the upstream is unreachable (a primary outage) or the standby restores from
    // an archive. The standby still holds everything it received: its lag is unknown, not
    // "stopped" — excluding it would send reads to a primary that may be gone.
    if (!row.receiver) return { position, readOnly, lagMs: undefined }
    const receive = parseLsnOrUndefined(row.receive)
    let lagMs: number | undefined
    if (replay === undefined || receive === undefined) {
      lagMs = undefined
    } else if (receive <= replay) {
      lagMs = 0
    } else if (row.lag_ms === null) {
      lagMs = undefined
    } else {
      lagMs = Math.max(0, Number(row.lag_ms))
    }
    return { position, readOnly, lagMs }
  }

  async cancel(
    control: PhysicalConnection,
    sessionId: number,
    kind: 'query' | 'session',
  ): Promise<void> {
    if (!Number.isSafeInteger(sessionId) || sessionId <= 0) return
    await control.execute(
      CompiledQuery.raw(
        kind === 'query' ? 'select pg_cancel_backend($1)' : 'select pg_terminate_backend($1)',
        [sessionId],
      ),
    )
  }

  /**
   * Connection-level: Node socket errors, `pg`'s own "Connection terminated" family, pool
   * connect timeouts, SQLSTATE class 08 and 57P01/57P02/57P03/53300. Never an SQL error (23xxx
   * constraint, 42xxx syntax or undefined object, 40xxx serialization/deadlock, ...).
   */
  async serverCapacity(connection: PhysicalConnection): Promise<{ max: number; used: number }> {
    // Connections reserved for superusers are not available to the application.
    const { result } = await connection.execute<{ max: number | string; used: number | string }>(
      CompiledQuery.raw(
        `select current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int as max,
                (select count(*) from pg_stat_activity where backend_type = 'client backend') as used`,
      ),
    )
    const row = result.rows[0]
    return { max: Number(row?.max ?? 0), used: Number(row?.used ?? 0) }
  }

  /**
   * SQLSTATE 25006 read_only_sql_transaction (a standby, or a primary fenced read-only); 57P01
   * admin_shutdown and 57P03 cannot_connect_now (a primary stopping for a switchover: the server
   * aborts the statement, and a statement interrupted so has not committed — commits hold off
   * interrupts).
   */
  isWriteRefusal(error: unknown): boolean {
    const code = sqlState(error)
    if (code === '25006' || code === '57P01' || code === '57P03') return true
    // pg refused to send it: the client had died while idle in the pool.
    return error instanceof Error && /is not queryable/.test(error.message)
  }

  /**
   * {@link isConnectionError}, or a login refused: SQLSTATE 28000 / 28P01 (authorization, wrong
   * password), 3D000 (no such database), 42501 when `FATAL` (no CONNECT privilege on the
   * database), `pg`'s own authentication errors (no password for SCRAM ...) and an untrusted
   * server certificate.
   */
  isConnectError(error: unknown): boolean {
    if (this.isConnectionError(error)) return true
    if (error instanceof ConnectionSetupError) return this.isConnectError(error.cause)
    if (typeof error !== 'object' || error === null) return false
    const { code, severity, message } = error as {
      code?: unknown
      severity?: unknown
      message?: unknown
    }
    if (typeof code === 'string') {
      if (CONNECT_REFUSAL_SQLSTATES.has(code) || TLS_REFUSAL_CODES.has(code)) return true
      // As a statement's error, 42501 is the caller's (a missing grant); FATAL only at login.
      if (code === '42501') return severity === 'FATAL'
    }
    return typeof message === 'string' && CONNECT_REFUSAL_MESSAGES.some((re) => re.test(message))
  }

  isConnectionError(error: unknown): boolean {
    // A checkout that waited for a busy pool: the node answers (its cause, pg-pool's queue
    // timeout, has the message of a connect timeout).
    if (error instanceof PoolWaitTimeoutError) return false
    if (error instanceof ConnectionSetupError) {
      return this.isConnectionError(error.cause)
    }
    if (typeof error !== 'object' || error === null) return false
    const code = (error as { code?: unknown }).code
    if (typeof code === 'string') {
      // Socket codes first: 'EPIPE' has the shape of a SQLSTATE.
      if (SOCKET_ERROR_CODES.has(code)) return true
      if (SQLSTATE.test(code)) return code.startsWith('08') || CONNECTION_SQLSTATES.has(code)
    }
    // Node 20 (autoSelectFamily) reports a failed connect to every address as an AggregateError.
    const errors = (error as { errors?: unknown }).errors
    if (Array.isArray(errors) && errors.some((e) => this.isConnectionError(e))) return true
    const message = (error as { message?: unknown }).message
    return typeof message === 'string' && CONNECTION_MESSAGES.some((re) => re.test(message))
  }
}

function sqlState(error: unknown): string | undefined {
  const code =
    typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' && SQLSTATE.test(code) ? code : undefined
}

function parseLsnOrUndefined(text: string | null | undefined): bigint | undefined {
  if (text == null) return undefined
  try {
    return parseLsn(text)
  } catch {
    return undefined
  }
}

function toBigInt(text: string | null | undefined): bigint | undefined {
  if (text == null || !/^\d+$/.test(text)) return undefined
  return BigInt(text)
}

/**
 * An insert position right after a page header (no record bytes on that page yet) is the page
 * boundary for a standby's replay position. Page headers: 40 bytes at a segment start, 24 bytes
 * on other pages. A record never ends at 24 bytes into a page (the header alone takes them); it
 * may end at 40 bytes into a page that is not a segment start, hence the segment check first.
 */
export function withoutPageHeader(
  lsn: bigint,
  blockSize: bigint | undefined,
  segmentSize: bigint | undefined,
): bigint {
  if (segmentSize !== undefined && segmentSize > 0n && lsn % segmentSize === LONG_PAGE_HEADER) {
    return lsn - LONG_PAGE_HEADER
  }
  if (blockSize !== undefined && blockSize > 0n && lsn % blockSize === SHORT_PAGE_HEADER) {
    return lsn - SHORT_PAGE_HEADER
  }
  return lsn
}

/** Sleeps `ms`; below 1 ms (timers' granularity) by yielding to the event loop until it passed. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      cleanup()
      reject(signal?.reason)
    }
    let timer: NodeJS.Timeout | undefined
    let immediate: NodeJS.Immediate | undefined
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer)
      if (immediate !== undefined) clearImmediate(immediate)
      signal?.removeEventListener('abort', onAbort)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    if (ms >= 1) {
      timer = setTimeout(() => {
        cleanup()
        resolve()
      }, ms)
      return
    }
    const until = performance.now() + ms
    const tick = () => {
      if (performance.now() >= until) {
        cleanup()
        resolve()
      } else {
        immediate = setImmediate(tick)
      }
    }
    immediate = setImmediate(tick)
  })
}
