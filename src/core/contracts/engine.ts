import type { CompiledQuery, QueryResult, TransactionSettings } from 'kysely'
import type { ReplicationPosition } from '../../consistency/position.js'
import type { SqlFlavor } from '../../routing/classification.js'

/** A node as hooks and events see it. */
export interface NodeInfo {
  readonly name: string
  readonly role: 'primary' | 'replica'
}

/** The outcome of one statement on a physical connection. */
export interface NodeQueryOutcome<R> {
  readonly result: QueryResult<R>
  /** The replication position the statement committed at, when the server reported one. */
  readonly position?: ReplicationPosition | undefined
}

/**
 * One physical connection on one node, checked out of that node's pool. Engine-specific
 * (mysql2 / pg); the core never sees the driver's objects.
 */
export interface PhysicalConnection {
  readonly node: NodeInfo
  /** Server-side connection id (MySQL thread id, PostgreSQL backend pid), when known. */
  readonly sessionId: number | undefined
  /**
   * Set when this library killed the session on request (Kysely's `'kill session'`): its failure
   * says nothing about the node's health, and the connection is never reused. Cleared when the
   * pool hands the physical connection out again.
   */
  killed: boolean
  /**
   * Clock reading (`performance.now()`) when the lifecycle layer last handed this connection out:
   * the start of a statement run right after the checkout, without reading the clock again.
   */
  checkedOutAtMs?: number
  /** @internal Its place in its node's running list while a statement runs on it (`RunningConnections`). */
  runningSlot?: number | undefined
  /**
   * A cancel aimed at this connection's statement, while one is in flight (see `core/cancels`):
   * the connection goes back to its pool only after it.
   */
  cancelling?: Promise<void> | undefined
  execute<R>(query: CompiledQuery, signal?: AbortSignal): Promise<NodeQueryOutcome<R>>
  /**
   * {@link execute} with a callback instead of a promise, called exactly once (`abandon` included):
   * the executor's plain reads then make one promise per read. Optional.
   */
  send?<R>(
    query: CompiledQuery,
    callback: (error: unknown, outcome?: NodeQueryOutcome<R>) => void,
  ): void
  stream<R>(
    query: CompiledQuery,
    chunkSize: number,
    signal?: AbortSignal,
  ): AsyncIterableIterator<QueryResult<R>>
  /**
   * Gives up on the statement running on this connection: its pending `execute` rejects at once
   * with `reason` (a running `stream` throws it on its next step), and the physical connection is
   * destroyed, never returned to the pool (its pool slot is free at once). For a node found dead
   * or hung, where the driver would wait for TCP to time out. No-op when nothing runs or the
   * connection was released; `release()` and `destroy()` after it do nothing.
   */
  abandon(reason: Error): void
  /** Back to the pool. */
  release(): void
  /** Close it; it is never reused. */
  destroy(): void
}

/** Where a node is, for telemetry (`server.address`, `server.port`, `db.namespace`). */
export interface NodeEndpoint {
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly database?: string | undefined
}

/** Connection counts read from the underlying pool. */
export interface PoolCounts {
  /** Physical connections the pool holds (idle + in use). */
  readonly total: number
  readonly idle: number
  /** Callers waiting for a connection inside the pool. */
  readonly waiting: number
  /** The pool's size limit, when it has one. */
  readonly limit: number | undefined
}

/** A node's pool, wrapped by the engine. */
export interface NodePool {
  init(signal?: AbortSignal): Promise<void>
  acquire(signal?: AbortSignal): Promise<PhysicalConnection>
  /**
   * Ends the pool: politely (`COM_QUIT`, `Terminate`) within `graceMs` (default 1000), then by
   * destroying every connection left, connection attempts included (a hung node never answers).
   * Resolves within about `graceMs`, never rejects late, and leaves no timer or socket that can
   * throw afterwards.
   */
  end(graceMs?: number): Promise<void>
  /**
   * A new connection to the node outside the pool and its limit (so a full pool of hung or long
   * statements cannot block it), with a connect timeout of `connectTimeoutMs`, set up like pool
   * connections but without the user's hooks. The caller `destroy()`s it when done. For cancels
   * and for probing a node whose pool is exhausted. Implemented by both engines' node pools; still
   * optional here because `ManagedPool` does not forward it yet.
   */
  openControl?(connectTimeoutMs: number): Promise<PhysicalConnection>
  /** The pool's connect timeout (ms), or `undefined` when it has none (it waits for TCP). */
  connectTimeoutMs?(): number | undefined
  /** Host, port and database of the node, when the pool's config tells. */
  endpoint?(): NodeEndpoint | undefined
  /** Counts from the pool itself, when it exposes them. */
  counts?(): PoolCounts | undefined
}

