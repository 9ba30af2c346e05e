/**
 * Real replicated database clusters for integration tests, the demo and the cluster benchmarks.
 *
 * `startMariadbCluster()` starts a MariaDB primary and GTID replicas, `startPostgresCluster()` a
 * PostgreSQL primary and streaming hot standbys, each as plain local processes on free ports in a
 * fresh temp directory (nothing touches a default server on 3306/5432). Environment variables point
 * the harness at an existing cluster instead:
 *
 * - `KYSELY_REPLICATED_MYSQL_URLS="mysql://user:pass@host:port/db,mysql://…replica1,…"` (primary
 *   first), optional `KYSELY_REPLICATED_MYSQL_ADMIN_URLS` (same order) for admin access;
 * - `KYSELY_REPLICATED_PG_URLS="postgres://user:pass@host:port/db,…"`, optional
 *   `KYSELY_REPLICATED_PG_ADMIN_URLS`.
 *
 * Faults and role changes for harness-started clusters: `freeze`/`thaw` (SIGSTOP/SIGCONT of a
 * server's whole process tree), a TCP fault proxy per node (`proxyFor`, `{ proxies: true }`,
 * `connectionOptions(node, { viaProxy: true })`, modes `pass`/`blackhole`/`reset`/`refuse`),
 * credentials that fail (`connectionOptions(node, { password: 'wrong' })`, `denyLogin`), apply
 * delays (`setReplicaDelay`), and `switchover`, `failover` and `rejoin`.
 *
 * Node names are identities and never change: after a role change the node named `'primary'` may
 * be a replica. `cluster.primary`, `cluster.replicas`, `primaryName()` and each node's `role`
 * follow the roles.
 *
 * Free of mocha: mocha helpers live in `mocha-cluster.ts`.
 */

import type { FaultProxy } from './tcp-proxy.js'

export type { MariadbCluster, MariadbClusterOptions } from './mariadb-cluster.js'
export { mariadbAvailability, startMariadbCluster } from './mariadb-cluster.js'
export type { PostgresCluster, PostgresClusterOptions } from './postgres-cluster.js'
export { postgresAvailability, startPostgresCluster } from './postgres-cluster.js'
export type { FaultProxy, FaultProxyStats, ProxyMode } from './tcp-proxy.js'

/** One server of a test cluster. */
export interface ClusterNode {
  /** `'primary'`, `'replica-1'`, `'replica-2'`, …: the node's start-up role; never changes. */
  name: string
  /**
   * The current role, updated by `switchover()` and `failover()`. A failover's old primary is a
   * `replica` that does not run until `rejoin()`.
   */
  role: 'primary' | 'replica'
  host: string
  port: number
  /** MariaDB `@@server_id` (primary 1, replicas 2, 3, …); undefined for PostgreSQL. */
  serverId?: number
}

/** What a driver pool needs to connect to a node as the application user. */
export interface NodeConnectionOptions {
  host: string
  port: number
  user: string
  password: string
  database: string
}

/** Changes to the application user's connection options of a node (`connectionOptions`). */
export interface ConnectionOverrides {
  /**
   * Connect through the node's TCP fault proxy (see `proxyFor`). The proxy must have been started:
   * `{ proxies: true }` at start, or `await cluster.proxyFor(node)`.
   */
  viaProxy?: boolean
  /** Another user name (a user that does not exist fails like a wrong password). */
  user?: string
  /** Another password: `'wrong'` makes the login fail (MySQL errno 1045, PostgreSQL 28P01). */
  password?: string
  /** Another database: one that does not exist fails (MySQL 1044 or 1049, PostgreSQL 3D000). */
  database?: string
}

/** Options of `failover()`. */
export interface FailoverOptions {
  /**
   * How long the cluster stays without a primary: the time between the old primary's death and the
   * promotion of the new one, in ms (default 0).
   */
  delayMs?: number
}

