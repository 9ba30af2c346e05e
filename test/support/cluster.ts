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
 * Free of mocha: mocha helpers live in `mocha-cluster.ts`.
 */

export type { MariadbCluster, MariadbClusterOptions } from './mariadb-cluster.js'
export { mariadbAvailability, startMariadbCluster } from './mariadb-cluster.js'
export type { PostgresCluster, PostgresClusterOptions } from './postgres-cluster.js'
export { postgresAvailability, startPostgresCluster } from './postgres-cluster.js'

/** One server of a test cluster. */
export interface ClusterNode {
  /** `'primary'`, `'replica-1'`, `'replica-2'`, … */
  name: string
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

/** Whether a cluster can be started (or is configured) here, and if not, what to do about it. */
export type ClusterAvailability = { ok: true } | { ok: false; message: string }

/** Options shared by `startMariadbCluster` and `startPostgresCluster`. */
export interface StartClusterOptions {
  /** Number of replicas (default 2). */
  replicas?: number
  /** Receives progress lines (start-up steps and timings). */
  log?: (line: string) => void
}

/** Members shared by both engines' clusters. */
export interface ReplicatedTestCluster {
  readonly engine: 'mariadb' | 'postgres'
  /** The primary, named `'primary'`. */
  readonly primary: ClusterNode
  /** The replicas, named `'replica-1'`, `'replica-2'`, … */
  readonly replicas: ClusterNode[]
  /** The primary followed by the replicas. */
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
  /** Connection options of the application user for one node. */
  connectionOptions(node: ClusterNode | string): NodeConnectionOptions
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
  /** Makes a replica apply changes late (MariaDB: seconds; PostgreSQL: milliseconds). */
  setReplicaDelay(replica: string, amount: number): Promise<void>
  /** Stops applying changes on a replica (MariaDB SQL thread / PostgreSQL WAL replay). */
  stopReplicaSqlThread(replica: string): Promise<void>
  /** Resumes replication on a replica stopped by `stopReplicaSqlThread`. */
  startReplica(replica: string): Promise<void>
  /** SIGKILLs a node's server process and waits until it is gone. */
  kill(node: string): Promise<void>
  /** Starts a node again on the same data directory and port and waits until it accepts connections. */
  restart(node: string): Promise<void>
  /** Stops every process and deletes the temp directory; idempotent. */
  stop(): Promise<void>
  /** The pid of a node's server process while it runs (undefined when external or stopped). */
  pid(node: ClusterNode | string): number | undefined
  /** Whether a node's server process runs (always true for an external cluster). */
  isRunning(node: ClusterNode | string): boolean
  /** A node's server log file (undefined for an external cluster). */
  logFile(node: ClusterNode | string): string | undefined
}