/** Replica state read by a probe. */
export interface ProbeResult {
  /** Applied replication position, when the engine can read it. */
  readonly position?: ReplicationPosition | undefined
  /** Replication lag in milliseconds; `null` when replication is stopped; `undefined` when unknown. */
  readonly lagMs?: number | null | undefined
  /** Whether the server refuses writes (`read_only`, hot standby). */
  readonly readOnly?: boolean | undefined
  /**
   * Whether the node takes writes as a primary: not read-only (nor `super_read_only`, nor
   * `default_transaction_read_only` in its configuration) and not replicating from another node.
   */
  readonly writable?: boolean | undefined
}

/** What an engine reports back to the cluster it serves, given to it at construction. */
export interface EngineContext {
  /** The server does not report write positions: causal mode behaves as sticky (said once). */
  causalUnsupported(node: string, message: string): void
}

/** Everything engine-specific the core needs. One implementation per engine. */
export interface Engine {
  readonly flavor: SqlFlavor
  /** OpenTelemetry `db.system` value: `'mariadb'`, `'mysql'`, `'postgresql'`. */
  readonly systemName: string
  readonly positionKind: ReplicationPosition['kind']
  /**
   * The statements that open a transaction (`set transaction ...`, `begin`, `start transaction
   * ...`), exactly as Kysely's own driver for this engine runs them.
   */
  beginStatements(settings: TransactionSettings): readonly string[]
  /** Throws when a `commit`'s result says the server rolled the transaction back instead. */
  checkCommit?(result: QueryResult<unknown>): void
  /**
   * Waits on `connection` (a replica) until it has applied `position`, at most `timeoutMs`.
   * Resolves `true` when applied, `false` on timeout.
   */
  waitForPosition(
    connection: PhysicalConnection,
    position: ReplicationPosition,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<boolean>
  /**
   * The one statement {@link waitForPosition} runs, when it is one (MySQL, MariaDB): the executor
   * can then send it with the read's callbacks. {@link waitReached} reads its result.
   */
  waitStatement?(position: ReplicationPosition, timeoutMs: number): CompiledQuery | undefined
  /** Whether the result of {@link waitStatement} says the position was reached in time. */
  waitReached?(result: QueryResult<unknown>): boolean
  /** Reads the current write position on the primary (engines that cannot learn it from results). */
  primaryPosition?(connection: PhysicalConnection): Promise<ReplicationPosition | undefined>
  /**
   * The primary's whole current position, read on `connection` (a primary session) after one of
   * its statements failed there: what that failure observed (a row a concurrent writer committed).
   * `undefined` when it cannot be read.
   */
  observedPosition?(connection: PhysicalConnection): Promise<ReplicationPosition | undefined>
  /**
   * The granularity of the lag a probe reports, in milliseconds: 1000 on MariaDB/MySQL
   * (`Seconds_Behind_Master` is in whole seconds), 0 on PostgreSQL. A lag reading within it
   * says a replica may be just behind, not that waiting for it would time out.
   */
  readonly lagResolutionMs: number
  /** Whether positions come with the results of writes (MySQL session tracking) or need {@link primaryPosition}. */
  readonly positionsFromResults: boolean
  /** Probes a replica: position, lag, read-only. */
  probe(connection: PhysicalConnection): Promise<ProbeResult>
  /** Cancels the running query of `sessionId` (or kills the session) using `control`, another connection to the same node. */
  cancel(control: PhysicalConnection, sessionId: number, kind: 'query' | 'session'): Promise<void>
  /** `true` for errors that mean the node or the connection is gone (not SQL errors). */
  isConnectionError(error: unknown): boolean
  /**
   * `true` for a statement the server refused before executing it because it does not take
   * writes (MariaDB/MySQL 1290, 1836; PostgreSQL 25006): nothing ran, so it can be run on the
   * node that took over the primary's role.
   */
  isWriteRefusal(error: unknown): boolean
  /**
   * `true` for errors that mean a connection to the node cannot be made: those of
   * {@link isConnectionError} plus refused credentials, access or database (MySQL 1044, 1045,
   * 1049 ...; PostgreSQL 28000, 28P01, 3D000), which count against the node only when raised while
   * connecting (as a statement's own error, `USE missing_db` is the caller's).
   */
  isConnectError(error: unknown): boolean
  /** The server's connection limit and connections in use, for the pool-size warning. */
  serverCapacity?(connection: PhysicalConnection): Promise<{ max: number; used: number }>
}