/** What a `switchover()` or `failover()` did. */
export interface RoleChange {
  oldPrimary: string
  newPrimary: string
  /** Wall-clock time of the whole operation (including a failover's `delayMs`), in ms. */
  durationMs: number
  /**
   * Failover: the replicas that had received more than the new primary, from which it fetched the
   * missing changes before its promotion (empty when it had everything).
   */
  caughtUpFrom: string[]
}

/** Whether a cluster can be started (or is configured) here, and if not, what to do about it. */
export type ClusterAvailability = { ok: true } | { ok: false; message: string }

/** Options shared by `startMariadbCluster` and `startPostgresCluster`. */
export interface StartClusterOptions {
  /** Number of replicas (default 2). */
  replicas?: number
  /** Receives progress lines (start-up steps and timings). */
  log?: (line: string) => void
  /**
   * Starts a TCP fault proxy in front of every node (default false; `proxyFor` starts one on
   * demand), so that `connectionOptions(node, { viaProxy: true })` works from the start.
   */
  proxies?: boolean
}

/** Members shared by both engines' clusters. */
export interface ReplicatedTestCluster {
  readonly engine: 'mariadb' | 'postgres'
  /** The current primary: the node named `'primary'` until a switchover or failover. */
  readonly primary: ClusterNode
  /** The nodes whose role is `replica`, in start order, running or not. */
  readonly replicas: ClusterNode[]
  /** Every node in start order: `'primary'`, `'replica-1'`, `'replica-2'`, … (whatever their role). */
  readonly nodes: ClusterNode[]
  /** The application database (`'app'` for a harness-started cluster). */
  readonly database: string
  /** The least-privilege application user. */
  readonly user: string
  readonly password: string
  /** True when the harness was pointed at an existing cluster through environment variables. */
  readonly external: boolean
  /** The cluster's temp directory (data dirs and logs), or undefined for an external cluster. */
  readonly directory: string | undefined
  /**
   * Connection options of the application user for one node, optionally through the node's fault
   * proxy or with a wrong password, user or database. The harness's own admin connections never go
   * through a proxy.
   *
   * @example
   * ```ts
   * createPool(cluster.connectionOptions('replica-1', { viaProxy: true }))
   * createConnection(cluster.connectionOptions('replica-1', { password: 'wrong' })) // errno 1045
   * ```
   */
  connectionOptions(
    node: ClusterNode | string,
    overrides?: ConnectionOverrides,
  ): NodeConnectionOptions
  /**
   * The TCP fault proxy in front of a node, started on first call (then the same one, on the same
   * port, for the cluster's life; `stop()` closes it). It forwards to the node's current port. Set
   * its mode with `proxy.setMode('pass' | 'blackhole' | 'reset' | 'refuse')`: see `tcp-proxy.ts`.
   * Works for external clusters too.
   *
   * @example
   * ```ts
   * const proxy = await cluster.proxyFor('replica-1')
   * const pool = createPool(cluster.connectionOptions('replica-1', { viaProxy: true }))
   * await proxy.setMode('blackhole') // queries hang: no error, no answer
   * await proxy.setMode('pass')
   * ```
   */
  proxyFor(node: ClusterNode | string): Promise<FaultProxy>
  /** The name of the current primary (`'primary'` until a switchover or failover). */
  primaryName(): string
  /** Runs one statement as the superuser on a node over a short-lived connection; returns its rows. */
  admin(node: ClusterNode | string, sql: string, params?: unknown[]): Promise<any[]>
  /**
   * Waits until replicas have applied everything the primary has committed so far. By default it
   * waits for every replica whose process runs and that was not paused or delayed through this
   * harness (`stopReplicaSqlThread`, `setReplicaDelay` with a non-zero delay); pass `replicas` to
   * choose them explicitly. Throws with the replicas' replication state after `timeoutMs`
   * (default 10 000).
   */
  waitForReplication(timeoutMs?: number, replicas?: string[]): Promise<void>
  /**
   * Makes a replica apply changes late. MariaDB: `MASTER_DELAY`, whole seconds only (for staleness
   * below a second, use `stopReplicaSqlThread` / `startReplica`); PostgreSQL:
   * `recovery_min_apply_delay` in milliseconds, sub-second delays included. 0 removes the delay.
   */
  setReplicaDelay(replica: string, amount: number): Promise<void>
  /** Stops applying changes on a replica (MariaDB SQL thread / PostgreSQL WAL replay). */
  stopReplicaSqlThread(replica: string): Promise<void>
  /** Resumes replication on a replica stopped by `stopReplicaSqlThread`. */
  startReplica(replica: string): Promise<void>
  /** SIGKILLs a node's server process and waits until it is gone. */
  kill(node: string): Promise<void>
  /**
   * Starts a node again on the same data directory and port and waits until it accepts connections.
   * A node that missed a role change while down (a failover's old primary) is `rejoin`ed instead.
   */
  restart(node: string): Promise<void>
  /**
   * Hangs a node: SIGSTOPs its server process and every descendant (PostgreSQL: the postmaster,
   * then all its backends and auxiliary processes). Its TCP port stays open: connections are
   * accepted by the kernel and queries on open connections get no answer, without error, until
   * `thaw`. `stop()`, `restart()`, `kill()` and the exit handlers continue frozen processes before
   * killing them, so none is left behind. Waitings of the harness skip frozen replicas.
   *
   * @example
   * ```ts
   * await cluster.freeze('replica-1')
   * // a query on replica-1 now hangs
   * await cluster.thaw('replica-1') // and it answers
   * ```
   */
  freeze(node: string): Promise<void>
  /** SIGCONTs what `freeze` stopped; a no-op for a node that is not frozen. */
  thaw(node: string): Promise<void>
  /** Whether `freeze` stopped the node and it was not thawed or killed since. */
  isFrozen(node: ClusterNode | string): boolean
  /**
   * Makes the application user's new logins to ONE node fail, server-side (open sessions go on).
   * MariaDB: the user's password is changed on that node only (`SET SESSION sql_log_bin=0`, so
   * nothing replicates and no replica-local GTID is made): errno 1045. PostgreSQL: a `reject` line
   * for the user heads that node's `pg_hba.conf` (reloaded): SQLSTATE 28000. Resolves once a login
   * fails. For a client-side failure, see `connectionOptions(node, { password: 'wrong' })`.
   */
  denyLogin(node: string): Promise<void>
  /** Undoes `denyLogin` on a node; resolves once the application user can log in again. */
  allowLogin(node: string): Promise<void>
  /**
   * A planned switchover that loses nothing: `newPrimary` (a running replica) becomes the primary,
   * the other replicas replicate from it, and the old primary too. See `MariadbCluster` and
   * `PostgresCluster` for each engine's steps. Throws when a step fails or times out (about 5 s).
   */
  switchover(newPrimary: string): Promise<RoleChange>
  /**
   * An unplanned failover: the primary dies (SIGKILL; PostgreSQL: its whole process tree frozen
   * first, then killed), `delayMs` later `newPrimary` (a running replica) is first brought up to
   * what any running replica received, then promoted, and the other running replicas replicate from
   * it. The old primary stays down (role `replica`) until `rejoin()` or `restart()`. Replicas that
   * are down or frozen are re-pointed when they are `restart`ed.
   */
  failover(newPrimary: string, options?: FailoverOptions): Promise<RoleChange>
  /**
   * (Re)starts a node that is not the primary as a replica of the current primary: a failover's old
   * primary, or a replica that missed a role change. See each engine for how. Waits until its
   * replication runs.
   */
  rejoin(node: string): Promise<void>
  /** Closes the fault proxies, stops every process and deletes the temp directory; idempotent. */
  stop(): Promise<void>
  /** The pid of a node's server process while it runs (undefined when external or stopped). */
  pid(node: ClusterNode | string): number | undefined
  /** Whether a node's server process runs (always true for an external cluster). */
  isRunning(node: ClusterNode | string): boolean
  /** A node's server log file (undefined for an external cluster). */
  logFile(node: ClusterNode | string): string | undefined
}
